"""cmseg.metrics.sod_spnet: SPNet's evaluator conventions, on cases small enough to do by hand."""

from __future__ import annotations

import math
import pickle

import numpy as np
import pytest
from PIL import Image

from cmseg.metrics import sod_spnet
from cmseg.metrics.sod_spnet import SPNetEvaluator, pr_curve, resize_to, to_grey

u8 = np.uint8


def scored(*pairs):
    ev = SPNetEvaluator()
    for pred, gt in pairs:
        ev.update(np.asarray(pred, u8), np.asarray(gt, u8))
    return ev


def square_gt(size: int = 4) -> np.ndarray:
    """A 2x2 object in the middle: centroid (1.5, 1.5) -> (2, 2) after rounding half to even."""
    gt = np.zeros((size, size), u8)
    gt[1:3, 1:3] = 255
    return gt


# --------------------------------------------------------------------------------------------
# The four numbers


def test_mae_by_hand():
    # |0.2 - 1| + 3 |0.2 - 0| over 4 pixels
    out = scored((np.full((2, 2), 51), [[255, 0], [0, 0]])).compute()
    assert out["mae"] == pytest.approx(0.35, abs=1e-15)


def test_mae_uses_the_soft_gt():
    out = scored((np.zeros((3, 3)), np.full((3, 3), 128))).compute()
    assert out["mae"] == pytest.approx(128 / 255, abs=1e-15)


def test_max_f_by_hand_and_of_the_mean_curve():
    # image A: levels 0, 1/3, 2/3, 1 against GT 0, 1, 0, 1
    a = ([[0, 85, 170, 255]], [[0, 255, 0, 255]])
    precision, recall = pr_curve(
        sod_spnet.LevelPairs.of(np.asarray(a[0], u8), np.asarray(a[1], u8))
    )
    assert precision.shape == recall.shape == (255,)
    assert precision[0] == 0.5 and recall[0] == 1  # threshold 0: every pixel
    assert (
        precision[84] == pytest.approx(2 / 3) and precision[85] == 0.5
    )  # 85/255 >= 84/254 > 85/254
    assert precision[169] == 0.5 and precision[170] == 1 and recall[170] == 0.5
    assert precision[254] == 1  # the last threshold is exactly 1.0: level 255 passes
    only_a = scored(a).compute()
    assert only_a["maxf"] == pytest.approx(1.3 * 0.5 / (0.3 + 0.5))  # 0.8125 at precision 1
    # image B alone reaches F = 1; the dataset value is F of the averaged curves (13/14),
    # not the mean of the per-image maxima (0.90625)
    b = ([[255, 170, 85, 0]], [[255, 0, 0, 0]])
    ev = scored(a, b)
    assert ev.compute()["maxf"] == pytest.approx(13 / 14)
    assert [item["maxf"] for item in ev.per_item().values()] == pytest.approx([0.8125, 1.0])


def test_max_f_with_a_soft_gt():
    g = 128 / 255  # every pixel predicted, TP = sum(G): precision g, recall 1
    out = scored((np.full((2, 2), 255), np.full((2, 2), 128))).compute()
    assert out["maxf"] == pytest.approx(1.3 * g / (0.3 * g + 1), abs=1e-12)


def test_max_f_is_zero_on_an_empty_gt():
    out = scored((np.full((3, 3), 200), np.zeros((3, 3)))).compute()
    assert out["maxf"] == 0


def test_max_e_is_the_unthresholded_alignment():
    # a perfect map: every pixel aligned (xi = 1), E = N / (N - 1)
    gt = [[255, 0], [0, 0]]
    assert scored((gt, gt)).compute()["maxe"] == pytest.approx(4 / 3, abs=1e-12)
    # a constant map is not binarised: phiP = 0 everywhere, xi = 0, E = 0.25 N / (N - 1)
    gt6 = [[255, 0, 0], [255, 255, 0]]
    assert scored((np.full((2, 3), 128), gt6)).compute()["maxe"] == pytest.approx(
        0.25 * 6 / 5, abs=1e-12
    )
    # a soft map: the two classes' pixels are demeaned continuously
    pred = np.array([[200, 100]], u8)
    gt2 = np.array([[255, 0]], u8)
    p, g = pred / 255 - (300 / 510), gt2 / 255 - 0.5
    xi = 2 * p * g / (p * p + g * g + 1e-20)
    expected = ((xi + 1) ** 2 / 4).sum() / 1
    assert scored((pred, gt2)).compute()["maxe"] == pytest.approx(expected, abs=1e-12)


