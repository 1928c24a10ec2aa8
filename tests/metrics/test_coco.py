"""A2D-Sentences protocol: pycocotools mAP (useCats=0) plus top-1 P@K / oIoU / mIoU; RLE helpers."""

from __future__ import annotations

import contextlib
import io
import json
import pickle
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from cmseg.errors import InputError
from cmseg.metrics.coco import (
    AP_KEYS,
    A2DEvaluator,
    _bytes_rle,
    _rle_intersection_union,
    _run_lengths,
    decode_rle,
    encode_rle,
    evaluate_a2d,
    load_gt,
)

SIZE = (32, 32)
P_KEYS = [f"P@{x}" for x in (0.5, 0.6, 0.7, 0.8, 0.9)]


def _box(top: int, left: int, height: int, width: int) -> np.ndarray:
    mask = np.zeros(SIZE, bool)
    mask[top : top + height, left : left + width] = True
    return mask


def _gt(masks: dict[str, np.ndarray]) -> dict:
    images = [{"id": image_id, "height": SIZE[0], "width": SIZE[1]} for image_id in masks]
    annotations = [
        {
            "id": k + 1,
            "image_id": image_id,
            "category_id": 1,
            "iscrowd": 0,
            "segmentation": encode_rle(mask),
            "area": int(mask.sum()),
        }
        for k, (image_id, mask) in enumerate(masks.items())
    ]
    return {"images": images, "annotations": annotations, "categories": [{"id": 1}]}


def _result(image_id: str, mask: np.ndarray, score: float) -> dict:
    return {
        "image_id": image_id,
        "category_id": 1,
        "segmentation": encode_rle(mask),
        "score": score,
    }


# Four frames, each target a 10x10 square (area 100: COCO "small"). Images a, b get a perfect
# top prediction; c, d a 10x16 box containing the target: I = 100, U = 160, IoU = 0.625.
# Every image also gets a disjoint low-score extra prediction (IoU 0).
IDS = ["v_a_f_1_i_0", "v_b_f_1_i_0", "v_c_f_1_i_0", "v_d_f_1_i_0"]
TARGET = _box(4, 4, 10, 10)
WIDE = _box(4, 4, 10, 16)
JUNK = _box(20, 20, 5, 5)
GT = _gt({image_id: TARGET for image_id in IDS})


def _results(perfect_first: bool) -> list[dict]:
    high, low = (0.9, 0.8), (0.7, 0.6)
    if not perfect_first:
        high, low = low, high
    top = [
        _result(IDS[0], TARGET, high[0]),
        _result(IDS[1], TARGET, high[1]),
        _result(IDS[2], WIDE, low[0]),
        _result(IDS[3], WIDE, low[1]),
    ]
    return top + [_result(image_id, JUNK, 0.1) for image_id in IDS]


def _pycocotools_stats(gt: dict, results: list[dict]) -> list[float]:
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO()
        coco_gt.dataset = json.loads(json.dumps(gt))
        coco_gt.createIndex()
        evaluation = COCOeval(coco_gt, coco_gt.loadRes(json.loads(json.dumps(results))), "segm")
        evaluation.params.useCats = 0
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    return evaluation.stats[:6].tolist()


def test_known_ap_perfect_first(capsys: pytest.CaptureFixture[str]) -> None:
    scores = evaluate_a2d(GT, _results(perfect_first=True))
    # IoU thresholds .50 .55 .60: all four top predictions match -> precision 1 at every
    # recall -> AP 1 (the IoU-0 extras rank after every true positive and cost nothing).
    # Thresholds .65 ... .95 (7 of them): only a and b match, ranked first -> precision 1 up
    # to recall 0.5, recall never exceeds 0.5 -> 51 of the 101 recall points -> AP 51/101.
    high = 51 / 101
    assert scores["AP50"] == pytest.approx(1.0)
    assert scores["AP75"] == pytest.approx(high)
    assert scores["mAP"] == pytest.approx((3 * 1.0 + 7 * high) / 10)
    assert scores["AP_S"] == pytest.approx(scores["mAP"])
    assert scores["AP_M"] == -1.0 and scores["AP_L"] == -1.0  # no target in those ranges
    assert [scores[k] for k in AP_KEYS] == pytest.approx(_pycocotools_stats(GT, _results(True)))
    # Top-1 only: IoUs 1, 1, 0.625, 0.625.
    assert scores["mIoU"] == 0.8125
    assert scores["oIoU"] == 400 / 520
    assert [scores[k] for k in P_KEYS] == [1.0, 1.0, 0.5, 0.5, 0.5]
    assert scores["num_items"] == 4 and scores["num_missing"] == 0
    assert capsys.readouterr().out == ""  # pycocotools' progress output is silenced
    json.dumps(scores)


