"""Fixtures of the task tests."""

from __future__ import annotations

import pytest
import toy_task

from cmseg.models import MODELS
from cmseg.tasks import TASKS


@pytest.fixture
def toy(monkeypatch):
    """The test-only toy task (``toy_task.py``) added to TASKS and its net to MODELS."""
    monkeypatch.setitem(TASKS, "toy", toy_task.make_task())
    monkeypatch.setitem(MODELS, toy_task.MODEL, toy_task.build_toy_net)
    monkeypatch.setenv("CMSEG_PROGRESS", "0")
    return TASKS["toy"]
