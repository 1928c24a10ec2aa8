"""``cmseg evaluate rvos --protocol mevis`` as MeViS's ``eval_mevis.py``: the ground truth read
from a split folder's ``mask_dict.json`` (RLE per anno id, ``meta_expressions.json`` mapping
expressions to anno ids), and an expression without predictions scored J = F = 0 (counted)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from cmseg.data.formats.mevis_masks import mevis_masks, read_mevis_targets
from cmseg.data.synthetic.rvos import write_rvos
from cmseg.engine.evaluate import evaluate_folders
from cmseg.io import write_png
from cmseg.metrics.coco import decode_rle
from cmseg.tasks import load_evaluation

REPO = Path(__file__).resolve().parents[3]
SIZE = 64  # the synthetic valid_u split then holds a plural expression (seed 0)


@pytest.fixture(scope="module")
def mevis(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("mevis")
    write_rvos(root, n=4, size=SIZE, layout="mevis", valid_fraction=0.5, workers=1)
    return root / "valid_u"


def _perfect(split: Path, out: Path) -> dict[str, np.ndarray]:
    """Predictions equal to the targets (the union of the expression's objects), built from
    the JSON files directly; returns ``{video/exp: (T, H, W)}``."""
    meta = json.loads((split / "meta_expressions.json").read_text())["videos"]
    rles = json.loads((split / "mask_dict.json").read_text())
    targets = {}
    for vid, entry in meta.items():
        for exp_id, exp in entry["expressions"].items():
            frames = []
            for t in range(len(entry["frames"])):
                masks = [decode_rle(rles[str(a)][t]) for a in exp["anno_id"] if rles[str(a)][t]]
                frames.append(np.any(masks, axis=0) if masks else np.zeros((SIZE, SIZE), bool))
            targets[f"{vid}/{exp_id}"] = np.stack(frames)
            for name, frame in zip(entry["frames"], frames, strict=True):
                write_png(out / vid / exp_id / f"{name}.png", frame)
    return targets


def test_mask_dict_is_read_as_the_union_of_the_expression_objects(mevis, tmp_path):
    truth = _perfect(mevis, tmp_path / "pred")
    targets, problems = read_mevis_targets(mevis)
    assert problems == [] and set(targets) == set(truth)
    multi = [k for k, t in targets.items() if len(t.anno_ids) > 1]
    assert multi  # the synthetic split has a plural expression (two objects)
    for key, target in targets.items():
        assert np.array_equal(mevis_masks(target, mevis / "mask_dict.json"), truth[key])
    report = evaluate_folders(load_evaluation("rvos"), tmp_path / "pred", mevis, workers=2)
    assert report.result["protocol"] == "mevis"  # chosen from the split folder
    assert report.result["metrics"]["J&F"] == 1.0
    assert report.problems() == [] and report.num_scored == len(truth)


def test_an_expression_without_prediction_scores_zero_and_is_counted(mevis, tmp_path):
    truth = _perfect(mevis, tmp_path / "pred")
    gone = sorted(truth)[:2]
    for key in gone:
        shutil.rmtree(tmp_path / "pred" / key)
    n = len(truth)
    env = dict(os.environ, PYTHONPATH=str(REPO), CMSEG_PROGRESS="0")
    out = subprocess.run(
        [sys.executable, "-m", "cmseg", "evaluate", "rvos", "--protocol", "mevis", "--pred",
         "pred", "--gt", str(mevis), "--out", "r.json"],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr  # the official script scores, it does not refuse
    assert "2 expression(s) without prediction scored J = F = 0" in out.stderr
    result = json.loads((tmp_path / "r.json").read_text())
    # the mean over expressions: (n - 2) ones and two zeros
    assert result["metrics"]["J"]["mean"] == pytest.approx((n - 2) / n)
    assert result["metrics"]["J&F"] == pytest.approx((n - 2) / n)
    assert result["notes"] == {"resized": 0, "scored_as_zero": 2}
    assert result["per_sequence"][gone[0]]["J"]["mean"] == 0.0
    assert "problems" not in result


def test_png_ground_truth_under_mevis_scores_missing_expressions_zero(tmp_path):
    for exp in ("0", "1"):
        for t in range(3):
            mask = np.zeros((20, 30), bool)
            mask[5:15, 5:20] = True
            write_png(tmp_path / "gt" / "v" / exp / f"{t:05d}.png", mask)
            if exp == "0":
                write_png(tmp_path / "pred" / "v" / exp / f"{t:05d}.png", mask)
    report = evaluate_folders(
        load_evaluation("rvos"), tmp_path / "pred", tmp_path / "gt", protocol="mevis", workers=1
    )
    assert report.problems() == [] and report.result["metrics"]["J&F"] == 0.5
    assert report.notes == {"resized": 0, "scored_as_zero": 1}
    ytvos = evaluate_folders(
        load_evaluation("rvos"), tmp_path / "pred", tmp_path / "gt", protocol="ytvos", workers=1
    )
    assert len(ytvos.missing) == 1  # the other protocols still list it as missing


def test_a_mevis_split_needs_the_mevis_protocol(mevis, tmp_path):
    from cmseg.errors import InputError

    (tmp_path / "pred").mkdir()
    with pytest.raises(InputError, match="mevis protocol"):
        evaluate_folders(
            load_evaluation("rvos"), tmp_path / "pred", mevis, protocol="ytvos", workers=1
        )