def test_sanity_values_of_the_protocol_notes():
    """Section 5.4: perfect map E = 1.0002 (60x80), empty GT with empty map E = 0.25."""
    gt = np.zeros((60, 80), u8)
    gt[15:45, 20:60] = 255
    perfect = scored((gt, gt)).compute()
    assert perfect == pytest.approx({"mae": 0.0, "sm": 1.0, "maxf": 1.0, "maxe": 4800 / 4799})
    assert round(perfect["maxe"], 4) == 1.0002
    empty = scored((np.zeros((60, 80)), np.zeros((60, 80)))).compute()
    assert empty == pytest.approx({"mae": 0.0, "sm": 1.0, "maxf": 0.0, "maxe": 0.25 * 4800 / 4799})
    assert abs(empty["maxe"] - 0.25) < 1e-4
    # the same quirk on a full GT: a perfect map scores 0.25 too
    full = np.full((60, 80), 255, u8)
    assert scored((full, full)).compute()["maxe"] == pytest.approx(0.25 * 4800 / 4799)


# --------------------------------------------------------------------------------------------
# S-measure


def test_s_measure_on_empty_and_full_gt_is_the_mean():
    assert scored((np.full((2, 2), 51), np.zeros((2, 2)))).compute()["sm"] == pytest.approx(0.8)
    assert scored((np.full((2, 2), 204), np.full((2, 2), 255))).compute()["sm"] == pytest.approx(
        0.8
    )


def test_s_measure_perfect_and_constant_maps_by_hand():
    gt = square_gt()
    assert scored((gt, gt)).compute()["sm"] == pytest.approx(1.0, abs=1e-12)
    # constant map 128: object terms 2m/(m^2+1) (fg) and 2(1-m)/((1-m)^2+1) (bg), weights
    # y = 4/16 and 3/4; every quadrant has a mixed GT and a flat map: SSIM 0
    m = 128 / 255
    s_object = 0.25 * 2 * m / (m * m + 1) + 0.75 * 2 * (1 - m) / ((1 - m) ** 2 + 1)
    out = scored((np.full((4, 4), 128), gt)).compute()
    assert out["sm"] == pytest.approx(0.5 * s_object, abs=1e-12)


def test_s_measure_quadrant_ssim_by_hand():
    # one quadrant of 4 pixels holding 1 foreground pixel, predicted perfectly: x = y = 1/4,
    # variances = covariance = 0.75 / 3, so SSIM = 4 x y cov / ((x^2 + y^2)(2 var)) = 1
    region = sod_spnet.LevelPairs.of(
        np.array([[255, 0], [0, 0]], u8), np.array([[255, 0], [0, 0]], u8)
    )
    assert sod_spnet._ssim(region) == pytest.approx(1.0)
    # a flat map over an all-background quadrant: alpha = beta = 0 -> 1 (exact zero variance)
    flat = sod_spnet.LevelPairs.of(np.full((2, 2), 77, u8), np.zeros((2, 2), u8))
    assert sod_spnet._ssim(flat) == 1.0


def test_s_measure_is_nan_for_a_one_pixel_object_and_poisons_the_mean():
    gt = np.zeros((5, 5), u8)
    gt[2, 2] = 255  # the object term's std of one pixel is NaN (torch's unbiased std)
    ev = scored((gt, gt), (square_gt(), square_gt()))
    items = list(ev.per_item().values())
    assert math.isnan(items[0]["sm"]) and items[1]["sm"] == pytest.approx(1.0)
    out = ev.compute()
    assert math.isnan(out["sm"])  # NaN S is not skipped, as in SPNet
    assert out["mae"] == 0 and not math.isnan(out["maxe"]) and out["maxf"] == 1


