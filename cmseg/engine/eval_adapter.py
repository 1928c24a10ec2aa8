"""What a task gives the folder evaluator (:mod:`cmseg.engine.evaluate`), and the small helpers
every task's adapter uses.

An adapter (``ADAPTER`` in ``tasks/<task>/evaluate.py``) is an :class:`EvalAdapter` built
from the task's functions. It says which protocols the task offers and which one it picks for a
ground-truth folder, how prediction and ground-truth files pair up, a fresh evaluator and how to
read and score one pair (run in the worker processes), the JSON result of the merged evaluator,
the table columns shown first and, optionally, the curve plots.

What scoring a job finds beside its scores goes into :class:`Findings`: problems (missing,
unreadable, other), which make ``cmseg evaluate`` exit 2 unless ``--allow-missing``, and
counted notes such as ``resized`` (predictions of another size than their ground truth, resized
to it by :func:`fit_to_gt`). A prediction whose aspect ratio differs from its ground truth's by
more than :data:`ASPECT_TOLERANCE` is another image, not a resized one: :func:`fit_to_gt`
raises :class:`MismatchedPrediction`, a problem of the kind ``other``.

Torch-free, like everything ``cmseg evaluate`` imports.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cmseg.data.pairing import Pairing, pair_files, pair_nested, require_dir
from cmseg.errors import CmsegError, InputError

__all__ = [
    "ASPECT_TOLERANCE",
    "Job",
    "EvalAdapter",
    "Findings",
    "MismatchedPrediction",
    "fit_to_gt",
    "resize_mask",
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


#: A prediction whose width / height ratio differs from its ground truth's by more than this
#: fraction is another image (a crop, a rotated or swapped file), not a resized one.
ASPECT_TOLERANCE = 0.02

#: What each note of :class:`Findings` counts, for the one warning per note.
NOTE_TEXTS = {
    "resized": "prediction(s) of another size than their ground truth, resized to it",
}


class MismatchedPrediction(InputError):
    """A prediction whose aspect ratio is not its ground truth's (a problem of kind ``other``)."""


@dataclass
class Findings:
    """What scoring a job found beside its scores (returned by an adapter's ``score``).

    Attributes:
        missing, unreadable, other: problems, one ``"<path>: <reason>"`` line each; each
            makes ``cmseg evaluate`` exit 2 unless ``--allow-missing``.
        notes: ``name -> count`` of what was done to make a pair scorable (``resized``), kept
            in the result JSON's ``notes`` and warned about once per name.
        examples: the first ``"<path>: <what>"`` of each note, shown in its warning.
        texts: what a note counts (``NOTE_TEXTS`` for the shared ones).
        skipped: jobs that could not be scored at all.
    """

    missing: list[str] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)
    other: list[str] = field(default_factory=list)
    notes: dict[str, int] = field(default_factory=dict)
    examples: dict[str, str] = field(default_factory=dict)
    texts: dict[str, str] = field(default_factory=dict)
    skipped: int = 0

    def note(self, name: str, example: str, text: str | None = None) -> None:
        """Count one ``name`` note; ``example`` is kept if it is the first."""
        self.notes[name] = self.notes.get(name, 0) + 1
        self.examples.setdefault(name, example)
        self.texts.setdefault(name, text or NOTE_TEXTS.get(name, name))

    def problem(self, err: InputError) -> None:
        """File an error: ``other`` for a :class:`MismatchedPrediction`, else ``unreadable``."""
        (self.other if isinstance(err, MismatchedPrediction) else self.unreadable).append(str(err))

    def extend(self, more: Findings | Sequence[str] | None) -> None:
        """Add the findings of another job (a plain list of lines counts as ``other``)."""
        if more is None:
            return
        if not isinstance(more, Findings):
            self.other += [str(line) for line in more]
            return
        self.missing += more.missing
        self.unreadable += more.unreadable
        self.other += more.other
        for name, count in more.notes.items():
            self.notes[name] = self.notes.get(name, 0) + count
            self.examples.setdefault(name, more.examples.get(name, ""))
            self.texts.setdefault(name, more.texts.get(name, name))
        self.skipped += more.skipped


def _size_text(shape: Sequence[int]) -> str:
    return f"{shape[1]}x{shape[0]}"


def fit_to_gt(
    pred: np.ndarray,
    gt_shape: Sequence[int],
    path: Path,
    findings: Findings,
    resize: Callable[[np.ndarray, tuple[int, ...]], np.ndarray],
) -> np.ndarray:
    """``pred`` at its ground truth's size, the toolkits' convention, and counted.

    Args:
        pred: the prediction ``(h, w)`` as read.
        gt_shape: its ground truth's shape; ``(H, W)`` are used.
        path: the prediction file (named in the note and the problem).
        findings: where the resize is counted (note ``resized``).
        resize: ``resize(pred, (H, W)) -> (H, W)``, the task's interpolation.

    Returns:
        ``pred`` itself when the sizes agree, else ``resize(pred, (H, W))``.

    Raises:
        MismatchedPrediction: the aspect ratios differ by more than :data:`ASPECT_TOLERANCE`.
    """
    (h, w), (gh, gw) = pred.shape[:2], (int(gt_shape[0]), int(gt_shape[1]))
    if (h, w) == (gh, gw):
        return pred
    off = abs((w / max(h, 1)) / (gw / max(gh, 1)) - 1.0) if h and gh and gw else 1.0
    if off > ASPECT_TOLERANCE:
        raise MismatchedPrediction(
            path,
            f"prediction is {w}x{h} but its ground truth is {gw}x{gh}: the aspect ratio differs "
            f"by {off:.1%} (more than {ASPECT_TOLERANCE:.0%}), so it is not the same image",
        )
    findings.note("resized", f"{path}: {w}x{h} resized to {gw}x{gh}")
    return resize(pred, (gh, gw))


def resize_mask(mask: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """A binary or indexed mask resized to ``shape[:2]`` by nearest neighbour, dtype kept."""
    if mask.dtype == np.bool_:
        return resize_to_shape(mask.view(np.uint8), shape, nearest=True).view(bool)
    return resize_to_shape(mask, shape, nearest=True)


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
        score: ``score(evaluator, job, protocol, allow_missing) -> Findings``: reads and
            scores one job (in a worker process) and says what it found (a plain list of
            lines counts as problems of kind ``other``); an :class:`InputError` it raises
            drops the job (``unreadable``, or ``other`` for a :class:`MismatchedPrediction`).
            It scores the same way with and without ``allow_missing``, so that the problems
            found do not depend on it.
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
    score: Callable[[Any, Job, str, bool], Findings | Sequence[str]]
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
