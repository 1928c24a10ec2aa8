"""What a task gives the folder evaluator (:mod:`cmseg.engine.evaluate`), and the small helpers
every task's adapter uses.

An adapter (``cmseg/tasks/<task>/evaluate.py``) is a module-level object, picklable (it is sent
to the worker processes), that says:

* which protocols it offers and which it picks for a ground-truth folder;
* how prediction and ground-truth files pair up (``collect``);
* a fresh evaluator (``new_evaluator``) and how to read and score one pair (``score``, run in
  the workers);
* the JSON result of the merged evaluator (``summarise``), the table columns shown first
  (``columns``) and, optionally, the curve plots (``plot``).

Torch-free, like everything ``cmseg evaluate`` imports.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from cmseg.data.pairing import Pairing
from cmseg.errors import CmsegError

__all__ = ["Job", "EvalAdapter", "keyed", "resize_to_shape", "check_options"]


@dataclass(frozen=True)
class Job:
    """One unit of scoring: an image pair, or a video / expression folder pair."""

    key: str
    pred: Path
    gt: Path


class EvalAdapter(Protocol):
    """The evaluation of one target of ``cmseg evaluate`` (a task, or ``a2d``).

    Attributes:
        name: the target's name (``sod``), written into the result JSON as ``task``.
        protocols: the protocol names it accepts; ``default_protocol`` is one of them.
        chunk_size: jobs scored per worker task (a video is a whole job: 1).
        options: names of the protocol options it takes (``bound_th``, ``threshold``).
    """

    name: str
    protocols: tuple[str, ...]
    default_protocol: str
    chunk_size: int
    options: frozenset[str]

    def choose_protocol(self, gt: Path) -> str:
        """The protocol used when none is named, given the ground-truth folder."""
        ...

    def collect(self, pred: Path, gt: Path, protocol: str) -> Pairing:
        """Pair the prediction and ground-truth files; missing and extra ones are listed."""
        ...

    def new_evaluator(self, protocol: str, options: dict[str, Any]) -> Any:
        """An empty evaluator with additive state (``update``/``merge``/``compute``)."""
        ...

    def score(self, evaluator: Any, job: Job, protocol: str, allow_missing: bool) -> list[str]:
        """Read and score one job; returns notes on what was tolerated (``allow_missing``)."""
        ...

    def summarise(self, evaluator: Any, protocol: str) -> dict[str, Any]:
        """``{"num_items", "metrics", ...}`` of the merged evaluator (docs/evaluation.md)."""
        ...

    def columns(self, protocol: str) -> list[tuple[str, str]]:
        """``[(flattened metric key, short label)]`` shown first in tables."""
        ...

    def plot(self, results: Mapping[str, Mapping[str, Any]], protocol: str, out_dir: Path) -> list[Path]:
        """Write curve plots of ``{method: result}``; returns the files ([] when none)."""
        ...


def keyed(items: Sequence[Mapping[str, Any]], *keys: str) -> dict[str, dict[str, Any]]:
    """``[{"name": "a", ...}]`` -> ``{"a": {...}}`` (the JSON schema keys items by name);
    several ``keys`` are joined with ``/``."""
    out = {}
    for item in items:
        rest = {k: v for k, v in item.items() if k not in keys}
        out["/".join(str(item[k]) for k in keys)] = rest
    return out


def resize_to_shape(array: np.ndarray, shape: tuple[int, ...], *, nearest: bool) -> np.ndarray:
    """``array`` resized to ``shape[:2]`` with OpenCV (nearest for masks, else bilinear)."""
    import cv2

    interpolation = cv2.INTER_NEAREST if nearest else cv2.INTER_LINEAR
    return cv2.resize(array, (shape[1], shape[0]), interpolation=interpolation)


def check_options(options: Mapping[str, Any], adapter: EvalAdapter) -> None:
    """Refuse an option the adapter does not take (one line listing those it takes).

    Raises:
        CmsegError: an unknown option.
    """
    unknown = set(options) - set(adapter.options)
    if unknown:
        raise CmsegError(
            f"unknown option(s) {', '.join(sorted(unknown))} for '{adapter.name}' evaluation; "
            f"it takes: {', '.join(sorted(adapter.options)) or 'none'}"
        )
