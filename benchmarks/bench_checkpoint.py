"""Time the SHA-256 check of checkpoint loading on a 100 MB checkpoint.

Usage::

    python benchmarks/bench_checkpoint.py [--mb 100] [--repeats 5]

Saves a checkpoint of ``--mb`` MB of float32 weights, then prints the median seconds of
``load_checkpoint`` with ``verify=False`` (safetensors maps the file: nearly free until the
tensors are touched), of the same followed by touching every tensor (what building a model
from them costs at least), and of ``verify=True`` (the hash, plus the same); the extra seconds
per 100 MB and the ratio of verified to touched loading are the reference measured in the same
run. The file is warm in the page cache, as when a predictor is started twice.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch

from cmseg.engine.checkpoint import load_checkpoint, save_checkpoint


def median_seconds(fn, repeats: int) -> float:  # noqa: ANN001 - any callable
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def touched(folder: Path, verify: bool) -> None:
    state_dict, _ = load_checkpoint(folder, verify=verify)
    for tensor in state_dict.values():
        tensor.sum()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=100, help="size of the weights in MB")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    weights = {f"w{i}": torch.randn(args.mb * 1_000_000 // 40) for i in range(10)}
    with tempfile.TemporaryDirectory(prefix="cmseg_bench_ckpt_") as tmp:
        start = time.perf_counter()
        folder = save_checkpoint(Path(tmp) / "last", weights, step=0)
        save_s = time.perf_counter() - start
        size_mb = (folder / "model.safetensors").stat().st_size / 1e6
        plain = median_seconds(lambda: load_checkpoint(folder, verify=False), args.repeats)
        used = median_seconds(lambda: touched(folder, False), args.repeats)
        verified = median_seconds(lambda: touched(folder, True), args.repeats)
    extra = (verified - used) * 100 / size_mb
    print(f"checkpoint of {size_mb:.0f} MB (saved with its checksums in {save_s:.2f} s)")
    print(f"load, mapped only        {plain:8.3f} s")
    print(f"load + touch tensors     {used:8.3f} s")
    print(f"load + verify + touch    {verified:8.3f} s")
    print(f"verification: +{extra:.3f} s per 100 MB, {verified / used:.1f}x the touched load")


if __name__ == "__main__":
    main()
