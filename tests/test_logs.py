"""Verbosity levels and when progress bars are drawn."""

from __future__ import annotations

import io
import logging
import sys

from cmseg import logs


def test_verbosity_levels():
    logs.setup_logging(-1)
    assert logging.getLogger("cmseg").level == logging.WARNING
    logs.setup_logging(0)
    assert logging.getLogger("cmseg").level == logging.INFO
    logs.setup_logging(1)
    assert logging.getLogger("cmseg").level == logging.DEBUG
    handlers = [h for h in logging.getLogger("cmseg").handlers if getattr(h, "_cmseg", False)]
    assert len(handlers) == 1  # repeated set-up does not duplicate output


def test_progress_only_on_a_terminal(monkeypatch):
    monkeypatch.delenv("CMSEG_PROGRESS", raising=False)
    logs.setup_logging(0)
    monkeypatch.setattr(sys, "stdout", io.StringIO())  # not a terminal
    items = [1, 2, 3]
    assert logs.progress(items) is items

    class FakeTTY(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.setattr(sys, "stdout", FakeTTY())
    assert logs.progress_enabled()
    logs.setup_logging(-1)  # --quiet wins over a terminal
    assert not logs.progress_enabled()
    monkeypatch.setenv("CMSEG_PROGRESS", "1")
    assert logs.progress_enabled()
    bar = logs.progress(items, desc="x", file=io.StringIO())
    assert list(bar) == items and bar is not items
    monkeypatch.setenv("CMSEG_PROGRESS", "0")
    logs.setup_logging(0)
    assert not logs.progress_enabled()
