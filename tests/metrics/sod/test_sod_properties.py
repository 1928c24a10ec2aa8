"""Properties of cmseg.metrics.sod on random inputs (hypothesis).

Parity with PySODMetrics and the value ranges on random pairs, perfect maps, the empty-GT rules.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from sod_cases import (
    THRESHOLDED,
    TOL,
    assert_results_equal,
    centroid_on_last_line,
    reference_nan_warnings,
    reference_of,
)

from cmseg.metrics import sod
from cmseg.metrics.sod import SODEvaluator, score_image


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
        assert centroid_on_last_line(gt)
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
@given(
    arrays(
        np.uint8, st.tuples(st.integers(1, 20), st.integers(1, 20)), elements=st.integers(0, 255)
    )
)
def test_empty_gt_rules(pred):
    gt = np.zeros_like(pred)
    out = score_image(pred, gt).scalars
    values = sod.normalized_levels(pred)[pred]
    assert out["sm"] == pytest.approx(1 - values.mean(), abs=1e-12)
    assert out["wfm"] == 0 and out["fm_adp"] == 0 and out["iou_adp"] == 0 and out["dice_adp"] == 0
    assert out["mae"] == pytest.approx(values.mean(), abs=1e-12)
