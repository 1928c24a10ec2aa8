"""What the model benchmarks (bench_xmsnet.py, bench_cmpc.py) share: the command line, the
environment line, and timing a step with warm-up and device synchronisation."""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable, Sequence

import torch


def sync(device: torch.device) -> None:
    """Wait for the device's queued work (CUDA kernels run asynchronously)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def seconds_per_call(fn: Callable[[], object], iters: int, device: torch.device) -> float:
    """Mean seconds of ``fn()`` over ``iters`` timed calls, after one untimed warm-up call
    (allocator, cuDNN autotuning, optimizer state)."""
    fn()
    sync(device)
    start = time.perf_counter()
    for _ in range(iters):
        fn()
    sync(device)
    return (time.perf_counter() - start) / iters


def parse_args(doc: str, size: int, models: Sequence[str]) -> argparse.Namespace:
    """``--size``, ``--models``, ``--devices`` (default: cpu, and cuda when present), ``--iters``."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--size", type=int, default=size)
    parser.add_argument("--models", nargs="+", default=list(models))
    parser.add_argument("--devices", nargs="+", default=None, help="default: cpu and cuda if any")
    parser.add_argument("--iters", type=int, default=None, help="timed iterations (default: plan)")
    args = parser.parse_args()
    args.devices = args.devices or (["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"])
    return args


def print_environment(size: int) -> None:
    """torch version, CPU threads, load average (CPU timings depend on it), input size, GPU."""
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads, "
        f"load average {os.getloadavg()[0]:.1f}, input {size}x{size}"
    )
    if torch.cuda.is_available():
        print(f"cuda: {torch.cuda.get_device_name(0)}")
