"""The PySODMetrics 1.6 reference and the generated (prediction, GT) cases of the SOD tests.

Imported by the test modules next to it (pytest puts this folder on ``sys.path``). The whole
folder is skipped when pysodmetrics is not installed, as the single test module was.
"""

from __future__ import annotations

import warnings

import cv2
import numpy as np
import pytest

from cmseg.metrics.sod import resize_to

psm = pytest.importorskip("py_sod_metrics")

TOL = 1e-10
KEYS = ("mae", "sm", "wfm")
THRESHOLDED = ("em", "fm", "iou", "dice")

# PySODMetrics' own warnings when its S-measure meets an empty quadrant (it returns NaN there)
reference_nan_warnings = pytest.mark.filterwarnings(
    "ignore:Mean of empty slice:RuntimeWarning", "ignore:invalid value encountered:RuntimeWarning"
)


class Reference:
    """PySODMetrics' classes for every key of SODEvaluator.compute()."""

    def __init__(self) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Fmeasure is deprecated (FmeasureV2 is checked too)
            self.fm = psm.Fmeasure()
        self.mae, self.sm = psm.MAE(), psm.Smeasure()
        self.wfm, self.em = psm.WeightedFmeasure(), psm.Emeasure()
        self.v2 = psm.FmeasureV2(
            metric_handlers={
                "iou": psm.IOUHandler(with_dynamic=True, with_adaptive=True),
                "dice": psm.DICEHandler(with_dynamic=True, with_adaptive=True),
                "fm": psm.FmeasureHandler(with_dynamic=True, with_adaptive=True, beta=0.3),
            }
        )

    def step(self, pred: np.ndarray, gt: np.ndarray) -> None:
        for metric in (self.fm, self.mae, self.sm, self.wfm, self.em, self.v2):
            metric.step(pred, gt)

    def results(self) -> tuple[dict, dict]:
        """(compute()-shaped dict, curves in ascending threshold order)."""
        fm, em, v2 = self.fm.get_results(), self.em.get_results()["em"], self.v2.get_results()
        out = {
            "mae": self.mae.get_results()["mae"],
            "sm": self.sm.get_results()["sm"],
            "wfm": self.wfm.get_results()["wfm"],
            "em": {"adp": em["adp"], "mean": em["curve"].mean(), "max": em["curve"].max()},
            "fm": {
                "adp": fm["fm"]["adp"],
                "mean": fm["fm"]["curve"].mean(),
                "max": fm["fm"]["curve"].max(),
            },
        }
        for name in ("iou", "dice"):
            out[name] = {
                "adp": v2[name]["adaptive"],
                "mean": v2[name]["dynamic"].mean(),
                "max": v2[name]["dynamic"].max(),
            }
        # FmeasureV2's F equals the old Fmeasure's (the library's own tests assert it)
        assert np.allclose(v2["fm"]["dynamic"], fm["fm"]["curve"], rtol=0, atol=TOL)
        curves = {
            "precision": fm["pr"]["p"],
            "recall": fm["pr"]["r"],
            "fm": fm["fm"]["curve"],
            "em": em["curve"],
            "iou": v2["iou"]["dynamic"],
            "dice": v2["dice"]["dynamic"],
        }
        return out, {k: np.asarray(v)[::-1] for k, v in curves.items()}  # theirs: descending


def reference_of(pairs) -> tuple[dict, dict]:
    ref = Reference()
    for pred, gt in pairs:
        ref.step(pred, gt)
    return ref.results()


def assert_results_equal(ours: dict, ref: dict, what: str) -> None:
    for key in KEYS:
        assert abs(ours[key] - ref[key]) <= TOL, (what, key, ours[key], ref[key])
    for name in THRESHOLDED:
        for stat in ("adp", "mean", "max"):
            assert abs(ours[name][stat] - ref[name][stat]) <= TOL, (
                what,
                name,
                stat,
                ours[name][stat],
                ref[name][stat],
            )


def blobs(
    rng: np.random.Generator, shape: tuple[int, int], fraction: float, sigma: float
) -> np.ndarray:
    """(H, W) uint8 0/255 mask: the top ``fraction`` of smoothed noise (blob size ~ sigma)."""
    noise = cv2.GaussianBlur(rng.standard_normal(shape), (0, 0), sigma)
    return np.where(noise > np.quantile(noise, 1 - fraction), 255, 0).astype(np.uint8)


def soft(rng: np.random.Generator, gt: np.ndarray, noise: float = 25.0) -> np.ndarray:
    """(H, W) uint8 prediction: the GT blurred, dimmed, offset and with Gaussian noise."""
    blurred = cv2.GaussianBlur(gt.astype(np.float64), (0, 0), 2)
    noisy = blurred * 0.8 + rng.normal(0, noise, gt.shape) + 20
    return np.clip(noisy, 0, 255).astype(np.uint8)


