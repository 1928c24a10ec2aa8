"""Time the synthetic SOD generator: 1000 scenes at 256x256 (target: under 30 s on 2 cores).

Usage::

    python benchmarks/bench_synth.py [--n 1000] [--size 256] [--workers N] [--keep DIR]
    python benchmarks/bench_synth.py --difficulty     # the numbers of docs/synthetic.md

Prints the seconds for the whole write (RGB JPEG + depth PNG + GT PNG per scene, atomic
writes) and the per-scene cost, the single-process generation cost for reference, and the
ratio to the 30 s target. ``--difficulty`` instead measures the difficulty checks: the
S-measure of the two SOD blob heuristics (clean, camouflage, thermal, corrupted aux maps), the
RIS readers with and without relations, and the share of motion-only RVOS expressions.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

from cmseg.data.synthetic import draw, ris, sod, write_synthetic

TARGET_S = 30.0


def bench(n: int, size: int, workers: int | None, keep: Path | None) -> None:
    # Generation only, one process, 50 scenes: what a scene costs before encoding and I/O.
    t0 = time.perf_counter()
    for i in range(50):
        sod.make_scene(draw.item_rng(0, "sod", i), size)
    gen_ms = (time.perf_counter() - t0) / 50 * 1000

    tmp = None
    out = keep
    if out is None:
        tmp = tempfile.mkdtemp(prefix="cmseg_bench_synth_")
        out = Path(tmp) / "sod"
    try:
        t0 = time.perf_counter()
        summary = write_synthetic(
            "sod", out, n=n, size=size, seed=0, workers=workers, overwrite=True
        )
        seconds = time.perf_counter() - t0
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    print(f"sod scenes: {n} at {size}x{size}, workers: {summary['workers']}")
    print(f"generation only (1 process): {gen_ms:.1f} ms/scene")
    print(f"write_synthetic('sod'): {seconds:.2f} s total, {seconds / n * 1000:.1f} ms/scene")
    verdict = "PASS" if seconds < TARGET_S else "FAIL"
    print(f"target {TARGET_S:.0f} s: {seconds / TARGET_S:.2f} of the budget ({verdict})")


def difficulty(size: int) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="cmseg_synth_difficulty_"))
    try:
        n = 500
        print(f"SOD: S-measure of the blob heuristics, {n} scenes at {size}x{size}, seed 0")
        print(f"{'variant':<42} {'S rgb blob':>10} {'S aux blob':>10} {'gap':>7}")
        variants = {
            "depth": {},
            "depth, camouflage=1": {"camouflage": 1.0},
            "thermal": {"modality": "thermal"},
        }
        for name, options in variants.items():
            out = tmp / name.replace(" ", "_").replace(",", "").replace("=", "")
            write_synthetic("sod", out, n=n, size=size, seed=0, test_fraction=0.0, **options)
            r = sod.difficulty(out, "train")
            print(f"{name:<42} {r['S_rgb_blob']:>10.3f} {r['S_aux_blob']:>10.3f} {r['gap']:>7.3f}")
        clean = tmp / "depth"
        corruptions = {
            "noise=0.1": {"noise": 0.1},
            "noise=0.3": {"noise": 0.3},
            "holes=0.3": {"holes": 0.3},
            "blur=4": {"blur": 4.0},
            "shift=8": {"shift": 8.0},
            "shift=24": {"shift": 24.0},
            "missing=0.5": {"missing": 0.5},
            "noise=0.2 holes=0.2 blur=2 shift=8": {
                "noise": 0.2,
                "holes": 0.2,
                "blur": 2.0,
                "shift": 8.0,
            },
        }
        for name, corruption in corruptions.items():
            out = tmp / ("c_" + name.replace(" ", "_").replace("=", ""))
            sod.write_corrupted_set(clean, "train", out, seed=0, **corruption)
            r = sod.difficulty(out, "train")
            label = f"depth, {name}"
            print(f"{label:<42} {r['S_rgb_blob']:>10.3f} {r['S_aux_blob']:>10.3f} {r['gap']:>7.3f}")

        n_ris = 1000
        out = tmp / "ris"
        summary = write_synthetic("ris", out, n=n_ris, size=size, seed=0)
        r = ris.difficulty(out)
        print(f"\nRIS: {n_ris} images, {summary['refs']} refs, {r['sentences']} sentences")
        print(f"relation-only sentences: {r['relation_only']} ({r['relation_only_share']:.3f})")
        print(f"{'reader':<28} {'all':>7} {'relation-only':>14}")
        print(
            f"{'grammar with relations':<28} {r['full_accuracy']:>7.3f} "
            f"{r['relation_only_full_accuracy']:>14.3f}"
        )
        print(
            f"{'colour + shape words only':<28} {r['colour_shape_accuracy']:>7.3f} "
            f"{r['relation_only_colour_shape_accuracy']:>14.3f}"
        )
        print(
            f"relation-only sentences with >= 2 colour+shape matches: {r['ro_cs_ambiguous']}"
            f" of {r['relation_only']}"
        )

        for layout in ("ytvos", "mevis"):
            summary = write_synthetic(
                "rvos", tmp / f"rvos_{layout}", n=200, size=128, layout=layout
            )
            exps = sum(s["expressions"] for s in summary["splits"].values())
            multi = sum(s["multi_object"] for s in summary["splits"].values())
            print(
                f"\nRVOS ({layout}): 200 clips, {exps} expressions, motion-only share "
                f"{summary['motion_only_share']:.3f}, multi-object expressions {multi}"
            )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--workers", type=int, default=None, help="default: CPU count")
    parser.add_argument("--keep", type=Path, default=None, help="write here and keep the files")
    parser.add_argument("--difficulty", action="store_true", help="measure the difficulty checks")
    args = parser.parse_args()
    if args.difficulty:
        difficulty(args.size)
    else:
        bench(args.n, args.size, args.workers, args.keep)


if __name__ == "__main__":
    main()
