"""Task-independent machinery: folder evaluation now; training and prediction later."""