def make_cases() -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(id, pred, gt) covering the edge cases; every pred already has its GT's shape."""
    rng = np.random.default_rng(20240611)
    cases = []

    def add(name: str, pred: np.ndarray, gt: np.ndarray) -> None:
        pred = np.ascontiguousarray(pred, dtype=np.uint8)
        cases.append((name, pred, np.ascontiguousarray(gt, dtype=np.uint8)))

    blob = blobs(rng, (48, 64), 0.25, 4)
    add("empty_gt_soft", rng.integers(0, 256, (40, 30)), np.zeros((40, 30)))
    add("empty_gt_zero_pred", np.zeros((40, 30)), np.zeros((40, 30)))
    add("empty_gt_constant_pred", np.full((40, 30), 77), np.zeros((40, 30)))
    add("full_gt_255", np.full((33, 21), 255), np.full((33, 21), 255))
    add("full_gt_soft", rng.integers(0, 256, (33, 21)), np.full((33, 21), 255))
    add("full_gt_zero_pred", np.zeros((33, 21)), np.full((33, 21), 200))
    for value in (0, 1, 100, 254, 255):
        add(f"constant_pred_{value}", np.full(blob.shape, value), blob)
    add("perfect", blob, blob)
    add("inverted", 255 - blob, blob)
    # > 128 strict
    add("perfect_soft_gt_threshold", np.where(blob > 0, 200, 30), np.where(blob > 0, 129, 128))
    add("narrow_range_pred", rng.integers(40, 90, blob.shape), blob)  # min-max stretch
    # adaptive-threshold ties
    add("two_level_pred", np.where(rng.random(blob.shape) < 0.5, 10, 60), blob)
    add("half_bright", np.where(np.arange(blob.size).reshape(blob.shape) % 2, 255, 0), blob)
    for i, (h, w) in enumerate([(37, 91), (91, 37), (17, 5), (5, 17), (2, 3), (3, 2), (101, 99)]):
        gt = blobs(rng, (h, w), 0.3, 2)
        add(f"odd_size_{h}x{w}_{i}", soft(rng, gt), gt)
    add("row_vector_empty_gt", rng.integers(0, 256, (1, 50)), np.zeros((1, 50)))
    add("column_vector_empty_gt", rng.integers(0, 256, (50, 1)), np.zeros((50, 1)))
    for r, c in [(10, 12), (0, 0), (0, 20), (25, 0), (1, 1)]:
        gt = np.zeros((30, 40), np.uint8)
        gt[r, c] = 255
        add(f"one_pixel_object_{r}_{c}", soft(rng, gt, 40), gt)
    gt = np.zeros((30, 40), np.uint8)
    gt[7, 9] = 255
    add("one_pixel_object_perfect", gt.copy(), gt)
    add("one_pixel_background", soft(rng, 255 - gt), 255 - gt)
    checker = ((np.indices((24, 28)).sum(axis=0) // 3) % 2 * 255).astype(np.uint8)
    add("checkerboard_ties", soft(rng, checker), checker)  # many equidistant nearest pixels
    lines = np.zeros((40, 40), np.uint8)
    lines[::5] = 255
    lines[:, ::7] = 255
    add("grid_lines", soft(rng, lines), lines)
    diagonal = (np.abs(np.subtract.outer(np.arange(45), np.arange(45))) < 2).astype(np.uint8) * 255
    add("diagonal_band", soft(rng, diagonal), diagonal)
    ring = np.zeros((50, 50), np.uint8)
    cv2.circle(ring, (25, 25), 15, 255, 3)
    add("ring_concave", soft(rng, ring), ring)
    border = np.zeros((30, 30), np.uint8)
    border[:, :4] = 255
    border[-3:] = 255
    add("gt_touching_borders", soft(rng, border), border)
    sparse = np.zeros((60, 60), np.uint8)
    sparse[rng.integers(0, 59, 6), rng.integers(0, 59, 6)] = 255
    add("sparse_points", soft(rng, sparse, 60), sparse)
    for i in range(14):
        h, w = rng.integers(8, 130, size=2)
        gt = blobs(rng, (int(h), int(w)), float(rng.uniform(0.05, 0.6)), float(rng.uniform(1, 6)))
        pred = soft(rng, gt, float(rng.uniform(5, 60))) if i % 3 else rng.integers(0, 256, gt.shape)
        add(f"random_blob_{i}", pred, gt)
    add("soft_grey_gt", soft(rng, blob), cv2.GaussianBlur(blob, (5, 5), 0))
    big = blobs(rng, (240, 320), 0.22, 12)
    add("large_blob", soft(rng, big), big)
    # A prediction of another size, resized to the GT by resize_to (checked to be exactly
    # cv2.resize INTER_LINEAR below, the way PySODEvalToolkit feeds PySODMetrics).
    small_gt = blobs(rng, (63, 47), 0.3, 3)
    resized = resize_to(soft(rng, cv2.resize(small_gt, (31, 50))), small_gt.shape)
    add("resized_prediction", resized, small_gt)
    return cases


CASES = make_cases()


def centroid_on_last_line(gt: np.ndarray) -> bool:
    """The one input where PySODMetrics' S is NaN (an empty quadrant: see cmseg.metrics.sod)."""
    fg = np.argwhere(gt > 128)
    if fg.size == 0 or fg.shape[0] == gt.size:
        return False
    cy, cx = fg.mean(axis=0).round()
    return cy == gt.shape[0] - 1 or cx == gt.shape[1] - 1


PARITY_CASES = [c for c in CASES if not centroid_on_last_line(c[2])]
