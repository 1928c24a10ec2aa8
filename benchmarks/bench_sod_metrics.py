"""SOD metrics: PySODMetrics 1.6 against cmseg.metrics.sod, same data, same process.

Data: 200 synthetic 320x320 pairs: blob GTs (low-frequency noise thresholded, ~22% foreground,
every 50th GT empty) and soft predictions (the GT shifted, blurred, noised, as uint8).

For each of MAE, S, E, F and weighted F: ms per image on each side, best of 3 passes over all
images (the passes alternate between the sides, so a busy machine slows both alike), and the
ratio. PySODMetrics runs one class per metric, as it is used. cmseg computes the
five in one call per image from shared statistics; its per-metric line times that metric's own
work on the same prepared input (normalisation and the histograms it needs included), so the
per-metric lines overlap and the cmseg total is the real one: ``SODEvaluator.update`` for all
five plus IoU/Dice, every curve and the per-item record.

Then the largest |difference| between the two sides: dataset values, curves, per-image values.
It must be 0 up to rounding (<= 1e-10).

Both sides single-threaded: OMP_NUM_THREADS=1 (set before numpy loads) and cv2.setNumThreads(1).
Run: python benchmarks/bench_sod_metrics.py [--images 200] [--size 320] [--runs 3]
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from collections.abc import Callable  # noqa: E402

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from cmseg.metrics import sod  # noqa: E402

Pairs = list[tuple[np.ndarray, np.ndarray]]
METRICS = ("MAE", "S", "E", "F", "wF")


def make_pairs(count: int, size: int, seed: int = 0) -> Pairs:
    """Blob GTs (smooth noise above its 78% quantile) and soft, shifted, noisy predictions."""
    rng = np.random.default_rng(seed)
    pairs = []
    for i in range(count):
        noise = cv2.GaussianBlur(rng.standard_normal((size, size)), (0, 0), size / 25)
        gt = np.where(noise > np.quantile(noise, 0.78), 255, 0).astype(np.uint8)
        if i % 50 == 49:
            gt[:] = 0
        shift = tuple(int(s) for s in rng.integers(-6, 7, size=2))
        soft = cv2.GaussianBlur(np.roll(gt, shift, axis=(0, 1)).astype(np.float64), (0, 0), 4)
        pred = np.clip(0.85 * soft + rng.normal(0, 18, soft.shape) + 10, 0, 255).astype(np.uint8)
        pairs.append((pred, gt))
    return pairs


def timed(fn: Callable[[], object]) -> float:
    """Wall time of one call, in seconds."""
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


# --------------------------------------------------------------------------------------------
# PySODMetrics side


def run_reference(name: str, pairs: Pairs):
    import py_sod_metrics as psm

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Fmeasure is deprecated in favour of FmeasureV2
        metric = {
            "MAE": psm.MAE,
            "S": psm.Smeasure,
            "E": psm.Emeasure,
            "F": psm.Fmeasure,
            "wF": psm.WeightedFmeasure,
        }[name]()
    for pred, gt in pairs:
        metric.step(pred, gt)
    return metric


def reference_values(
    pairs: Pairs,
) -> tuple[dict[str, float], dict[str, np.ndarray], list[dict[str, float]]]:
    """Dataset values, curves (ascending thresholds) and per-image values of PySODMetrics."""
    m = {name: run_reference(name, pairs) for name in METRICS}
    em, fm = m["E"].get_results()["em"], m["F"].get_results()
    dataset = {
        "mae": m["MAE"].get_results()["mae"],
        "sm": m["S"].get_results()["sm"],
        "wfm": m["wF"].get_results()["wfm"],
        "em.adp": em["adp"],
        "em.mean": em["curve"].mean(),
        "em.max": em["curve"].max(),
        "fm.adp": fm["fm"]["adp"],
        "fm.mean": fm["fm"]["curve"].mean(),
        "fm.max": fm["fm"]["curve"].max(),
    }
    curves = {
        "em": em["curve"][::-1],
        "fm": fm["fm"]["curve"][::-1],
        "precision": fm["pr"]["p"][::-1],
        "recall": fm["pr"]["r"][::-1],
    }
    per_image = [
        {
            "mae": m["MAE"].maes[i],
            "sm": m["S"].sms[i],
            "wfm": m["wF"].weighted_fms[i],
            "em.adp": m["E"].adaptive_ems[i],
            "fm.adp": m["F"].adaptive_fms[i],
        }
        for i in range(len(pairs))
    ]
    return dataset, curves, per_image


# --------------------------------------------------------------------------------------------
# cmseg side: each metric's own work, on the shared preparation


def _counts(pair: sod.PreparedPair):
    h_bg, h_fg = sod.level_histograms(pair)
    quantized = (pair.values * 255).astype(np.uint8)
    tp = sod._cumulative_counts(h_fg[0], quantized)
    fp = sod._cumulative_counts(h_bg[0], quantized)
    selected = pair.values >= min(2 * pair.mean, 1.0)
    return tp, fp, h_fg[0][selected].sum(), h_bg[0][selected].sum()


def cmseg_mae(pairs: Pairs) -> None:
    for pred, gt in pairs:
        pair = sod.prepare_pair(pred, gt)
        h_bg, h_fg = sod.level_histograms(pair)
        sod.mae(pair, h_bg[0], h_fg[0])


def cmseg_s(pairs: Pairs) -> None:
    for pred, gt in pairs:
        pair = sod.prepare_pair(pred, gt)
        quadrants = sod.centroid_quadrants(pair.mask) if 0 < pair.n_fg < pair.pred.size else None
        sod.smeasure(pair, quadrants, *sod.level_histograms(pair, quadrants))


def cmseg_e(pairs: Pairs) -> None:
    for pred, gt in pairs:
        pair = sod.prepare_pair(pred, gt)
        tp, fp, tp_adp, fp_adp = _counts(pair)
        sod.emeasure_from_counts(tp, fp, pair.n_fg, pair.pred.size)
        sod.emeasure_from_counts(tp_adp, fp_adp, pair.n_fg, pair.pred.size)


def cmseg_f(pairs: Pairs) -> None:
    for pred, gt in pairs:
        pair = sod.prepare_pair(pred, gt)
        tp, fp, tp_adp, fp_adp = _counts(pair)
        for t, f in (
            (tp, fp),
            (tp_adp, fp_adp),
        ):  # precision, recall, F (+ IoU, Dice, E: all in one)
            sod.threshold_metrics(t, f, pair.n_fg, pair.pred.size)


def cmseg_wf(pairs: Pairs) -> None:
    for pred, gt in pairs:
        pair = sod.prepare_pair(pred, gt)
        sod.weighted_fmeasure(pair)


def cmseg_all(pairs: Pairs) -> sod.SODEvaluator:
    ev = sod.SODEvaluator()
    for i, (pred, gt) in enumerate(pairs):
        ev.update(pred, gt, name=str(i))
    return ev


CMSEG = {"MAE": cmseg_mae, "S": cmseg_s, "E": cmseg_e, "F": cmseg_f, "wF": cmseg_wf}


def largest_differences(pairs: Pairs) -> dict[str, float]:
    """max |pysodmetrics - cmseg| per value (dataset, curves, per image)."""
    dataset, curves, per_image = reference_values(pairs)
    ev = cmseg_all(pairs)
    out, our_curves = ev.compute(), ev.curves()

    def get(result: dict, key: str) -> float:
        metric, _, stat = key.partition(".")
        return result[metric][stat] if stat else result[metric]

    diffs = {key: abs(value - get(out, key)) for key, value in dataset.items()}
    for key, curve in curves.items():
        diffs[f"curve.{key}"] = float(np.abs(np.asarray(our_curves[key]) - curve).max())
    items = list(ev.per_item().values())
    for key in per_image[0]:
        diffs[f"per_image.{key}"] = max(
            abs(r[key] - get(it, key)) for r, it in zip(per_image, items, strict=True)
        )
    return diffs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--size", type=int, default=320)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    cv2.setNumThreads(1)
    pairs = make_pairs(args.images, args.size)
    n = len(pairs)
    print(
        f"{n} pairs {args.size}x{args.size}, best of {args.runs}, ms/image; both sides single-threaded "
        "(OMP_NUM_THREADS=1, cv2.setNumThreads(1))"
    )
    # the passes interleave the two sides, so that a busy machine slows both alike
    times: dict[str, list[float]] = {}
    for _ in range(args.runs):
        for name in METRICS:
            times.setdefault(f"ref.{name}", []).append(
                timed(lambda name=name: run_reference(name, pairs))
            )
            times.setdefault(f"cmseg.{name}", []).append(
                timed(lambda name=name: CMSEG[name](pairs))
            )
        times.setdefault("cmseg.total", []).append(timed(lambda: cmseg_all(pairs)))
    ms = {key: min(values) / n * 1e3 for key, values in times.items()}

    print(f"{'metric':7s} {'pysodmetrics':>13s} {'cmseg':>8s} {'ratio':>7s}")
    for name in METRICS:
        ref_ms, ours_ms = ms[f"ref.{name}"], ms[f"cmseg.{name}"]
        print(f"{name:7s} {ref_ms:13.3f} {ours_ms:8.3f} {ref_ms / ours_ms:6.1f}x")
    ref_total, total = sum(ms[f"ref.{name}"] for name in METRICS), ms["cmseg.total"]
    print(
        f"{'total':7s} {ref_total:13.3f} {total:8.3f} {ref_total / total:6.1f}x"
        "   (pysodmetrics: sum of the five; cmseg: SODEvaluator.update, all at once)"
    )

    diffs = largest_differences(pairs)
    print("max |pysodmetrics - cmseg|: " + ", ".join(f"{k} {v:.1e}" for k, v in diffs.items()))
    worst = max(diffs.values())
    print(
        f"largest |difference| {worst:.2e}: {'identical (<= 1e-10)' if worst <= 1e-10 else 'MISMATCH'}"
    )


if __name__ == "__main__":
    main()
