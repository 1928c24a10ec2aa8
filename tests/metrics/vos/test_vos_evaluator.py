"""VOSEvaluator: dataset numbers of the davis, mevis and ytvos protocols, merging, pickling."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest
from vos_cases import davis_gt_pred

from cmseg.metrics.vos import (
    DEFAULT_BOUND_TH,
    VOSEvaluator,
)


def test_davis_evaluator_global_numbers():
    # Sequence "a": object 1 perfect (J = F = 1 on 3 frames), object 2 missing (0 on 3 frames).
    # Sequence "b": one object, perfect. Per object J-Mean: 1, 0, 1 -> mean 2/3, same for F;
    # J&F = 2/3. Recall 1, 0, 1 -> 2/3. Decay 0 everywhere.
    gt, pred = davis_gt_pred()
    ev = VOSEvaluator("davis")
    ev.update(np.where(pred == 2, 0, pred), gt, "a")
    gt_b = np.where(gt == 2, 0, gt)  # keeps the void row
    ev.update(np.where(gt_b == 255, 0, gt_b), gt_b, "b")
    res = ev.compute()
    assert res["J&F"] == pytest.approx(2 / 3)
    assert res["J"] == pytest.approx({"mean": 2 / 3, "recall": 2 / 3, "decay": 0.0})
    assert res["F"] == pytest.approx({"mean": 2 / 3, "recall": 2 / 3, "decay": 0.0})
    assert type(res["J&F"]) is float and all(type(x) is float for x in res["F"].values())
    per = ev.per_sequence()
    assert list(per) == ["a", "b"] and list(per["a"]) == [1, 2] and list(per["b"]) == [1]
    assert per["a"][2]["J"]["mean"] == 0.0 and per["a"][2]["frames"] == 3
    json.dumps({"global": res, "per_sequence": per})  # plain Python types only


def test_mevis_empty_gt_frames_count():
    # Frame 0: GT empty, pred empty -> 1. Frame 1: GT empty, pred not -> 0. Frame 2: equal -> 1.
    gt = np.zeros((3, 16, 16), bool)
    pred = np.zeros_like(gt)
    pred[1, 4:8, 4:8] = True
    gt[2, 2:9, 3:7] = True
    pred[2] = gt[2]
    ev = VOSEvaluator("mevis")
    entry = ev.update(pred, gt, "v/0")
    assert entry["J"]["mean"] == pytest.approx(2 / 3)
    assert entry["F"]["mean"] == pytest.approx(2 / 3)
    assert entry["frames"] == 3
    # A second expression, perfect: dataset J = mean over expressions = (2/3 + 1) / 2.
    ev.update(gt, gt, "v/1")
    res = ev.compute()
    assert res["J"]["mean"] == pytest.approx(5 / 6) and res["J&F"] == pytest.approx(5 / 6)


def test_ytvos_scores_every_frame_given_and_accepts_uint8():
    gt = np.zeros((2, 10, 10), np.uint8)
    gt[:, 2:5, 2:5] = 1
    pred = gt * 255  # nonzero = foreground
    pred[1] = 0
    ev = VOSEvaluator("ytvos", bound_th=0.010)
    entry = ev.update(pred, gt, "x")
    assert entry["J"]["mean"] == 0.5 and entry["J"]["recall"] == 0.5 and entry["frames"] == 2


def test_evaluator_merge_pickle_reset():
    rng = np.random.default_rng(7)
    data = []
    for i in range(4):
        gt = rng.random((4, 12, 14)) < 0.3
        pred = gt ^ (rng.random(gt.shape) < 0.1)
        data.append((f"s{i}", pred, gt))
    whole = VOSEvaluator("mevis")
    for name, p, g in data:
        whole.update(p, g, name)
    a, b = VOSEvaluator("mevis"), VOSEvaluator("mevis")
    for name, p, g in data[2:]:
        a.update(p, g, name)  # other order on purpose
    for name, p, g in data[:2]:
        b.update(p, g, name)
    b = pickle.loads(pickle.dumps(b))
    a.merge(b)
    assert a.compute() == whole.compute()
    assert a.per_sequence() == whole.per_sequence()
    with pytest.raises(ValueError):
        a.merge(b)  # names already present
    with pytest.raises(ValueError):
        a.merge(VOSEvaluator("ytvos"))
    with pytest.raises(ValueError):
        a.update(data[0][1], data[0][2], "s0")
    a.reset()
    assert len(a) == 0
    with pytest.raises(RuntimeError):
        a.compute()
    with pytest.raises(ValueError):
        VOSEvaluator("davis2016")
    assert VOSEvaluator().bound_th == DEFAULT_BOUND_TH
