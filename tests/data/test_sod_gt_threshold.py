"""One SOD ground-truth threshold (``cmseg.io.SOD_GT_THRESHOLD``, PySODMetrics' ``gt > 128``)
for training (the folder reader), ``data check sod`` and ``evaluate sod``."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cmseg.data.check import check_dataset
from cmseg.data.formats.sod_folders import SODFolders
from cmseg.engine.evaluate import evaluate_folders
from cmseg.io import SOD_GT_THRESHOLD, read_grey, write_png
from cmseg.metrics.sod import SODEvaluator
from cmseg.tasks import load_evaluation

#: grey levels on both sides of the threshold, 128 itself included
LEVELS = np.array([[0, 127, 128, 129], [130, 200, 128, 255]], np.uint8).repeat(4, 0).repeat(4, 1)


def _write(root: Path, name: str, gt: np.ndarray) -> None:
    h, w = gt.shape
    write_png(root / "RGB" / f"{name}.png", np.full((h, w, 3), 90, np.uint8))
    write_png(root / "depth" / f"{name}.png", np.tile(np.arange(w, dtype=np.uint8), (h, 1)))
    write_png(root / "GT" / f"{name}.png", gt)


def test_the_threshold_is_pysodmetrics_gt_above_128():
    assert SOD_GT_THRESHOLD == 128


def test_training_reader_check_and_evaluation_agree_on_the_foreground(tmp_path):
    _write(tmp_path, "a", LEVELS)
    _write(tmp_path, "b", np.where(LEVELS > 0, 128, 0).astype(np.uint8))  # only 128: empty
    expected = LEVELS > 128

    samples = {s["name"]: s for s in SODFolders(tmp_path)}
    assert np.array_equal(samples["a"]["mask"], expected)  # training: > 128, not > 127
    assert not samples["b"]["mask"].any()

    problems = check_dataset("sod", tmp_path, workers=1)
    assert len(problems) == 1 and "b.png" in problems[0] and "empty" in problems[0]

    # evaluation: the prediction equal to the training mask scores MAE 0 on image a
    pred = tmp_path / "pred"
    write_png(pred / "a.png", expected)
    direct = SODEvaluator()
    direct.update(expected.astype(np.uint8) * 255, read_grey(tmp_path / "GT" / "a.png"), name="a")
    assert direct.per_item()["a"]["mae"] == 0.0
    (tmp_path / "GT" / "b.png").unlink()
    report = evaluate_folders(load_evaluation("sod"), pred, tmp_path / "GT", workers=1)
    assert report.result["per_item"]["a"]["mae"] == 0.0


def test_a_0_1_ground_truth_is_a_problem_not_an_empty_mask(tmp_path):
    write_png(tmp_path / "gt" / "a.png", (LEVELS > 128).astype(np.uint8))  # stored as 0/1
    write_png(tmp_path / "pred" / "a.png", LEVELS > 128)
    write_png(tmp_path / "gt" / "b.png", LEVELS)
    write_png(tmp_path / "pred" / "b.png", LEVELS)
    report = evaluate_folders(
        load_evaluation("sod"), tmp_path / "pred", tmp_path / "gt", workers=1, allow_missing=True
    )
    assert len(report.unreadable) == 1 and "stored as 0/1" in report.unreadable[0]
    assert report.num_scored == 1
