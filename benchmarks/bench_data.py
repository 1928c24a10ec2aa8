"""Benchmark: throughput of the sod training loader (read + augment + collate).

Writes ``--n`` synthetic sod scenes (:func:`cmseg.data.synthetic.write_synthetic`, the
SPNet/XMSNet ``<set>/{RGB,depth,GT}`` layout: JPEG RGB, PNG depth and GT) to a temporary
folder, reads the ``train`` set with :class:`cmseg.data.formats.sod_folders.SODFolders` and
the XMSNet recipe :func:`cmseg.data.transforms.sod_train_transforms` at ``--crop`` x
``--crop``, and iterates a ``torch.utils.data.DataLoader(batch_size=10, num_workers=2,
shuffle=True, persistent_workers=True)`` over it. The first epoch is warm-up (worker start,
page cache); samples per second are measured over the next ``--epochs`` epochs.

Target (issue #4): more than 150 samples/s, so that loading never starves a GPU step.

It also prints a single-process breakdown (ms per sample for reading and for augmenting),
which shows where the time goes, the load average of the machine before the measurement, and
the workers' CPU time per sample (from ``RUSAGE_CHILDREN`` once they are joined), i.e. the
rate the loader could reach on idle cores; on a shared machine the wall-clock rate is lower.

Run: ``python benchmarks/bench_data.py [--n 300] [--size 384] [--epochs 3]``.
"""

from __future__ import annotations

import argparse
import gc
import os
import resource
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import DataLoader

from cmseg.data.formats.sod_folders import SODFolders
from cmseg.data.synthetic import write_synthetic
from cmseg.data.transforms import dataloader_worker_init, sod_train_transforms

TARGET = 150.0


def breakdown(root: Path, crop: int, count: int = 100) -> tuple[float, float]:
    """Single-process ms per sample: (read, augment + to-tensor), one thread as in a worker."""
    cv2.setNumThreads(1)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    reader = SODFolders(root, sets=["train"])
    pipeline = sod_train_transforms(crop)
    count = min(count, len(reader))
    t0 = time.perf_counter()
    samples = [reader[i] for i in range(count)]
    t1 = time.perf_counter()
    for i, sample in enumerate(samples):
        pipeline(sample, rng=i)
    t2 = time.perf_counter()
    cv2.setNumThreads(-1)
    torch.set_num_threads(threads)
    return 1000 * (t1 - t0) / count, 1000 * (t2 - t1) / count


def loader_throughput(
    root: Path, crop: int, epochs: int, workers: int, batch_size: int
) -> tuple[float, int, float]:
    """(samples/s over the measured epochs, samples measured, worker CPU ms per sample)."""
    children_before = _children_cpu()
    dataset = SODFolders(root, sets=["train"], transform=sod_train_transforms(crop))
    loader = DataLoader(
        dataset,
        batch_size=batch_size,
        num_workers=workers,
        shuffle=True,
        persistent_workers=workers > 0,
        worker_init_fn=dataloader_worker_init if workers > 0 else None,
    )
    warm = 0
    for batch in loader:  # warm-up epoch
        assert batch["image"].shape[1:] == (3, crop, crop)
        warm += batch["image"].shape[0]
    seen = 0
    start = time.perf_counter()
    for _ in range(epochs):
        for batch in loader:
            seen += batch["image"].shape[0]
    elapsed = time.perf_counter() - start
    del loader, batch  # shuts the workers down, so that their CPU time is counted
    gc.collect()
    worker_ms = 1000 * (_children_cpu() - children_before) / (warm + seen)
    return seen / elapsed, seen, worker_ms


def _children_cpu() -> float:
    """CPU seconds of the finished child processes (the loader's workers once joined)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=300, help="training scenes written")
    parser.add_argument("--size", type=int, default=384, help="side of the written images")
    parser.add_argument("--crop", type=int, default=384, help="training size (XMSNet: 384)")
    parser.add_argument("--epochs", type=int, default=3, help="measured epochs after warm-up")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=10)
    args = parser.parse_args()

    torch.manual_seed(0)
    with tempfile.TemporaryDirectory(prefix="cmseg_bench_data_") as tmp:
        root = Path(tmp) / "sod"
        t0 = time.perf_counter()
        n_total = int(np.ceil(args.n / 0.8))  # the generator puts 20 % in "test"
        write_synthetic("sod", root, n=n_total, size=args.size, seed=0)
        n_train = len(SODFolders(root, sets=["train"]))
        print(
            f"data: {n_train} synthetic sod training scenes at {args.size}x{args.size} "
            f"(written in {time.perf_counter() - t0:.1f} s)"
        )
        read_ms, aug_ms = breakdown(root, args.crop)
        print(
            f"single process, per sample: read {read_ms:.2f} ms, "
            f"sod_train_transforms({args.crop}) {aug_ms:.2f} ms"
        )
        load = os.getloadavg()[0]
        rate, seen, worker_ms = loader_throughput(
            root, args.crop, args.epochs, args.workers, args.batch_size
        )
    print(
        f"DataLoader(batch_size={args.batch_size}, num_workers={args.workers}, shuffle, "
        f"persistent_workers) on {os.cpu_count()} CPU cores (load average {load:.2f} "
        f"before): {seen} samples over {args.epochs} epochs after 1 warm-up epoch"
    )
    print(
        f"worker CPU time {worker_ms:.2f} ms per sample (read + augment + collate): "
        f"{args.workers} workers on idle cores can deliver at most "
        f"{1000 * args.workers / worker_ms:.0f} samples/s"
    )
    verdict = "OK" if rate > TARGET else "BELOW TARGET"
    print(
        f"sod training loader at {args.crop}x{args.crop}: {rate:.1f} samples/s "
        f"(target > {TARGET:.0f}) {verdict}"
    )


if __name__ == "__main__":
    main()
