"""What a task gives the folder evaluator (:mod:`cmseg.engine.evaluate`), and the small helpers
every task's adapter uses.

An adapter (``ADAPTER`` in ``tasks/<task>/evaluate.py``) is an :class:`EvalAdapter` built
from the task's functions. It says which protocols the task offers and which one it picks for a
ground-truth folder, how prediction and ground-truth files pair up, a fresh evaluator and how to
read and score one pair (run in the worker processes), the JSON result of the merged evaluator,
the table columns shown first and, optionally, the curve plots.

Torch-free, like everything ``cmseg evaluate`` imports.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cmseg.data.pairing import Pairing, pair_files, pair_nested, require_dir
from cmseg.errors import CmsegError

__all__ = [
    "Job",
    "EvalAdapter",
    "keyed",
    "resize_to_shape",
    "flat_pairs",
    "nested_pairs",
    "check_options",
]


@dataclass(frozen=True)
class Job:
    """One unit of scoring: an image pair, or a video / expression folder pair."""

    key: str
    pred: Path
    gt: Path


def _no_plots(results: Mapping[str, Mapping[str, Any]], protocol: str, out_dir: Path) -> list[Path]:
    return []


@dataclass(frozen=True)
class EvalAdapter:
    """The evaluation of one target of ``cmseg evaluate`` (a task, or ``a2d``).

    Module-level functions make an adapter picklable, as the worker processes need.

    Attributes:
        name: the target's name (``sod``), written into the result JSON as ``task``.
        protocols: the protocol names it accepts; the first is the default.
        collect: ``collect(pred, gt, protocol) -> Pairing``: pairs the prediction and
            ground-truth files (missing and extra ones listed, not raised).
        new_evaluator: ``new_evaluator(protocol, options)``: an empty evaluator with additive
            state (``update`` / ``merge`` / ``compute``).
        score: ``score(evaluator, job, protocol, allow_missing) -> notes``: reads and scores
            one job (in a worker process); the notes say what ``allow_missing`` tolerated.
        summarise: ``summarise(evaluator, protocol) -> {"num_items", "metrics", ...}``: the
            JSON result of the merged evaluator (docs/evaluation.md).
        columns: ``[(flattened metric key, short label)]`` shown first in tables, or
            ``{protocol: [...]}`` when they differ by protocol.
        chunk_size: jobs scored per worker task (a video is a whole job: 1).
        options: names of the protocol options it takes (``bound_th``, ``threshold``).
        choose_protocol: ``choose_protocol(gt) -> protocol`` when none is named (default:
            the first protocol).
        plot: ``plot({method: result}, protocol, out_dir) -> files``: curve plots (default:
            none).
        layout: what ``--pred`` and ``--gt`` hold, in one line (``cmseg evaluate --help``).
    """

    name: str
    protocols: tuple[str, ...]
    collect: Callable[[Path, Path, str], Pairing]
    new_evaluator: Callable[[str, dict[str, Any]], Any]
    score: Callable[[Any, Job, str, bool], list[str]]
    summarise: Callable[[Any, str], dict[str, Any]]
    columns: Sequence[tuple[str, str]] | Mapping[str, Sequence[tuple[str, str]]]
    chunk_size: int = 16
    options: frozenset[str] = frozenset()
    choose_protocol: Callable[[Path], str] | None = None
    plot: Callable[[Mapping[str, Mapping[str, Any]], str, Path], list[Path]] = _no_plots
    layout: str = ""

    @property
    def default_protocol(self) -> str:
        return self.protocols[0]

    def protocol_for(self, gt: Path) -> str:
        """The protocol used when none is named, given the ground-truth path."""
        return self.choose_protocol(gt) if self.choose_protocol else self.default_protocol

    def columns_for(self, protocol: str) -> list[tuple[str, str]]:
        """The columns shown first for ``protocol``."""
        if isinstance(self.columns, Mapping):
            return list(self.columns.get(protocol, ()))
        return list(self.columns)


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


def flat_pairs(pred: Path, gt: Path, protocol: str) -> Pairing:
    """``collect`` of the layouts ``<pred>/<name>.<ext>`` vs ``<gt>/<name>.<ext>``."""
    return pair_files(require_dir(pred, "prediction"), require_dir(gt, "ground-truth"))


def nested_pairs(pred: Path, gt: Path, protocol: str) -> Pairing:
    """``collect`` of the layouts ``<pred>/<group>/<name>.<ext>`` vs ``<gt>/<group>/<name>``."""
    return pair_nested(require_dir(pred, "prediction"), require_dir(gt, "ground-truth"))


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
