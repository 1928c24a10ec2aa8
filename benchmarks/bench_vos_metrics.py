"""Benchmark: DAVIS J&F, cmseg.metrics.vos vs a re-implementation of the official toolkit.

Synthetic sequence: 480x854, 3 objects, 82 frames (80 scored: first and last are not), GT and
prediction written as palette PNGs to a temporary folder. Measured in one run, single-threaded:

(a) reference: the algorithm of the official davis2017-evaluation toolkit, written here from
    its description (not copied): GT frames decoded into a float64 (T, H, W) array (255 void
    zeroed), predictions read for the scored frames only, one-hot by the float64 broadcast
    ``np.ones((K, T, H, W)) * arange == masks``, J vectorised over frames, F per frame with the
    BSDS seg2bmap and cv2.dilate by skimage.morphology.disk, statistics with uint8 bin ids;
(b) cmseg: PNG reading into uint8 stacks plus ``VOSEvaluator("davis").update``.

Times are the best of ``--repeats`` alternating rounds (both sides), in ms per scored frame per object
(total time / (scored frames x objects)); loading includes PNG decoding on both sides. The run
fails if the per-frame J/F values or the per-object statistics differ in any bit.

Run: ``PYTHONPATH=. python benchmarks/bench_vos_metrics.py [--frames 82] [--repeats 5]``.
Needs scikit-image (reference side only).
"""

from __future__ import annotations

import os

# Single-threaded on both sides: set before numpy / OpenCV are imported.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from functools import partial  # noqa: E402
from pathlib import Path  # noqa: E402

import cv2  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402
from skimage.morphology import disk as sk_disk  # noqa: E402

from cmseg.metrics.vos import VOSEvaluator, davis_sequence  # noqa: E402

cv2.setNumThreads(1)

try:
    from cmseg.io import read_index_mask as _read_index_mask

    READER = "cmseg.io.read_index_mask"
except ImportError:  # the io module is written in parallel; fall back to plain PIL

    def _read_index_mask(path: str | os.PathLike[str]) -> np.ndarray:
        return np.asarray(Image.open(path))

    READER = "np.asarray(PIL.Image.open(p)) (cmseg.io not available)"

H, W, K = 480, 854, 3


# --------------------------------------------------------------------------------------------
# Synthetic data


