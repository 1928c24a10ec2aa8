"""RISEvaluator: oIoU / mIoU / prec@X under the lavt, cris and mttr conventions."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from cmseg.metrics.masks import (
    PREC_THRESHOLDS,
    RIS_CONVENTIONS,
    RISEvaluator,
    intersection_union,
    ris_hits,
    ris_iou,
)

PREC_KEYS = [f"prec@{x}" for x in PREC_THRESHOLDS]


def _evaluator(convention: str, pairs: list[tuple[int, int]]) -> RISEvaluator:
    evaluator = RISEvaluator(convention)
    for index, (inter, union) in enumerate(pairs):
        evaluator.update_counts(inter, union, name=f"s{index}")
    return evaluator


def test_counts_from_masks_by_hand() -> None:
    pred = np.zeros((4, 4), bool)
    gt = np.zeros((4, 4), bool)
    pred[0:2] = True  # rows 0-1: 8 pixels
    gt[1:3] = True  # rows 1-2: 8 pixels, row 1 shared
    assert intersection_union(pred, gt) == (4, 12)
    evaluator = RISEvaluator()
    evaluator.update(pred, gt.astype(np.uint8) * 255, name="a")  # 0/255 uint8 is accepted
    assert evaluator.per_item() == [{"name": "a", "intersection": 4, "union": 12, "iou": 4 / 12}]


def test_default_convention_is_lavt() -> None:
    assert RISEvaluator().convention == "lavt"


# One set of sentences, scored by hand under each convention:
#   (50, 100) IoU exactly 0.5      (70, 100) exactly 0.7 in float64    (90, 100) exactly 0.9
#   (0, 0) empty target and empty prediction                           (0, 40) empty prediction
PAIRS = [(50, 100), (70, 100), (90, 100), (0, 0), (0, 40)]


def test_lavt_by_hand() -> None:
    scores = _evaluator("lavt", PAIRS).compute()
    # I/U, U == 0 -> 0; prec uses >= so every exact-threshold IoU passes.
    assert scores["mIoU"] == pytest.approx((0.5 + 0.7 + 0.9 + 0 + 0) / 5, abs=1e-15)
    assert scores["oIoU"] == 210 / 340
    assert [scores[k] for k in PREC_KEYS] == [3 / 5, 2 / 5, 2 / 5, 1 / 5, 1 / 5]
    assert scores["num_items"] == 5


def test_cris_by_hand() -> None:
    scores = _evaluator("cris", PAIRS).compute()
    # I/(U+1e-6): 50/100.000001 < 0.5 fails prec@0.5; 70/100.000001 = 0.69999999930 is above
    # float32(0.7) = 0.69999998808 and passes; 90/100.000001 = 0.8999999991 > float32(0.9)
    # = 0.89999997616 passes prec@0.9.
    assert scores["mIoU"] == pytest.approx((50 + 70 + 90) / 100.000001 / 5, abs=1e-15)
    assert scores["oIoU"] == 210 / 340
    assert [scores[k] for k in PREC_KEYS] == [2 / 5, 2 / 5, 2 / 5, 1 / 5, 1 / 5]


def test_mttr_by_hand() -> None:
    scores = _evaluator("mttr", PAIRS).compute()
    # float32 (I+1e-6)/(U+1e-6): the 1e-6 vanishes next to 50 or 100, so the ratios are
    # float32(0.5) = 0.5 (not > 0.5), float32(0.7) = 0.69999999 and float32(0.9) = 0.89999998
    # (both just below their thresholds); empty/empty is 1 and passes everything.
    ious = [0.5, float(np.float32(0.7)), float(np.float32(0.9)), 1.0, float(np.float32(1e-6 / 40))]
    assert [item["iou"] for item in _evaluator("mttr", PAIRS).per_item()] == pytest.approx(
        ious, rel=1e-6
    )
    assert scores["mIoU"] == pytest.approx(sum(ious) / 5, abs=1e-9)
    assert scores["oIoU"] == 210 / 340
    assert [scores[k] for k in PREC_KEYS] == [3 / 5, 3 / 5, 2 / 5, 2 / 5, 1 / 5]


@pytest.mark.parametrize(
    ("inter", "union", "threshold", "expected"),
    [
        # I/U equals the threshold exactly in float64 (1/2 == 0.5, 7/10 == 0.7, 70/100 == 0.7).
        (1, 2, 0.5, {"lavt": True, "cris": False, "mttr": True}),
        (50, 100, 0.5, {"lavt": True, "cris": False, "mttr": False}),
        (7, 10, 0.7, {"lavt": True, "cris": False, "mttr": True}),
        (70, 100, 0.7, {"lavt": True, "cris": True, "mttr": False}),
        (90, 100, 0.9, {"lavt": True, "cris": True, "mttr": False}),
    ],
)
def test_exact_threshold_disagreement(
    inter: int, union: int, threshold: float, expected: dict[str, bool]
) -> None:
    assert inter / union == threshold  # the pair really sits on the threshold in float64
    column = PREC_THRESHOLDS.index(threshold)
    for convention in RIS_CONVENTIONS:
        hit = ris_hits(ris_iou([inter], [union], convention), convention)[0, column]
        assert bool(hit) is expected[convention], convention


def test_cris_thresholds_are_torch_float32_arange() -> None:
    from cmseg.metrics.masks import _cris_thresholds

    expected = [0.5, 0.6000000238418579, 0.699999988079071, 0.800000011920929, 0.8999999761581421]
    assert _cris_thresholds().tolist() == expected
    # float32 arithmetic start + i*step gives the same values; numpy's float32 arange does not.
    f32 = np.float32(0.5) + np.arange(5, dtype=np.float32) * np.float32(0.1)
    assert f32.astype(np.float64).tolist() == expected
    assert np.arange(0.5, 1.0, 0.1, dtype=np.float32)[2] != np.float32(0.7)


@pytest.mark.parametrize(("convention", "empty_iou"), [("lavt", 0.0), ("cris", 0.0), ("mttr", 1.0)])
def test_empty_target_rules(convention: str, empty_iou: float) -> None:
    empty = np.zeros((3, 3), bool)
    some = empty.copy()
    some[1, 1] = True
    evaluator = RISEvaluator(convention)
    evaluator.update(empty, empty)  # empty target, empty prediction
    evaluator.update(some, empty)  # empty target, non-empty prediction
    ious = [item["iou"] for item in evaluator.per_item()]
    assert ious[0] == empty_iou
    assert ious[1] == pytest.approx(0.0, abs=1e-6)
    # Every union empty: oIoU takes the convention's empty/empty value.
    only_empty = RISEvaluator(convention)
    only_empty.update(empty, empty)
    assert only_empty.compute()["oIoU"] == empty_iou


def test_merge_pickle_and_json() -> None:
    pairs = [(3, 4), (0, 5), (9, 9), (1, 3)]
    whole = _evaluator("lavt", pairs)
    first = _evaluator("lavt", pairs[:2])
    second = pickle.loads(pickle.dumps(_evaluator("lavt", pairs[2:])))
    first.merge(second)
    assert first.compute() == whole.compute()
    assert [i["iou"] for i in first.per_item()] == [i["iou"] for i in whole.per_item()]
    json.dumps(first.compute())
    with pytest.raises(ValueError, match="same convention"):
        first.merge(RISEvaluator("mttr"))


def test_bad_input() -> None:
    with pytest.raises(ValueError, match="unknown RIS convention"):
        RISEvaluator("lavt2")
    with pytest.raises(ValueError, match="call update"):
        RISEvaluator().compute()
    evaluator = RISEvaluator()
    with pytest.raises(ValueError, match="not binary"):
        evaluator.update(np.full((2, 2), 0.5), np.zeros((2, 2), bool))
    with pytest.raises(ValueError, match="shape"):
        evaluator.update(np.zeros((2, 2), bool), np.zeros((2, 3), bool))
    with pytest.raises(ValueError, match="intersection <= union"):
        evaluator.update_counts(5, 4)
    assert len(evaluator) == 0
    evaluator.update(np.ones((2, 2)), np.ones((2, 2), np.int64))
    evaluator.reset()
    assert len(evaluator) == 0


_masks = arrays(np.bool_, st.tuples(st.integers(1, 6), st.integers(1, 6)))


@settings(max_examples=60, deadline=None)
@given(data=st.data(), convention=st.sampled_from(RIS_CONVENTIONS), n=st.integers(1, 5))
def test_scores_stay_in_range(data: st.DataObject, convention: str, n: int) -> None:
    evaluator = RISEvaluator(convention)
    for _ in range(n):
        gt = data.draw(_masks)
        pred = data.draw(arrays(np.bool_, gt.shape))
        evaluator.update(pred, gt)
    scores = evaluator.compute()
    for key in ("oIoU", "mIoU", *PREC_KEYS):
        assert 0.0 <= scores[key] <= 1.0
    precs = [scores[k] for k in PREC_KEYS]
    assert precs == sorted(precs, reverse=True)  # a higher bar never passes more items
    assert all(0.0 <= item["iou"] <= 1.0 for item in evaluator.per_item())


@settings(max_examples=40, deadline=None)
@given(gt=_masks, convention=st.sampled_from(RIS_CONVENTIONS))
def test_perfect_prediction(gt: np.ndarray, convention: str) -> None:
    gt = gt.copy()
    gt[0, 0] = True  # a non-empty target
    evaluator = RISEvaluator(convention)
    evaluator.update(gt, gt)
    scores = evaluator.compute()
    assert scores["oIoU"] == 1.0
    assert all(scores[k] == 1.0 for k in PREC_KEYS)
    if convention == "cris":  # I/(U+1e-6): a perfect mask stays just below 1 by definition
        union = int(gt.sum())
        assert scores["mIoU"] == union / (union + 1e-6)
    else:
        assert scores["mIoU"] == 1.0
