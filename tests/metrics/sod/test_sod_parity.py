"""cmseg.metrics.sod against PySODMetrics 1.6 (normalize=True), the reference it must equal.

Parity is checked to 1e-10 on generated cases (per image and per dataset, every key and the
PR/E/F/IoU/Dice curves), plus the documented departure (an empty S-measure quadrant) and the
reference's quirks on hand-computed inputs.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from sod_cases import (
    PARITY_CASES,
    TOL,
    assert_results_equal,
    blobs,
    reference_nan_warnings,
    reference_of,
    soft,
)

from cmseg.metrics.sod import SODEvaluator, resize_to, score_image


def test_case_list_covers_the_brief():
    assert len(PARITY_CASES) >= 50
    names = " ".join(name for name, _, _ in PARITY_CASES)
    for needed in (
        "empty_gt",
        "full_gt",
        "constant_pred",
        "odd_size",
        "one_pixel_object",
        "resized_prediction",
    ):
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
        np.testing.assert_allclose(
            curves[key], ref_curve, rtol=0, atol=TOL, err_msg=f"{name} {key}"
        )


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
    gt = blobs(rng, (63, 47), 0.3, 3)
    ev = SODEvaluator()
    ev.update(resize_to(pred, gt.shape), gt)
    ref, _ = reference_of([(cv2.resize(pred, (47, 63), interpolation=cv2.INTER_LINEAR), gt)])
    assert_results_equal(ev.compute(), ref, "resized")


@reference_nan_warnings
def test_empty_quadrant_gives_a_number_where_the_reference_gives_nan():
    gt = np.zeros((20, 30), np.uint8)
    gt[19, 4:9] = 255  # object on the last row: the bottom quadrants are empty
    pred = soft(np.random.default_rng(2), gt)
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