def test_known_ap_perfect_last() -> None:
    scores = evaluate_a2d(GT, _results(perfect_first=False))
    # At thresholds >= .65 the ranking is FP, FP, TP, TP: precision 1/3 then 1/2 at recall
    # 0.25 and 0.5; interpolated precision is 0.5 on the 51 recall points up to 0.5.
    assert scores["AP50"] == pytest.approx(1.0)
    assert scores["AP75"] == pytest.approx(0.5 * 51 / 101)
    assert [scores[k] for k in AP_KEYS] == pytest.approx(_pycocotools_stats(GT, _results(False)))


def test_missing_predictions_and_ties() -> None:
    evaluator = A2DEvaluator(GT)
    evaluator.update([_result(IDS[0], JUNK, 0.5), _result(IDS[0], TARGET, 0.5)])  # tie: last wins
    evaluator.update([_result(IDS[1], TARGET, 0.9)])
    items = evaluator.per_item()
    assert [i["has_prediction"] for i in items] == [True, True, False, False]
    assert items[0]["iou"] == 1.0
    assert items[2]["intersection"] == 0 and items[2]["union"] == 100
    assert items[2]["iou"] == pytest.approx(0.0, abs=1e-7)  # an empty mask: IoU ~ 0
    scores = evaluator.compute()
    assert scores["num_missing"] == 2
    assert scores["oIoU"] == 200 / 400
    assert [scores[k] for k in P_KEYS] == [0.5] * 5
    assert scores["AP50"] == pytest.approx(_pycocotools_stats(GT, evaluator._results)[1])


def test_no_predictions_at_all() -> None:
    scores = A2DEvaluator(GT).compute()
    assert scores["mAP"] == 0.0 and scores["AP_S"] == 0.0 and scores["AP_M"] == -1.0
    assert scores["oIoU"] == 0.0 and scores["P@0.5"] == 0.0 and scores["num_missing"] == 4


def test_update_masks_merge_and_pickle() -> None:
    whole = A2DEvaluator(GT)
    whole.update(_results(True))
    first, second = A2DEvaluator(GT), A2DEvaluator(GT)
    for image_id, mask, score in [(IDS[0], TARGET, 0.9), (IDS[1], TARGET, 0.8)]:
        first.update_masks(image_id, mask, score)
    second.update_masks(IDS[2], np.stack([WIDE]), [0.7], category_id=1)
    second.update_masks(IDS[3], WIDE, 0.6)
    second.update([_result(image_id, JUNK, 0.1) for image_id in IDS])
    first.merge(pickle.loads(pickle.dumps(second)))
    assert first.compute() == whole.compute()
    with pytest.raises(ValueError, match="same ground truth"):
        first.merge(A2DEvaluator(_gt({"other": TARGET})))


def test_rle_round_trip_and_json_safe() -> None:
    rng = np.random.default_rng(0)
    mask = rng.random((7, 5)) > 0.5
    rle = encode_rle(mask)
    assert isinstance(rle["counts"], str) and rle["size"] == [7, 5]
    assert np.array_equal(decode_rle(json.loads(json.dumps(rle))), mask)
    # Uncompressed RLE (column-major runs starting with background) decodes as well.
    column_major = np.array([[0, 1], [1, 1]], bool)
    assert np.array_equal(decode_rle({"size": [2, 2], "counts": [1, 3]}), column_major)


@settings(max_examples=60, deadline=None)
@given(mask=arrays(np.bool_, st.tuples(st.integers(1, 40), st.integers(1, 40))))
def test_rle_run_lengths_match_the_mask(mask: np.ndarray) -> None:
    rle = encode_rle(mask)
    assert np.array_equal(decode_rle(rle), mask)
    flat = mask.flatten(order="F")
    changes = np.flatnonzero(np.diff(flat.astype(np.int8))) + 1
    runs = np.diff(np.concatenate(([0], changes, [flat.size])))
    if flat[0]:  # COCO RLE always starts with a (possibly empty) background run
        runs = np.concatenate(([0], runs))
    assert _run_lengths(rle["counts"].encode()).tolist() == runs.tolist()


@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_rle_intersection_union_match_numpy(data: st.DataObject) -> None:
    a = data.draw(arrays(np.bool_, st.tuples(st.integers(1, 20), st.integers(1, 20))))
    b = data.draw(arrays(np.bool_, a.shape))
    counts = _rle_intersection_union(_bytes_rle(encode_rle(a)), _bytes_rle(encode_rle(b)))
    assert counts == (int((a & b).sum()), int((a | b).sum()))