def test_s_measure_is_nan_without_exactly_white_gt_pixels():
    out = scored((np.zeros((3, 3)), np.full((3, 3), 128))).compute()  # soft GT, no 255
    assert math.isnan(out["sm"])


def test_s_measure_is_nan_when_the_centroid_is_in_column_zero():
    gt = np.zeros((6, 6), u8)
    gt[1:5, 0] = 255  # centroid column 0: the left quadrants are empty
    pred = np.full((6, 6), 30, u8)
    pred[1:5, 0] = 220
    out = scored((pred, gt)).compute()
    assert math.isnan(out["sm"]) and not math.isnan(out["mae"])


def test_negative_s_measure_is_clipped_to_zero():
    # the inverted map: object terms 0, every quadrant anti-correlated; SPNet would crash here
    gt = np.zeros((20, 20), u8)
    gt[8:12, 8:12] = 255
    assert scored((255 - gt, gt)).compute()["sm"] == 0.0


def test_centroid_rounds_half_to_even_without_plus_one():
    gt = np.zeros((8, 8), u8)
    gt[1:3, 3:7] = 255  # rows 1.5 -> 2, columns 4.5 -> 4
    assert sod_spnet._centroid(gt) == (2, 4)


# --------------------------------------------------------------------------------------------
# Inputs and the evaluator


def test_to_grey_is_pil_luma():
    rgb = np.array([[[255, 0, 0], [0, 255, 0], [0, 0, 255], [10, 20, 30]]], u8)
    grey = to_grey(rgb)
    assert grey.tolist() == [[76, 150, 29, 18]]
    np.testing.assert_array_equal(grey, np.asarray(Image.fromarray(rgb).convert("L")))
    flat = np.zeros((2, 2), u8)
    assert to_grey(flat) is flat


def test_resize_to_is_pil_bilinear():
    pred = np.random.default_rng(0).integers(0, 256, (10, 14), dtype=u8)
    out = resize_to(pred, (21, 9))
    assert out.shape == (21, 9)
    np.testing.assert_array_equal(
        out, np.asarray(Image.fromarray(pred).resize((9, 21), Image.BILINEAR))
    )
    assert resize_to(pred, (10, 14)) is pred


def test_merge_pickle_and_api():
    rng = np.random.default_rng(1)
    pairs = [
        (rng.integers(0, 256, (7, 7), dtype=u8), square_gt(7) if i % 2 else np.zeros((7, 7), u8))
        for i in range(6)
    ]
    whole = SPNetEvaluator()
    for i, (p, g) in enumerate(pairs):
        whole.update(p, g, name=f"n{i}")
    left, right = SPNetEvaluator(), SPNetEvaluator()
    for i, (p, g) in enumerate(pairs):
        (left if i < 2 else right).update(p, g, name=f"n{i}")
    left.merge(pickle.loads(pickle.dumps(right)))
    assert left.compute() == pytest.approx(whole.compute(), nan_ok=True)
    assert list(left.per_item()) == [f"n{i}" for i in range(6)]
    assert set(left.compute()) == {"mae", "sm", "maxf", "maxe"}
    with pytest.raises(ValueError, match="scored twice"):
        left.merge(right)
    with pytest.raises(ValueError, match="already scored"):
        left.update(*pairs[0], name="n0")
    left.reset()
    with pytest.raises(ValueError, match="no image"):
        left.compute()


def test_bad_input_is_refused():
    ev = SPNetEvaluator()
    with pytest.raises(ValueError, match="differs"):
        ev.update(np.zeros((3, 4), u8), np.zeros((4, 3), u8))
    with pytest.raises(TypeError, match="uint8"):
        ev.update(np.zeros((3, 4)), np.zeros((3, 4), u8))
    with pytest.raises(ValueError, match="2-D"):
        ev.update(np.zeros((3, 4, 3), u8), np.zeros((3, 4, 3), u8))
    assert len(ev) == 0
