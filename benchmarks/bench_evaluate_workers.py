"""Folder evaluation on 1 vs 2 worker processes (``cmseg evaluate``'s --workers).

Writes 200 synthetic 320x320 SOD pairs and 12 indexed-mask videos (480x854, 2 objects, 40
frames), then times ``evaluate_folders`` with 1 and 2 workers, best of 3, and checks that the
numbers are identical. Run: ``python benchmarks/bench_evaluate_workers.py``.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import numpy as np

from cmseg.engine.evaluate import evaluate_folders
from cmseg.io import write_png
from cmseg.tasks import load_evaluation

PALETTE = np.array([[0, 0, 0], [255, 0, 0], [0, 255, 0]])


def write_sod(root: Path, n: int = 200, size: int = 320) -> None:
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:size, :size]
    for i in range(n):
        cy, cx, r = rng.uniform(80, 240), rng.uniform(80, 240), rng.uniform(30, 90)
        gt = (yy - cy) ** 2 + (xx - cx) ** 2 < r**2
        pred = np.clip(gt * 170 + rng.normal(50, 35, gt.shape), 0, 255).astype(np.uint8)
        write_png(root / "gt" / f"{i:04d}.png", gt)
        write_png(root / "pred" / f"{i:04d}.png", pred)


def write_vos(root: Path, videos: int = 12, frames: int = 40) -> None:
    rng = np.random.default_rng(1)
    for v in range(videos):
        for t in range(frames):
            g = np.zeros((480, 854), np.uint8)
            g[100 + t : 260 + t, 200 + 2 * t : 420 + 2 * t] = 1
            g[300:420, 500 + t : 700 + t] = 2
            p = np.roll(g, int(rng.integers(-4, 5)), axis=1)
            write_png(root / "gt" / f"v{v:02d}" / f"{t:05d}.png", g, palette=PALETTE)
            write_png(root / "pred" / f"v{v:02d}" / f"{t:05d}.png", p, palette=PALETTE)


def best_of(task: str, root: Path, workers: int, repeats: int = 3) -> tuple[float, dict]:
    times, result = [], {}
    for _ in range(repeats):
        start = time.perf_counter()
        result = evaluate_folders(
            load_evaluation(task), root / "pred", root / "gt", workers=workers
        ).result
        times.append(time.perf_counter() - start)
    return min(times), result


def main() -> None:
    print(f"cores available: {len(os.sched_getaffinity(0))}")
    with tempfile.TemporaryDirectory() as tmp:
        for task, writer, what in (
            ("sod", write_sod, "200 pairs 320x320"),
            ("rvos", write_vos, "12 videos x 40 frames 480x854, 2 objects"),
        ):
            root = Path(tmp) / task
            writer(root)
            t1, r1 = best_of(task, root, 1)
            t2, r2 = best_of(task, root, 2)
            same = "identical" if r1 == r2 else "DIFFERENT"
            print(
                f"{task:5s} ({what}): 1 worker {t1:.2f} s, 2 workers {t2:.2f} s, speed-up x{t1 / t2:.2f}; results {same}"
            )


if __name__ == "__main__":
    main()
