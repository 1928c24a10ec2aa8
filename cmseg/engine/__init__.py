"""Task-independent machinery: training loop, checkpoints, distributed helpers, folder evaluation."""
