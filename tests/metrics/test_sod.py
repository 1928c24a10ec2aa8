"""cmseg.metrics.sod against PySODMetrics 1.6 (normalize=True), the reference it must equal.

Parity is checked to 1e-10 on generated cases (per image and per dataset, every key and the
PR/E/F/IoU/Dice curves), then properties on random inputs (hypothesis): ranges, perfect maps,
the empty-GT quirks, merging, and the internal fast paths against their slow definitions.
"""

from __future__ import annotations

import pickle
import warnings

import cv2
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from cmseg.metrics import sod
from cmseg.metrics.sod import SODEvaluator, resize_to, score_image

psm = pytest.importorskip("py_sod_metrics")

TOL = 1e-10
KEYS = ("mae", "sm", "wfm")
THRESHOLDED = ("em", "fm", "iou", "dice")

# PySODMetrics' own warnings when its S-measure meets an empty quadrant (it returns NaN there)
reference_nan_warnings = pytest.mark.filterwarnings(
    "ignore:Mean of empty slice:RuntimeWarning", "ignore:invalid value encountered:RuntimeWarning"
)


# --------------------------------------------------------------------------------------------
# The reference


class Reference:
    """PySODMetrics' classes for every key of SODEvaluator.compute()."""

    def __init__(self) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Fmeasure is deprecated (FmeasureV2 is checked too)
            self.fm = psm.Fmeasure()
        self.mae, self.sm, self.wfm, self.em = psm.MAE(), psm.Smeasure(), psm.WeightedFmeasure(), psm.Emeasure()
        self.v2 = psm.FmeasureV2(metric_handlers={
            "iou": psm.IOUHandler(with_dynamic=True, with_adaptive=True),
            "dice": psm.DICEHandler(with_dynamic=True, with_adaptive=True),
            "fm": psm.FmeasureHandler(with_dynamic=True, with_adaptive=True, beta=0.3),
        })

    def step(self, pred: np.ndarray, gt: np.ndarray) -> None:
        for metric in (self.fm, self.mae, self.sm, self.wfm, self.em, self.v2):
            metric.step(pred, gt)

    def results(self) -> tuple[dict, dict]:
        """(compute()-shaped dict, curves in ascending threshold order)."""
        fm, em, v2 = self.fm.get_results(), self.em.get_results()["em"], self.v2.get_results()
        out = {"mae": self.mae.get_results()["mae"], "sm": self.sm.get_results()["sm"],
               "wfm": self.wfm.get_results()["wfm"],
               "em": {"adp": em["adp"], "mean": em["curve"].mean(), "max": em["curve"].max()},
               "fm": {"adp": fm["fm"]["adp"], "mean": fm["fm"]["curve"].mean(), "max": fm["fm"]["curve"].max()}}
        for name in ("iou", "dice"):
            out[name] = {"adp": v2[name]["adaptive"], "mean": v2[name]["dynamic"].mean(),
                         "max": v2[name]["dynamic"].max()}
        # FmeasureV2's F equals the old Fmeasure's (the library's own tests assert it)
        assert np.allclose(v2["fm"]["dynamic"], fm["fm"]["curve"], rtol=0, atol=TOL)
        curves = {"precision": fm["pr"]["p"], "recall": fm["pr"]["r"], "fm": fm["fm"]["curve"],
                  "em": em["curve"], "iou": v2["iou"]["dynamic"], "dice": v2["dice"]["dynamic"]}
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
            assert abs(ours[name][stat] - ref[name][stat]) <= TOL, (what, name, stat, ours[name][stat], ref[name][stat])


# --------------------------------------------------------------------------------------------
# Generated cases


def _blobs(rng: np.random.Generator, shape: tuple[int, int], fraction: float, sigma: float) -> np.ndarray:
    noise = cv2.GaussianBlur(rng.standard_normal(shape), (0, 0), sigma)
    return np.where(noise > np.quantile(noise, 1 - fraction), 255, 0).astype(np.uint8)


def _soft(rng: np.random.Generator, gt: np.ndarray, noise: float = 25.0) -> np.ndarray:
    soft = cv2.GaussianBlur(gt.astype(np.float64), (0, 0), 2) * 0.8 + rng.normal(0, noise, gt.shape) + 20
    return np.clip(soft, 0, 255).astype(np.uint8)