def make_sequence(n_frames: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """GT and prediction index masks (T, H, W) uint8: 3 moving ellipses, imperfect prediction."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:H, :W]
    gt = np.zeros((n_frames, H, W), np.uint8)
    pred = np.zeros((n_frames, H, W), np.uint8)
    # (centre y, centre x, semi-axes) per object: a large, a medium and a small object.
    objs = [(240, 300, 150, 110), (180, 620, 70, 90), (380, 700, 35, 50)]
    for t in range(n_frames):
        for k, (cy, cx, ay, ax) in enumerate(objs, start=1):
            cy_t = cy + 30 * np.sin(t / 9 + k)
            cx_t = cx + 60 * np.cos(t / 13 + 2 * k)
            gt[t][((yy - cy_t) / ay) ** 2 + ((xx - cx_t) / ax) ** 2 < 1] = k
            if k == 3 and t % 17 == 5:
                continue  # the prediction misses the small object now and then
            # Prediction: drifts, changes scale and gets a wobbly outline.
            dy, dx = rng.normal(0, 3 + t / 20, 2)
            s = 1 + rng.normal(0, 0.05)
            wob = 1 + 0.08 * np.sin(np.arctan2(yy - cy_t, xx - cx_t) * (3 + k) + t / 5)
            inside = ((yy - cy_t - dy) / (ay * s)) ** 2 + ((xx - cx_t - dx) / (ax * s)) ** 2 < wob
            pred[t][inside] = k
    return gt, pred


def palette() -> list[int]:
    pal = [0, 0, 0, 128, 0, 0, 0, 128, 0, 128, 128, 0] + [0] * (256 - 4) * 3
    pal[255 * 3 : 255 * 3 + 3] = [224, 224, 192]
    return pal


def write_pngs(folder: Path, masks: np.ndarray) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for t, m in enumerate(masks):
        img = Image.fromarray(m, mode="P")
        img.putpalette(palette())
        p = folder / f"{t:05d}.png"
        img.save(p)
        paths.append(p)
    return paths


# --------------------------------------------------------------------------------------------
# (a) Reference: the official toolkit's algorithm, re-implemented from its description


def ref_load_gt(paths: list[Path]) -> np.ndarray:
    """GT stack as the toolkit loads it: float64, 255 void zeroed, float64 one-hot (K, T, H, W)."""
    first = np.array(Image.open(paths[0]))
    masks = np.zeros((len(paths), *first.shape))  # float64
    for i, p in enumerate(paths):
        masks[i, ...] = np.array(Image.open(p))
        masks[i, masks[i, ...] == 255] = 0  # void pixels (the void mask itself is unused here)
    n_obj = int(np.max(masks[0, ...]))
    onehot = np.ones((n_obj, *masks.shape))
    onehot = onehot * np.arange(1, n_obj + 1)[:, None, None, None]
    return (onehot == masks[None, ...]) > 0


def ref_load_pred(paths: list[Path]) -> np.ndarray:
    """Prediction stack as the toolkit loads it (only the frames it scores)."""
    first = np.array(Image.open(paths[0]))
    masks = np.zeros((len(paths), *first.shape))
    for i, p in enumerate(paths):
        masks[i, ...] = np.array(Image.open(p))
    n_obj = int(np.max(masks))
    onehot = np.ones((n_obj, *masks.shape))
    onehot = onehot * np.arange(1, n_obj + 1)[:, None, None, None]
    return (onehot == masks[None, ...]) > 0


def ref_iou(gt: np.ndarray, pred: np.ndarray) -> np.ndarray:
    gt = gt.astype(bool)
    pred = pred.astype(bool)
    inter = np.sum(gt & pred, axis=(-2, -1))
    union = np.sum(gt | pred, axis=(-2, -1))
    with np.errstate(divide="ignore", invalid="ignore"):
        j = inter / union
    j[np.isclose(union, 0)] = 1
    return j


def ref_bmap(seg: np.ndarray) -> np.ndarray:
    seg = seg.astype(bool)
    east = np.zeros_like(seg)
    south = np.zeros_like(seg)
    south_east = np.zeros_like(seg)
    east[:, :-1] = seg[:, 1:]
    south[:-1, :] = seg[1:, :]
    south_east[:-1, :-1] = seg[1:, 1:]
    b = (seg ^ east) | (seg ^ south) | (seg ^ south_east)
    b[-1, :] = seg[-1, :] ^ east[-1, :]
    b[:, -1] = seg[:, -1] ^ south[:, -1]
    b[-1, -1] = False
    return b


def ref_f_frame(fg: np.ndarray, gt: np.ndarray, bound_th: float = 0.008) -> float:
    r = bound_th if bound_th >= 1 else np.ceil(bound_th * np.linalg.norm(fg.shape))
    fg_b = ref_bmap(fg)
    gt_b = ref_bmap(gt)
    se = sk_disk(int(r)).astype(np.uint8)
    fg_dil = cv2.dilate(fg_b.astype(np.uint8), se)
    gt_dil = cv2.dilate(gt_b.astype(np.uint8), se)
    gt_match = gt_b * fg_dil
    fg_match = fg_b * gt_dil
    n_fg = np.sum(fg_b)
    n_gt = np.sum(gt_b)
    if n_fg == 0 and n_gt > 0:
        precision, recall = 1.0, 0.0
    elif n_fg > 0 and n_gt == 0:
        precision, recall = 0.0, 1.0
    elif n_fg == 0 and n_gt == 0:
        precision, recall = 1.0, 1.0
    else:
        precision = np.sum(fg_match) / float(n_fg)
        recall = np.sum(gt_match) / float(n_gt)
    if precision + recall == 0:
        return 0.0
    return 2 * precision * recall / (precision + recall)


def ref_boundary(gt: np.ndarray, pred: np.ndarray) -> np.ndarray:
    out = np.zeros(gt.shape[0])
    for t in range(gt.shape[0]):  # per-frame loop, as the toolkit
        out[t] = ref_f_frame(pred[t], gt[t])
    return out


def ref_stats(v: np.ndarray) -> tuple[float, float, float]:
    mean = np.nanmean(v)
    recall = np.nanmean(v > 0.5)
    ids = (np.round(np.linspace(1, len(v), 5) + 1e-10) - 1).astype(np.uint8)  # the toolkit's cast
    bins = [v[ids[i] : ids[i + 1] + 1] for i in range(4)]
    decay = np.nanmean(bins[0]) - np.nanmean(bins[3])
    return float(mean), float(recall), float(decay)


def ref_metrics(gt1h: np.ndarray, pred1h: np.ndarray) -> tuple[list, np.ndarray, np.ndarray]:
    if pred1h.shape[0] < gt1h.shape[0]:  # zero padding of missing objects
        pad = np.zeros((gt1h.shape[0] - pred1h.shape[0], *pred1h.shape[1:]))
        pred1h = np.concatenate([pred1h, pad], axis=0)
    j = np.zeros(gt1h.shape[:2])
    f = np.zeros(gt1h.shape[:2])
    for k in range(gt1h.shape[0]):
        j[k] = ref_iou(gt1h[k], pred1h[k])
        f[k] = ref_boundary(gt1h[k], pred1h[k])
    stats = [(ref_stats(j[k]), ref_stats(f[k])) for k in range(gt1h.shape[0])]
    return stats, j, f


# --------------------------------------------------------------------------------------------
# (b) cmseg


def cmseg_load(paths: list[Path]) -> np.ndarray:
    first = _read_index_mask(paths[0])
    out = np.empty((len(paths), *first.shape), dtype=first.dtype)
    out[0] = first
    for i, p in enumerate(paths[1:], start=1):
        out[i] = _read_index_mask(p)
    return out


# --------------------------------------------------------------------------------------------


def timed(fn: Callable[[], object]) -> tuple[float, object]:
    t0 = time.perf_counter()
    result = fn()
    return time.perf_counter() - t0, result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--frames", type=int, default=82, help="frames per sequence (first and last are not scored)"
    )
    ap.add_argument("--repeats", type=int, default=5, help="alternating rounds; best kept")
    args = ap.parse_args()
    n = args.frames

    gt, pred = make_sequence(n)
    with tempfile.TemporaryDirectory() as tmp:
        gt_paths = write_pngs(Path(tmp) / "gt", gt)
        pred_paths = write_pngs(Path(tmp) / "pred", pred)
        units = (n - 2) * K  # scored frames x objects

        def ref_load() -> tuple[np.ndarray, np.ndarray]:
            g = ref_load_gt(gt_paths)[:, 1:-1]
            p = ref_load_pred(pred_paths[1:-1])
            return g, p

        def cm_load() -> tuple[np.ndarray, np.ndarray]:
            return cmseg_load(gt_paths), cmseg_load(pred_paths)

        def cm_metrics(p: np.ndarray, g: np.ndarray) -> dict:
            ev = VOSEvaluator("davis")
            ev.update(p, g, "seq")
            return ev.per_sequence()["seq"]

        # Rounds alternate between the two sides so that a busy machine hurts both alike; each
        # step keeps its best time. Round 1 is also reported: it is "cold" (fresh process, the
        # reference's ~800 MB float64 temporaries are first-touched then).
        times: dict[str, list[float]] = {"ref_load": [], "ref_met": [], "cm_load": [], "cm_met": []}
        for _ in range(args.repeats):
            t, onehots = timed(ref_load)
            times["ref_load"].append(t)
            t, (ref_st, ref_j, ref_f) = timed(partial(ref_metrics, *onehots))
            times["ref_met"].append(t)
            del onehots  # the bool one-hots (~200 MB)
            t, (g_cm, p_cm) = timed(cm_load)
            times["cm_load"].append(t)
            t, cm_res = timed(partial(cm_metrics, p_cm, g_cm))
            times["cm_met"].append(t)
        first = {k: v[0] for k, v in times.items()}
        best = {k: min(v) for k, v in times.items()}
        t_ref_load, t_ref_met = best["ref_load"], best["ref_met"]
        t_cm_load, t_cm_met = best["cm_load"], best["cm_met"]

    # Identity checks (outside the timings).
    cm_j, cm_f = davis_sequence(p_cm, g_cm)
    same_frames = np.array_equal(cm_j, ref_j) and np.array_equal(cm_f, ref_f)

    def mrd(entry: dict) -> tuple[float, float, float]:
        return (entry["mean"], entry["recall"], entry["decay"])

    same_stats = all(
        (mrd(cm_res[k + 1]["J"]), mrd(cm_res[k + 1]["F"])) == ref_st[k] for k in range(K)
    )

    def ms(t: float) -> float:
        return 1000 * t / units

    ref_total = t_ref_load + t_ref_met
    cm_total = t_cm_load + t_cm_met
    print(f"DAVIS J&F benchmark: {H}x{W}, {K} objects, {n} frames ({n - 2} scored), palette PNGs")
    print(
        f"single-threaded: cv2.setNumThreads(1), OMP/OPENBLAS/MKL_NUM_THREADS=1; "
        f"best of {args.repeats} alternating rounds"
    )
    print(f"cmseg PNG reader: {READER}")
    print("times in ms per scored frame per object:")
    print(f"  {'':<28}{'loading':>10}{'metrics':>10}{'total':>10}")
    print(
        f"  {'reference (toolkit algo)':<28}{ms(t_ref_load):>10.3f}{ms(t_ref_met):>10.3f}{ms(ref_total):>10.3f}"
    )
    print(f"  {'cmseg':<28}{ms(t_cm_load):>10.3f}{ms(t_cm_met):>10.3f}{ms(cm_total):>10.3f}")
    print(
        f"  speed-up (reference / cmseg): loading {t_ref_load / t_cm_load:.1f}x, "
        f"metrics {t_ref_met / t_cm_met:.1f}x, total {ref_total / cm_total:.1f}x "
        f"(cmseg total = {cm_total / ref_total:.3f} of the reference; target <= 0.200)"
    )
    cold_ref = first["ref_load"] + first["ref_met"]
    cold_cm = first["cm_load"] + first["cm_met"]
    print(
        f"  round 1 only (cold): reference {ms(cold_ref):.3f}, cmseg {ms(cold_cm):.3f} "
        f"(cmseg = {cold_cm / cold_ref:.3f} of the reference)"
    )
    print(
        f"  per-frame J and F arrays identical: {same_frames}; per-object M/R/D identical: {same_stats}"
    )
    for k in range(K):
        (jm, jr, jd), (fm, fr, fd) = ref_st[k]
        print(
            f"  object {k + 1}: J M/R/D = {jm:.6f}/{jr:.6f}/{jd:.6f}  F M/R/D = {fm:.6f}/{fr:.6f}/{fd:.6f}"
        )
    if not (same_frames and same_stats):
        raise SystemExit("MISMATCH between cmseg and the reference")


if __name__ == "__main__":
    main()
