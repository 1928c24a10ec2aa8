"""Fixtures of the coseg task tests."""

from __future__ import annotations

import sys
import types
from pathlib import Path

import coseg_helpers
import pytest

from cmseg.data.synthetic import write_synthetic
from cmseg.models import MODELS


@pytest.fixture
def stand_in(monkeypatch):
    """``ssnm_tiny`` replaced by the contract's stand-in (and, while the real package is not
    there, ``cmseg.models.ssnm.loss.ssnm_loss`` by a stand-in loss)."""
    monkeypatch.setitem(MODELS, "ssnm_tiny", coseg_helpers.stand_in_ssnm)
    try:
        import cmseg.models.ssnm.loss  # noqa: F401
    except ImportError:
        package = types.ModuleType("cmseg.models.ssnm")
        package.__path__ = []
        loss = types.ModuleType("cmseg.models.ssnm.loss")
        loss.ssnm_loss = coseg_helpers.stand_in_loss
        package.loss = loss
        monkeypatch.setitem(sys.modules, "cmseg.models.ssnm", package)
        monkeypatch.setitem(sys.modules, "cmseg.models.ssnm.loss", loss)
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
