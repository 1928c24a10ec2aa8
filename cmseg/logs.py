"""Logging set-up and progress bars shared by every command.

Modules log through ``logging.getLogger(__name__)``; the CLI calls :func:`setup_logging` once
with the verbosity the user chose. Progress bars appear only when stdout is a terminal (so
logs and CI output stay clean) and never under ``--quiet``.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterable
from typing import Any, TypeVar

T = TypeVar("T")

_state = {"quiet": False}


def setup_logging(verbosity: int = 0) -> None:
    """Configure the ``cmseg`` logger.

    Args:
        verbosity: -1 quiet (warnings and errors only, no progress bars), 0 normal (info),
            1 verbose (debug).
    """
    level = {-1: logging.WARNING, 0: logging.INFO}.get(verbosity, logging.DEBUG)
    _state["quiet"] = verbosity < 0
    logger = logging.getLogger("cmseg")
    logger.setLevel(level)
    if not any(getattr(h, "_cmseg", False) for h in logger.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(
            logging.Formatter(
                "%(levelname)s %(name)s: %(message)s" if verbosity > 0 else "%(message)s"
            )
        )
        handler._cmseg = True  # type: ignore[attr-defined]
        logger.addHandler(handler)
    logger.propagate = False


def progress_enabled() -> bool:
    """True when progress bars should be drawn: stdout is a terminal and not ``--quiet``.

    ``CMSEG_PROGRESS=1`` forces them on, ``CMSEG_PROGRESS=0`` off.
    """
    forced = os.environ.get("CMSEG_PROGRESS")
    if forced in ("0", "1"):
        return forced == "1"
    return not _state["quiet"] and sys.stdout.isatty()


def progress(
    iterable: Iterable[T], *, desc: str = "", total: int | None = None, **kwargs: Any
) -> Iterable[T]:
    """Wrap ``iterable`` in a tqdm bar when :func:`progress_enabled`, else return it as is."""
    if not progress_enabled():
        return iterable
    from tqdm.auto import tqdm

    return tqdm(iterable, desc=desc, total=total, dynamic_ncols=True, leave=False, **kwargs)
