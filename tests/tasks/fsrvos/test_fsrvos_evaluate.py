"""``cmseg evaluate fsrvos`` scores as CMA's test.py does (reference cma_fsrvos.md §5): J and F
pooled over all frames of all expressions, at short side 360; the rvos protocols stay
available. Expected values computed by hand from CMA's rules."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from cmseg.engine.evaluate import evaluate_folders
from cmseg.errors import CmsegError
from cmseg.io import write_png
from cmseg.tasks import load_evaluation

REPO = Path(__file__).resolve().parents[3]


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(REPO), CMSEG_PROGRESS="0")
    return subprocess.run(
        [sys.executable, "-m", "cmseg", "evaluate", "fsrvos", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=300,
    )


def _box() -> np.ndarray:
    mask = np.zeros((40, 60), bool)
    mask[10:30, 15:45] = True
    return mask


def _two_expressions(root: Path) -> None:
    """a: 1 frame predicted perfectly; b: 3 frames, object present, empty predictions."""
    write_png(root / "gt" / "v" / "a" / "00000.png", _box())
    write_png(root / "pred" / "v" / "a" / "00000.png", _box())
    for t in range(3):
        write_png(root / "gt" / "v" / "b" / f"{t:05d}.png", _box())
        write_png(root / "pred" / "v" / "b" / f"{t:05d}.png", np.zeros((40, 60), bool))


def test_cma_pools_every_frame_of_every_expression(tmp_path):
    _two_expressions(tmp_path)
    out = cli("--pred", "pred", "--gt", "gt", "--out", "r.json", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    result = json.loads((tmp_path / "r.json").read_text())
    assert result["protocol"] == "cma"  # the default for expression folders
    # CMA: (1 + 0 + 0 + 0) / 4 frames = 0.25 (the per-expression mean would be 0.5)
    assert result["metrics"]["J"]["mean"] == 0.25 and result["metrics"]["F"]["mean"] == 0.25
    assert result["metrics"]["J&F"] == 0.25
    ytvos = evaluate_folders(
        load_evaluation("fsrvos"), tmp_path / "pred", tmp_path / "gt", protocol="ytvos", workers=1
    )
    assert ytvos.result["metrics"]["J&F"] == 0.5  # still available, per expression


def _lines(root: Path, pred_size: int = 720) -> None:
    """GT rows 100-101, prediction rows 101-102 (cols 100..299) of a 720x720 frame."""
    gt = np.zeros((720, 720), bool)
    gt[100:102, 100:300] = True
    write_png(root / "gt" / "v" / "0" / "00000.png", gt)
    pred = np.zeros((720, 720), bool)
    pred[101:103, 100:300] = True
    if pred_size == 360:  # already at CMA's scoring size: the GT at 360 (row 50, cols 50..149)
        pred = np.zeros((360, 360), bool)
        pred[50, 50:150] = True
    write_png(root / "pred" / "v" / "0" / "00000.png", pred)


def test_cma_scores_at_short_side_360_unless_told(tmp_path):
    # Natively J = 200 / 600 = 1/3. At 360x360 (2x2 averages, then > 0.5) the GT keeps row 50
    # and the prediction, 0.5 on rows 50 and 51, vanishes: J = F = 0.
    _lines(tmp_path)
    adapter = load_evaluation("fsrvos")
    cma = evaluate_folders(adapter, tmp_path / "pred", tmp_path / "gt", workers=1).result
    assert cma["metrics"]["J"]["mean"] == 0.0 and cma["metrics"]["F"]["mean"] == 0.0
    assert cma["notes"] == {"resized": 0}  # the protocol's own resolution is no resize
    native = evaluate_folders(
        adapter, tmp_path / "pred", tmp_path / "gt", workers=1, options={"short_side": 0}
    ).result
    assert native["metrics"]["J"]["mean"] == pytest.approx(1 / 3)
    out = cli("--pred", "pred", "--gt", "gt", "--short-side", "0", "--out", "n.json", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert json.loads((tmp_path / "n.json").read_text())["metrics"]["J"]["mean"] == pytest.approx(
        1 / 3
    )


def test_a_prediction_at_the_scoring_size_is_taken_as_it_is(tmp_path):
    _lines(tmp_path, pred_size=360)
    result = evaluate_folders(
        load_evaluation("fsrvos"), tmp_path / "pred", tmp_path / "gt", workers=1
    ).result
    assert result["metrics"]["J"]["mean"] == 1.0 and result["notes"] == {"resized": 0}


def test_short_side_belongs_to_cma_and_fsrvos(tmp_path):
    _two_expressions(tmp_path)
    with pytest.raises(CmsegError, match="cma protocol only"):
        evaluate_folders(
            load_evaluation("fsrvos"), tmp_path / "pred", tmp_path / "gt", protocol="ytvos",
            workers=1, options={"short_side": 360},
        )  # fmt: skip
    out = subprocess.run(
        [sys.executable, "-m", "cmseg", "evaluate", "rvos", "--pred", "pred", "--gt", "gt",
         "--short-side", "360"],
        capture_output=True, text=True, cwd=tmp_path,
        env=dict(os.environ, PYTHONPATH=str(REPO), CMSEG_PROGRESS="0"),
    )  # fmt: skip
    assert out.returncode == 2 and "--short-side applies to the fsrvos task only" in out.stderr
