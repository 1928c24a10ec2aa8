"""``cmseg evaluate coseg``: SSNM's numbers are computed at 224x224 (``ssnm``, the default:
prediction and GT resized with PIL's bilinear filter, the GT read as grey and kept above 0.5),
``native`` scores at the GT's resolution. Expected values computed by hand."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from cmseg.engine.evaluate import evaluate_folders
from cmseg.io import write_png
from cmseg.tasks import load_evaluation

REPO = Path(__file__).resolve().parents[3]


def _thin_line(root: Path, gt_values: tuple[int, int] = (0, 255)) -> None:
    """A 448x448 image whose object is a 2-px vertical line (columns 200 and 201)."""
    line = np.zeros((448, 448), np.uint8)
    line[:, 200:202] = 1
    write_png(root / "gt" / "cls" / "a.png", np.where(line > 0, *gt_values[::-1]).astype(np.uint8))
    write_png(root / "pred" / "cls" / "a.png", line * 255)


def test_ssnm_scores_at_224_and_native_at_the_gt_size(tmp_path):
    # PIL's bilinear filter halves the size with weights 1/8, 3/8, 3/8, 1/8: column 100 gets
    # 0.75 * 255 = 191 and columns 99 and 101 get 0.125 * 255 = 32. The GT keeps column 100
    # (191 > 127.5). The prediction's adaptive threshold min(mean + std, 0.8) is about 0.056,
    # so columns 99..101 are foreground: J = 1/3, P = 1 - 2/224. Natively J = P = 1.
    _thin_line(tmp_path)
    adapter = load_evaluation("coseg")
    assert adapter.default_protocol == "ssnm"
    ssnm = evaluate_folders(adapter, tmp_path / "pred", tmp_path / "gt", workers=1).result
    assert ssnm["protocol"] == "ssnm"
    assert ssnm["metrics"]["J"] == pytest.approx(1 / 3)
    assert ssnm["metrics"]["P"] == pytest.approx(1 - 2 / 224)
    native = evaluate_folders(
        adapter, tmp_path / "pred", tmp_path / "gt", protocol="native", workers=1
    ).result
    assert native["metrics"]["J"] == 1.0 and native["metrics"]["P"] == 1.0
    assert ssnm["notes"] == native["notes"] == {"resized": 0}


def test_cli_default_protocol_is_ssnm(tmp_path):
    _thin_line(tmp_path, gt_values=(0, 1))  # a 0/1 GT reads as the mask it is, not as empty
    env = dict(os.environ, PYTHONPATH=str(REPO), CMSEG_PROGRESS="0")
    out = subprocess.run(
        [sys.executable, "-m", "cmseg", "evaluate", "coseg", "--pred", "pred", "--gt", "gt",
         "--out", "r.json"],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "coseg (ssnm protocol)" in out.stdout
    result = json.loads((tmp_path / "r.json").read_text())
    assert result["metrics"]["J"] == pytest.approx(1 / 3)