def make_cases() -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(id, pred, gt) covering the edge cases; every pred already has its GT's shape."""
    rng = np.random.default_rng(20240611)
    cases = []

    def add(name: str, pred: np.ndarray, gt: np.ndarray) -> None:
        cases.append((name, np.ascontiguousarray(pred, dtype=np.uint8), np.ascontiguousarray(gt, dtype=np.uint8)))

    blob = _blobs(rng, (48, 64), 0.25, 4)
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
    add("perfect_soft_gt_threshold", np.where(blob > 0, 200, 30), np.where(blob > 0, 129, 128))  # > 128 strict
    add("narrow_range_pred", rng.integers(40, 90, blob.shape), blob)  # min-max stretch
    add("two_level_pred", np.where(rng.random(blob.shape) < 0.5, 10, 60), blob)  # adaptive-threshold ties
    add("half_bright", np.where(np.arange(blob.size).reshape(blob.shape) % 2, 255, 0), blob)
    for i, (h, w) in enumerate([(37, 91), (91, 37), (17, 5), (5, 17), (2, 3), (3, 2), (101, 99)]):
        gt = _blobs(rng, (h, w), 0.3, 2)
        add(f"odd_size_{h}x{w}_{i}", _soft(rng, gt), gt)
    add("row_vector_empty_gt", rng.integers(0, 256, (1, 50)), np.zeros((1, 50)))
    add("column_vector_empty_gt", rng.integers(0, 256, (50, 1)), np.zeros((50, 1)))
    for r, c in [(10, 12), (0, 0), (0, 20), (25, 0), (1, 1)]:
        gt = np.zeros((30, 40), np.uint8)
        gt[r, c] = 255
        add(f"one_pixel_object_{r}_{c}", _soft(rng, gt, 40), gt)
    gt = np.zeros((30, 40), np.uint8)
    gt[7, 9] = 255
    add("one_pixel_object_perfect", gt.copy(), gt)
    add("one_pixel_background", _soft(rng, 255 - gt), 255 - gt)
    checker = ((np.indices((24, 28)).sum(axis=0) // 3) % 2 * 255).astype(np.uint8)
    add("checkerboard_ties", _soft(rng, checker), checker)  # many equidistant nearest pixels
    lines = np.zeros((40, 40), np.uint8)
    lines[::5] = 255
    lines[:, ::7] = 255
    add("grid_lines", _soft(rng, lines), lines)
    diagonal = (np.abs(np.subtract.outer(np.arange(45), np.arange(45))) < 2).astype(np.uint8) * 255
    add("diagonal_band", _soft(rng, diagonal), diagonal)
    ring = np.zeros((50, 50), np.uint8)
    cv2.circle(ring, (25, 25), 15, 255, 3)
    add("ring_concave", _soft(rng, ring), ring)
    border = np.zeros((30, 30), np.uint8)
    border[:, :4] = 255
    border[-3:] = 255
    add("gt_touching_borders", _soft(rng, border), border)
    sparse = np.zeros((60, 60), np.uint8)
    sparse[rng.integers(0, 59, 6), rng.integers(0, 59, 6)] = 255
    add("sparse_points", _soft(rng, sparse, 60), sparse)
    for i in range(14):
        h, w = rng.integers(8, 130, size=2)
        gt = _blobs(rng, (int(h), int(w)), float(rng.uniform(0.05, 0.6)), float(rng.uniform(1, 6)))
        pred = _soft(rng, gt, float(rng.uniform(5, 60))) if i % 3 else rng.integers(0, 256, gt.shape)
        add(f"random_blob_{i}", pred, gt)
    add("soft_grey_gt", _soft(rng, blob), cv2.GaussianBlur(blob, (5, 5), 0))
    big = _blobs(rng, (240, 320), 0.22, 12)
    add("large_blob", _soft(rng, big), big)
    # A prediction of another size, resized to the GT by resize_to (checked to be exactly
    # cv2.resize INTER_LINEAR below, the way PySODEvalToolkit feeds PySODMetrics).
    small_gt = _blobs(rng, (63, 47), 0.3, 3)
    add("resized_prediction", resize_to(_soft(rng, cv2.resize(small_gt, (31, 50))), small_gt.shape), small_gt)
    return cases


CASES = make_cases()


def _centroid_on_last_line(gt: np.ndarray) -> bool:
    """The one input where PySODMetrics' S is NaN (an empty quadrant; see the module docstring)."""
    fg = np.argwhere(gt > 128)
    if fg.size == 0 or fg.shape[0] == gt.size:
        return False
    cy, cx = fg.mean(axis=0).round()
    return cy == gt.shape[0] - 1 or cx == gt.shape[1] - 1


PARITY_CASES = [c for c in CASES if not _centroid_on_last_line(c[2])]


def test_case_list_covers_the_brief():
    assert len(PARITY_CASES) >= 50
    names = " ".join(name for name, _, _ in PARITY_CASES)
    for needed in ("empty_gt", "full_gt", "constant_pred", "odd_size", "one_pixel_object", "resized_prediction"):
        assert needed in names


@pytest.mark.parametrize("name,pred,gt", PARITY_CASES, ids=[c[0] for c in PARITY_CASES])
def test_per_image_parity(name, pred, gt):
    ev = SODEvaluator()
    ev.update(pred, gt, name=name)
    ref, ref_curves = reference_of([(pred, gt)])
    assert_results_equal(ev.compute(), ref, name)
    assert_results_equal(ev.per_item()[name], ref, name)  # per-item = the image's own curves
    curves = ev.curves()
    for key, ref_curve in ref_curves.items():
        assert len(curves[key]) == 256
        np.testing.assert_allclose(curves[key], ref_curve, rtol=0, atol=TOL, err_msg=f"{name} {key}")


def test_dataset_parity_over_all_cases():
    ev = SODEvaluator()
    for name, pred, gt in PARITY_CASES:
        ev.update(pred, gt, name=name)
    ref, ref_curves = reference_of([(p, g) for _, p, g in PARITY_CASES])
    assert_results_equal(ev.compute(), ref, "dataset")
    curves = ev.curves()
    for key, ref_curve in ref_curves.items():
        np.testing.assert_allclose(curves[key], ref_curve, rtol=0, atol=TOL, err_msg=key)


def test_resize_to_is_opencv_bilinear():
    rng = np.random.default_rng(1)
    pred = rng.integers(0, 256, (50, 31), dtype=np.uint8)
    out = resize_to(pred, (63, 47))
    assert out.shape == (63, 47) and out.dtype == np.uint8
    np.testing.assert_array_equal(out, cv2.resize(pred, (47, 63), interpolation=cv2.INTER_LINEAR))
    assert resize_to(pred, pred.shape) is pred
    # and the metrics of the resized pair equal the reference fed the same OpenCV resize
    gt = _blobs(rng, (63, 47), 0.3, 3)
    ev = SODEvaluator()
    ev.update(resize_to(pred, gt.shape), gt)
    ref, _ = reference_of([(cv2.resize(pred, (47, 63), interpolation=cv2.INTER_LINEAR), gt)])
    assert_results_equal(ev.compute(), ref, "resized")


@reference_nan_warnings
def test_empty_quadrant_gives_a_number_where_the_reference_gives_nan():
    gt = np.zeros((20, 30), np.uint8)
    gt[19, 4:9] = 255  # object on the last row: the bottom quadrants are empty
    pred = _soft(np.random.default_rng(2), gt)
    ref, _ = reference_of([(pred, gt)])
    assert np.isnan(ref["sm"])  # the reference (and the MATLAB original) give NaN
    ours = score_image(pred, gt).scalars["sm"]
    assert 0 <= ours <= 1
    # everything else still matches
    ev = SODEvaluator()
    ev.update(pred, gt)
    out = ev.compute()
    for key in ("mae", "wfm"):
        assert abs(out[key] - ref[key]) <= TOL


def test_known_reference_edge_values():
    """The documented quirks, with numbers that are easy to derive by hand."""
    n = 64 * 64
    zero = np.zeros((64, 64), np.uint8)
    ev = SODEvaluator()
    ev.update(zero, zero)  # empty GT, empty prediction
    out = ev.compute()
    assert out["mae"] == 0 and out["sm"] == 1
    assert out["em"]["max"] == pytest.approx(n / (n - 1), abs=1e-9)  # 1.0002 at 64x64
    assert out["em"]["adp"] == 0  # threshold 2 * 0 = 0 marks every pixel foreground
    assert out["wfm"] == 0 and out["fm"]["max"] == 0
    assert out["em"]["mean"] == pytest.approx(255 / 256 * n / (n - 1), abs=1e-12)


# --------------------------------------------------------------------------------------------
# Properties on random inputs


def pair_strategy(max_side: int = 24):
    return st.tuples(st.integers(1, max_side), st.integers(1, max_side)).flatmap(
        lambda shape: st.tuples(
            arrays(np.uint8, shape, elements=st.integers(0, 255)),
            arrays(np.uint8, shape, elements=st.sampled_from([0, 255, 0, 255, 128, 129])),
        )
    )


@reference_nan_warnings
@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pair_strategy())
def test_random_pairs_match_reference_and_stay_in_range(pair):
    pred, gt = pair
    scores = score_image(pred, gt)
    ev = SODEvaluator()
    ev.update(pred, gt)
    out = ev.compute()
    n = pred.size
    e_cap = n / (n - 1) if n > 1 else np.inf
    assert 0 <= out["mae"] <= 1 and 0 <= out["sm"] <= 1 and 0 <= out["wfm"] <= 1
    for name in THRESHOLDED:
        cap = e_cap if name == "em" else 1
        for stat in ("adp", "mean", "max"):
            assert 0 <= out[name][stat] <= cap + 1e-12
    assert np.all((scores.curves >= 0) & (scores.curves <= max(e_cap, 1) + 1e-12))
    ref, ref_curves = reference_of([(pred, gt)])
    if np.isnan(ref["sm"]):  # the reference's empty-quadrant NaN: compare the rest
        assert _centroid_on_last_line(gt)
        ref["sm"] = out["sm"]
    assert_results_equal(out, ref, "random")
    for key, ref_curve in ref_curves.items():
        np.testing.assert_allclose(ev.curves()[key], ref_curve, rtol=0, atol=TOL)


@settings(max_examples=60, deadline=None)
@given(arrays(np.bool_, st.tuples(st.integers(2, 30), st.integers(2, 30))))
def test_perfect_prediction_scores_perfectly(fg):
    gt = fg.astype(np.uint8) * 255
    n = gt.size
    out = score_image(gt, gt)
    scalars, curves = out.scalars, out.curves
    assert scalars["mae"] == 0
    if 0 < fg.sum() < n:
        # 1 up to the eps in the SSIM denominator, which counts when a quadrant holds a single
        # foreground pixel among many (its variances are ~1/N)
        assert scalars["sm"] == pytest.approx(1, abs=1e-6)
        assert scalars["wfm"] == pytest.approx(1, abs=1e-9)
        assert scalars["em_adp"] == pytest.approx(n / (n - 1), abs=1e-9)  # N/(N-1) > 1
        for name in ("fm", "iou", "dice"):
            assert scalars[f"{name}_adp"] == pytest.approx(1, abs=1e-12)
            assert curves[sod.CURVE_NAMES.index(name)].max() == pytest.approx(1, abs=1e-12)
        assert curves[sod.CURVE_NAMES.index("em")].max() == pytest.approx(n / (n - 1), abs=1e-9)
    elif fg.sum() == 0:  # empty GT, empty map: the adaptive quirks (section 1.4 of the notes)
        assert scalars["sm"] == 1 and scalars["wfm"] == 0 and scalars["em_adp"] == 0
        assert scalars["fm_adp"] == 0 and scalars["iou_adp"] == 0
    else:  # full GT, full map
        assert scalars["sm"] == 1 and scalars["wfm"] == pytest.approx(1, abs=1e-9)
        assert scalars["em_adp"] == pytest.approx(n / (n - 1), abs=1e-9)


@settings(max_examples=40, deadline=None)
@given(arrays(np.uint8, st.tuples(st.integers(1, 20), st.integers(1, 20)), elements=st.integers(0, 255)))
def test_empty_gt_rules(pred):
    gt = np.zeros_like(pred)
    out = score_image(pred, gt).scalars
    values = sod.normalized_levels(pred)[pred]
    assert out["sm"] == pytest.approx(1 - values.mean(), abs=1e-12)
    assert out["wfm"] == 0 and out["fm_adp"] == 0 and out["iou_adp"] == 0 and out["dice_adp"] == 0
    assert out["mae"] == pytest.approx(values.mean(), abs=1e-12)


# --------------------------------------------------------------------------------------------
# Fast paths against their definitions


@pytest.mark.parametrize("name,pred,gt", PARITY_CASES[::3], ids=[c[0] for c in PARITY_CASES[::3]])
def test_weighted_fmeasure_fast_path_equals_scipy_definition(name, pred, gt):
    pair = sod.prepare_pair(pred, gt)
    fast = sod.weighted_fmeasure(pair)
    assert fast == pytest.approx(sod.weighted_fmeasure_reference(pair.norm_map, pair.mask), abs=TOL)


@pytest.mark.parametrize("shape,columns", [
    ((3, 4200), None),  # wider than 4096: the scipy path
    ((4, 1500), [0, 1]),  # distances up to ~1500: clipped into B's table (B = 2.0 beyond 270)
])
def test_weighted_fmeasure_far_from_the_object(shape, columns):
    rng = np.random.default_rng(3)
    gt = np.zeros(shape, np.uint8)
    gt[1, columns if columns else rng.integers(0, shape[1], 40)] = 255
    pred = _soft(rng, gt)
    ref, _ = reference_of([(pred, gt)])
    assert score_image(pred, gt).scalars["wfm"] == pytest.approx(ref["wfm"], abs=TOL)


def test_nearest_foreground_tie_rule_matches_scipy():
    """The band's nearest-pixel search must pick scipy's pixel among equidistant ones
    (the reference path takes scipy's feature transform as is)."""
    rng = np.random.default_rng(4)
    for _ in range(30):
        fg = rng.random((25, 31)) < rng.uniform(0.02, 0.4)
        if not fg.any():
            continue
        # a map whose error differs between neighbours makes any other choice visible in wF
        pred = rng.permutation(np.arange(fg.size) % 256).reshape(fg.shape).astype(np.uint8)
        pair = sod.prepare_pair(pred, fg.astype(np.uint8) * 255)
        fast = sod.weighted_fmeasure(pair)
        assert fast == pytest.approx(sod.weighted_fmeasure_reference(pair.norm_map, pair.mask), abs=TOL)


def test_first_hit():
    hits = np.array([[0, 0, 1, 1, 0, 0, 0, 1], [1, 0, 0, 0, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0, 0, 1]], np.uint8)
    assert sod._first_hit(hits).tolist() == [2, 0, 7]
    assert sod._first_hit(np.zeros((2, 8), np.uint8)) is None


def test_nearest_offsets_order():
    table = sod._nearest_offsets(100)
    # k = 1: left, up, down, right (smallest column first, then smallest row)
    assert table[1, :4].tolist() == [-1, -100, 100, 1] and table[1, 4:].tolist() == [0] * 4
    assert table[3].tolist() == [0] * 8  # 3 is not a sum of two squares


# --------------------------------------------------------------------------------------------
# Evaluator API


def test_merge_pickle_and_order_independence():
    pairs = [(p, g) for _, p, g in PARITY_CASES[:12]]
    whole = SODEvaluator()
    for i, (p, g) in enumerate(pairs):
        whole.update(p, g, name=f"i{i}")
    left, right = SODEvaluator(), SODEvaluator()
    for i, (p, g) in enumerate(pairs):
        (left if i < 5 else right).update(p, g, name=f"i{i}")
    left.merge(pickle.loads(pickle.dumps(right)))
    a, b = whole.compute(), left.compute()
    assert_results_equal(a, b, "merged")
    assert list(left.per_item()) == [f"i{i}" for i in range(12)]
    assert len(left) == 12
    with pytest.raises(ValueError, match="scored twice"):
        left.merge(right)
    with pytest.raises(ValueError, match="already scored"):
        left.update(*pairs[0], name="i0")


def test_outputs_are_plain_python_and_documented_shape():
    import json

    ev = SODEvaluator()
    for _, p, g in PARITY_CASES[:4]:
        ev.update(p, g)
    out, curves, items = ev.compute(), ev.curves(), ev.per_item()
    json.dumps([out, curves, items])
    assert set(out) == {"mae", "sm", "wfm", "em", "fm", "iou", "dice"}
    assert all(set(out[k]) == {"adp", "mean", "max"} for k in THRESHOLDED)
    assert all(isinstance(v, float) for k in KEYS for v in [out[k]])
    assert set(curves) == {"thresholds", "precision", "recall", "fm", "em", "iou", "dice"}
    assert curves["thresholds"][0] == 0.0 and curves["thresholds"][-1] == 1.0
    assert all(len(v) == 256 for v in curves.values())
    # ascending thresholds: recall can only fall as the threshold rises
    assert np.all(np.diff(curves["recall"]) <= 0)
    assert list(items) == ["000000", "000001", "000002", "000003"]
    ev.reset()
    with pytest.raises(ValueError, match="no image"):
        ev.compute()


def test_bad_input_is_refused():
    ev = SODEvaluator()
    with pytest.raises(ValueError, match="differs"):
        ev.update(np.zeros((4, 5), np.uint8), np.zeros((5, 4), np.uint8))
    with pytest.raises(TypeError, match="uint8"):
        ev.update(np.zeros((4, 5), np.float32), np.zeros((4, 5), np.uint8))
    with pytest.raises(ValueError, match="2-D"):
        ev.update(np.zeros((4, 5, 3), np.uint8), np.zeros((4, 5, 3), np.uint8))
    with pytest.raises(ValueError, match="2-D"):
        ev.update(np.zeros((0, 5), np.uint8), np.zeros((0, 5), np.uint8))
    assert len(ev) == 0


def test_non_contiguous_input_matches_contiguous():
    _, pred, gt = PARITY_CASES[-3]
    a = score_image(pred, gt)
    b = score_image(np.asfortranarray(pred), np.asfortranarray(gt))
    assert a.scalars == b.scalars
