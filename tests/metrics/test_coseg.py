"""CosegEvaluator: co-segmentation P (pixel accuracy) and J (foreground IoU), SSNM threshold."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from cmseg.metrics.masks import (
    CosegEvaluator,
    adaptive_threshold,
    binarize_soft_map,
    precision_jaccard,
)

# A 2x4 soft map: six zeros, 0.55 and 1.0.
#   mean = 1.55 / 8 = 0.19375, E[x^2] = 1.3025 / 8 = 0.1628125
#   population std (ddof=0) = sqrt(0.1628125 - 0.19375^2) = 0.353940 -> t = 0.547690 < 0.55
#   sample std (ddof=1) would give t = 0.572128 > 0.55, and 0.55 would become background.
SOFT = np.array([[0, 0, 0, 0], [0, 0, 0.55, 1.0]], np.float32)
GT = np.array([[0, 0, 0, 0], [0, 0, 1, 1]], bool)


def test_adaptive_threshold_by_hand() -> None:
    assert float(adaptive_threshold(SOFT)) == pytest.approx(0.547690, abs=1e-6)
    mask, t = binarize_soft_map(SOFT)
    assert t == pytest.approx(0.547690, abs=1e-6)
    assert np.array_equal(mask, GT)  # 0.55 > t: the ddof=0 std keeps it
    evaluator = CosegEvaluator()
    evaluator.update(SOFT, GT, cls="c", name="x")
    assert evaluator.compute()["J"] == 1.0


def test_fixed_threshold() -> None:
    mask, t = binarize_soft_map(SOFT, threshold=0.6)
    assert t == pytest.approx(0.6)
    assert mask.sum() == 1 and mask[1, 3]
    evaluator = CosegEvaluator(threshold=0.6)
    evaluator.update(SOFT, GT, cls="c", name="x")
    item = evaluator.per_item()[0]
    assert (item["P"], item["J"]) == (7 / 8, 1 / 2)


def test_cap_and_strict_comparison_on_uint8() -> None:
    # Mostly 204 (= 0.8 on the 0..1 scale) with four 255s: mean + std > 0.8, so t = cap = 0.8.
    # 204/255 is not > 0.8 (strict), 255 is; 0 stays background.
    soft = np.full((4, 4), 204, np.uint8)
    soft[0] = 255
    assert soft.astype(np.float32).mean() / 255 + (soft / 255).std() > 0.8
    mask, t = binarize_soft_map(soft)
    assert t == pytest.approx(0.8)
    assert np.array_equal(mask, np.arange(16).reshape(4, 4) < 4)
    # A lower cap (UFO uses 0.5) moves the threshold.
    _, t_low = binarize_soft_map(soft, cap=0.5)
    assert t_low == pytest.approx(0.5)


def test_precision_and_jaccard_by_hand() -> None:
    pred = np.zeros((4, 4), bool)
    gt = np.zeros((4, 4), bool)
    pred[0, 0:4] = True  # 4 pixels
    gt[0, 1:4] = True  # 3 of them shared ...
    gt[1, 0:3] = True  # ... plus 3 more: |G| = 6
    # I = 3, U = 7; correct pixels = 3 TP + (16 - 7) TN = 12.
    assert precision_jaccard(pred, gt) == (12 / 16, 3 / 7)


def test_empty_ground_truth_rules() -> None:
    empty = np.zeros((2, 2), bool)
    some = empty.copy()
    some[0, 0] = True
    assert precision_jaccard(empty, empty, "zero") == (1.0, 0.0)  # SSNM: I/(U+1e-10) = 0
    assert precision_jaccard(empty, empty, "match") == (1.0, 1.0)
    assert precision_jaccard(some, empty, "zero") == (3 / 4, 0.0)
    assert precision_jaccard(some, empty, "match") == (3 / 4, 0.0)
    # A soft map that is all zero binarises to empty (t = 0, nothing is > 0).
    evaluator = CosegEvaluator(empty_gt="match")
    evaluator.update(np.zeros((2, 2), np.uint8), empty, cls="noise", name="n")
    assert evaluator.per_item()[0]["J"] == 1.0


def test_image_and_class_averages() -> None:
    evaluator = CosegEvaluator()
    ones = np.ones((2, 2), bool)
    zeros = np.zeros((2, 2), bool)
    evaluator.update(ones.astype(np.float32), ones, cls="a", name="a1")  # P 1, J 1
    for k in range(3):  # P 0, J 0
        evaluator.update(zeros.astype(np.float32), ones, cls="b", name=f"b{k}")
    scores = evaluator.compute()
    assert scores == {
        "P": 0.25,  # mean over the 4 images (SSNM's val.py)
        "J": 0.25,
        "P_classes": 0.5,  # mean of the class means (1 and 0)
        "J_classes": 0.5,
        "num_classes": 2,
        "num_items": 4,
    }
    assert evaluator.per_class() == {
        "a": {"P": 1.0, "J": 1.0, "num_items": 1},
        "b": {"P": 0.0, "J": 0.0, "num_items": 3},
    }
    json.dumps(scores)


def test_merge_and_pickle() -> None:
    rng = np.random.default_rng(0)
    items = [
        (rng.integers(0, 256, (5, 5), dtype=np.uint8), rng.random((5, 5)) > 0.5, f"c{k % 2}")
        for k in range(6)
    ]
    whole, first, second = CosegEvaluator(), CosegEvaluator(), CosegEvaluator()
    for k, (pred, gt, cls) in enumerate(items):
        whole.update(pred, gt, cls, f"i{k}")
        (first if k < 3 else second).update(pred, gt, cls, f"i{k}")
    first.merge(pickle.loads(pickle.dumps(second)))
    assert first.compute() == whole.compute()
    assert first.per_item() == whole.per_item()
    with pytest.raises(ValueError, match="same settings"):
        first.merge(CosegEvaluator(cap=0.5))


def test_bad_input() -> None:
    evaluator = CosegEvaluator()
    gt = np.zeros((2, 2), bool)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        evaluator.update(np.full((2, 2), 2.0), gt, "c", "x")
    with pytest.raises(ValueError, match="NaN"):
        evaluator.update(np.full((2, 2), np.nan), gt, "c", "x")
    with pytest.raises(ValueError, match="uint8"):
        evaluator.update(np.zeros((2, 2), np.int32), gt, "c", "x")
    with pytest.raises(ValueError, match="shape"):
        evaluator.update(np.zeros((2, 3), np.uint8), gt, "c", "x")
    with pytest.raises(ValueError, match="not binary"):
        evaluator.update(np.zeros((2, 2), np.uint8), np.full((2, 2), 7), "c", "x")
    with pytest.raises(ValueError, match="call update"):
        evaluator.compute()
    with pytest.raises(ValueError):
        CosegEvaluator(threshold=1.5)
    with pytest.raises(ValueError):
        CosegEvaluator(empty_gt="skip")


_soft = arrays(np.uint8, st.tuples(st.integers(1, 8), st.integers(1, 8)))


@settings(max_examples=60, deadline=None)
@given(data=st.data(), cap=st.sampled_from([0.8, 0.5]))
def test_scores_stay_in_range(data: st.DataObject, cap: float) -> None:
    evaluator = CosegEvaluator(cap=cap)
    for k in range(data.draw(st.integers(1, 4))):
        pred = data.draw(_soft)
        gt = data.draw(arrays(np.bool_, pred.shape))
        evaluator.update(pred, gt, cls=f"c{k % 2}", name=str(k))
    scores = evaluator.compute()
    for key in ("P", "J", "P_classes", "J_classes"):
        assert 0.0 <= scores[key] <= 1.0
    assert all(0.0 <= item["threshold"] <= cap + 1e-7 for item in evaluator.per_item())


@settings(max_examples=60, deadline=None)
@given(gt=arrays(np.bool_, st.tuples(st.integers(1, 8), st.integers(1, 8))))
def test_perfect_prediction(gt: np.ndarray) -> None:
    # A binary map equal to the ground truth survives the adaptive threshold unchanged:
    # 0 < t <= 0.8 whenever the map has foreground, and t = 0 when it has none.
    for empty_gt in ("zero", "match"):
        evaluator = CosegEvaluator(empty_gt=empty_gt)
        evaluator.update(gt.astype(np.uint8) * 255, gt, cls="c", name="x")
        scores = evaluator.compute()
        assert scores["P"] == 1.0
        assert scores["J"] == (1.0 if gt.any() or empty_gt == "match" else 0.0)