@pytest.mark.parametrize(
    ("rle", "message"),
    [
        ({"size": [2, 2], "counts": "1"}, "cover 1 pixels"),  # pycocotools would read garbage
        ({"size": [2, 2], "counts": "0W"}, "truncated"),
        ({"size": [2, 2], "counts": "~~"}, "characters"),
        ({"size": [2, 2], "counts": [1, 2]}, "cover 3 pixels"),
        ({"size": [2], "counts": "4"}, "height, width"),
        ({"counts": "4"}, "'size' and 'counts'"),
    ],
)
def test_bad_rle(rle: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        decode_rle(rle)


def test_bad_files(tmp_path: Path) -> None:
    broken = tmp_path / "gt.json"
    broken.write_text('{"images": [')
    with pytest.raises(InputError) as caught:
        load_gt(broken)
    assert caught.value.path == str(broken)
    assert caught.value.reason.startswith("invalid JSON") and "\n" not in caught.value.reason
    with pytest.raises(InputError, match="file not found"):
        load_gt(tmp_path / "missing.json")

    two = json.loads(json.dumps(GT))
    two["annotations"].append(dict(two["annotations"][0], id=99))
    (tmp_path / "two.json").write_text(json.dumps(two))
    with pytest.raises(InputError, match="more than one annotation"):
        load_gt(tmp_path / "two.json")

    gt_path = tmp_path / "good.json"
    gt_path.write_text(json.dumps(GT))
    evaluator = A2DEvaluator(gt_path)
    results = tmp_path / "results.json"
    results.write_text(json.dumps([_result("nope", TARGET, 0.5)]))
    with pytest.raises(InputError, match="result 0: image_id 'nope'"):
        evaluator.update(results)
    results.write_text(json.dumps({"not": "a list"}))
    with pytest.raises(InputError, match="JSON list"):
        evaluator.update(results)
    results.write_text(json.dumps(_results(True)))
    evaluator.update(results)
    assert evaluator.compute()["AP50"] == pytest.approx(1.0)


def test_bad_in_memory_results() -> None:
    evaluator = A2DEvaluator(GT)
    with pytest.raises(ValueError, match="category_id 0"):  # pycocotools would drop it silently
        evaluator.update([dict(_result(IDS[0], TARGET, 0.5), category_id=0)])
    with pytest.raises(ValueError, match="score"):
        evaluator.update([_result(IDS[0], TARGET, float("nan"))])
    with pytest.raises(ValueError, match="mask size"):
        evaluator.update(
            [{"image_id": IDS[0], "segmentation": encode_rle(np.ones((4, 4))), "score": 1}]
        )
    assert len(evaluator) == 0  # nothing half-added
    no_category = {"image_id": IDS[0], "segmentation": encode_rle(TARGET), "score": 1.0}
    evaluator.update([no_category])
    assert evaluator._results[0]["category_id"] == 1


def test_gt_fields_filled_in() -> None:
    bare = {
        "images": [{"id": 7}],
        "annotations": [{"image_id": 7, "segmentation": encode_rle(TARGET)}],
    }
    gt = load_gt(bare)
    ann = gt["annotations"][0]
    assert (ann["area"], ann["iscrowd"], ann["id"], ann["category_id"]) == (100, 0, 1, 1)
    assert gt["categories"] == [{"id": 1}]
    scores = evaluate_a2d(bare, [{"image_id": 7, "segmentation": encode_rle(TARGET), "score": 1}])
    assert scores["mAP"] == pytest.approx(1.0)


@st.composite
def _case(draw: st.DrawFn) -> tuple[dict, list[dict]]:
    n = draw(st.integers(1, 3))
    shape = (draw(st.integers(2, 12)), draw(st.integers(2, 12)))
    gts, results = {}, []
    for k in range(n):
        gt = draw(arrays(np.bool_, shape))
        gt[0, 0] = True  # A2D targets are never empty
        gts[f"i{k}"] = gt
        for _ in range(draw(st.integers(0, 3))):
            pred = draw(arrays(np.bool_, shape))
            results.append(
                {
                    "image_id": f"i{k}",
                    "segmentation": encode_rle(pred),
                    "score": draw(st.floats(0, 1)),
                }
            )
    images = [{"id": i} for i in gts]
    anns = [{"image_id": i, "segmentation": encode_rle(m)} for i, m in gts.items()]
    return {"images": images, "annotations": anns}, results


@settings(max_examples=25, deadline=None)
@given(case=_case())
def test_scores_stay_in_range(case: tuple[dict, list[dict]]) -> None:
    gt, results = case
    scores = evaluate_a2d(gt, results)
    for key in ("mAP", "AP50", "AP75", "oIoU", "mIoU", *P_KEYS):
        assert 0.0 <= scores[key] <= 1.0, key
    for key in ("AP_S", "AP_M", "AP_L"):
        assert scores[key] == -1.0 or 0.0 <= scores[key] <= 1.0


@settings(max_examples=25, deadline=None)
@given(case=_case())
def test_perfect_predictions_score_one(case: tuple[dict, list[dict]]) -> None:
    gt, _ = case
    perfect = [
        {"image_id": a["image_id"], "segmentation": a["segmentation"], "score": 1.0}
        for a in gt["annotations"]
    ]
    scores = evaluate_a2d(gt, perfect)
    for key in ("mAP", "AP50", "AP75", "AP_S", "oIoU", "mIoU", *P_KEYS):
        assert scores[key] == pytest.approx(1.0), key
