"""SODEvaluator's API: merging and pickling, output schema, refused input."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from sod_cases import (
    KEYS,
    PARITY_CASES,
    THRESHOLDED,
    assert_results_equal,
)

from cmseg.metrics.sod import SODEvaluator, score_image


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
