"""Fixtures of the coseg task tests."""

from __future__ import annotations

from pathlib import Path

import coseg_helpers
import pytest

from cmseg.data.synthetic import write_synthetic
from cmseg.models import MODELS


@pytest.fixture
def stand_in(monkeypatch):
    """``ssnm_tiny`` replaced by the contract's stand-in (``coseg_helpers.stand_in_ssnm``), for
    the tests of the task's own code; the end-to-end tests use the real ``ssnm_tiny``."""
    monkeypatch.setitem(MODELS, "ssnm_tiny", coseg_helpers.stand_in_ssnm)
    monkeypatch.setenv("CMSEG_PROGRESS", "0")


@pytest.fixture(scope="session")
def synth(tmp_path_factory) -> Path:
    """Synthetic groups at 64 px: 3 shape classes, 4 groups of 5 each (3 train, 1 test)."""
    root = tmp_path_factory.mktemp("synth_coseg")
    write_synthetic("coseg", root, n=12, size=64, seed=0, classes=3, workers=1)
    return root


@pytest.fixture
def tiny_coco(tmp_path) -> Path:
    return coseg_helpers.write_tiny_coco(tmp_path / "coco")
