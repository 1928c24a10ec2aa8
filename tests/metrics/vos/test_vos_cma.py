"""The ``cma`` protocol of :class:`VOSEvaluator` (CMA's test.py, reference cma_fsrvos.md §5):
J and F pooled over all frames of all expressions, frames and GT at short side 360.

Every expected value is computed by hand from CMA's rules."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from cmseg.metrics.vos import CMA_SHORT_SIDE, VOSEvaluator, cma_scoring_shape


def _box(t: int, h: int = 40, w: int = 60) -> np.ndarray:
    masks = np.zeros((t, h, w), bool)
    masks[:, 10:30, 15:45] = True
    return masks


def test_pooled_over_all_frames_not_per_expression():
    # a: 1 perfect frame (J = F = 1); b: 3 frames, object present, empty prediction (0)
    # CMA: (1 + 0 + 0 + 0) / 4 = 0.25; the per-expression mean would be (1 + 0) / 2 = 0.5
    for short_side in (0, CMA_SHORT_SIDE):
        ev = VOSEvaluator("cma", bound_th=0.010, short_side=short_side)
        ev.update(_box(1), _box(1), "v/a")
        ev.update(np.zeros((3, 40, 60), bool), _box(3), "v/b")
        result = ev.compute()
        assert result["J"]["mean"] == 0.25 and result["F"]["mean"] == 0.25
        assert result["J&F"] == 0.25 and result["J"]["recall"] == 0.25
        ytvos = VOSEvaluator("ytvos", bound_th=0.010)
        ytvos.update(_box(1), _box(1), "v/a")
        ytvos.update(np.zeros((3, 40, 60), bool), _box(3), "v/b")
        assert ytvos.compute()["J"]["mean"] == 0.5
        assert ev.per_sequence() == ytvos.per_sequence()  # the per-frame values agree


def test_scoring_size_is_referformer_short_side_360():
    assert cma_scoring_shape(720, 1280) == (360, 640)
    assert cma_scoring_shape(480, 854) == (360, 640)  # int(360 * 854 / 480) = int(640.5)
    assert cma_scoring_shape(1280, 720) == (640, 360)
    assert cma_scoring_shape(360, 500) == (360, 500)
    assert cma_scoring_shape(100, 100, 0) == (100, 100)  # 0: native


def _lines() -> tuple[np.ndarray, np.ndarray]:
    """GT rows 100-101 and prediction rows 101-102 (cols 100..299) of a 720x720 frame."""
    gt = np.zeros((1, 720, 720), bool)
    gt[0, 100:102, 100:300] = True
    pred = np.zeros_like(gt)
    pred[0, 101:103, 100:300] = True
    return pred, gt


def test_gt_and_prediction_resized_bilinearly_then_above_half():
    # Natively J = 200 / 600 = 1/3. At 360x360 every output pixel averages a 2x2 block: the GT
    # gives row 50 (rows 100, 101) = 1.0 > 0.5, cols 50..149; the prediction gives rows 50 and
    # 51 = 0.5 each, not > 0.5: empty. So J = 0 and F = 0 (one side without boundary).
    pred, gt = _lines()
    native = VOSEvaluator("cma", short_side=0)
    native.update(pred, gt, "v/0")
    assert native.compute()["J"]["mean"] == pytest.approx(1 / 3)
    cma = VOSEvaluator("cma")
    entry = cma.update(pred, gt, "v/0")
    assert entry["J"]["mean"] == 0.0 and entry["F"]["mean"] == 0.0
    assert cma.scoring_shape(720, 720) == (360, 360)
    # a prediction already at the scoring size is used as is: the GT at 360 itself scores 1
    small = np.zeros((1, 360, 360), bool)
    small[0, 50, 50:150] = True
    again = VOSEvaluator("cma")
    assert again.update(small, gt, "v/0")["J"]["mean"] == 1.0


def test_cma_settings_are_checked_kept_and_merged():
    with pytest.raises(ValueError, match="short_side"):
        VOSEvaluator("ytvos", short_side=360)
    with pytest.raises(ValueError, match="short_side"):
        VOSEvaluator("cma", short_side=-1)
    a, b = VOSEvaluator("cma"), VOSEvaluator("cma")
    a.update(_box(1), _box(1), "v/a")
    b.update(np.zeros((3, 40, 60), bool), _box(3), "v/b")
    merged = pickle.loads(pickle.dumps(a)).merge(pickle.loads(pickle.dumps(b)))
    assert merged.compute()["J"]["mean"] == 0.25
    with pytest.raises(ValueError, match="short_side"):
        a.merge(VOSEvaluator("cma", short_side=0))
    with pytest.raises(ValueError, match="shape"):
        VOSEvaluator("cma").update(np.zeros((1, 30, 30), bool), _box(1), "v/x")


def test_add_zero_scores_a_unit_j_f_zero():
    ev = VOSEvaluator("mevis")
    ev.update(_box(2), _box(2), "v/a")
    entry = ev.add_zero("v/b", 5)
    assert entry["J"]["mean"] == 0.0 and entry["F"]["mean"] == 0.0 and entry["frames"] == 5
    assert ev.compute()["J&F"] == 0.5
