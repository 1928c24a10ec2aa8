"""Referring image segmentation from JSON lines (custom data), read by :class:`JsonlRefs`.

One object per line, paths relative to the file's folder (or to ``root``)::

    {"image": "images/a.jpg", "sentence": "the red cup", "mask": "masks/a_0.png", "id": "a_0"}
    {"image": "images/a.jpg", "sentence": "the left cup", "rle": {"size": [H, W], "counts": "..."}}

``mask`` is a binary PNG (0/255 or 0/1), ``rle`` a COCO RLE (compressed string or list
counts) whose size must be the image's; ``id`` is optional. ``sentence`` must hold a word
(:func:`cmseg.data.sentences.check_sentence`).

Paths of a dataset annotation file (``data.format: jsonl``, :class:`JsonlRefs`) must stay
inside its root; a user's prediction input (``cmseg predict ris --input refs.jsonl``, read with
``confined=False``) may also name absolute paths and paths outside the file's folder, as
cmseg's own ``predictions.jsonl`` does. Every malformed line is found before one error lists
them all (:func:`malformed_lines`).

Samples are the dicts of :mod:`.refer` (``image``, ``mask``, ``sentence``, ``ref_id``,
``sent_id``, ``name``: the line's ``id``, or ``line<NNNNNN>``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cmseg.data.formats import (
    CHECK_HINT,
    Problems,
    Reader,
    Transform,
    coco_segmentation_mask,
    missing_keys,
    safe_join,
    same_size,
)
from cmseg.data.sentences import check_sentence
from cmseg.errors import InputError
from cmseg.io import read_image, read_mask, read_text

__all__ = ["JsonlSample", "JsonlRefs", "index_jsonl", "malformed_lines", "decode_sample_rle"]

#: Malformed lines listed in one error before the rest is only counted.
SHOWN_LINES = 5


@dataclass(frozen=True)
class JsonlSample:
    """One valid line: its number, ``id`` (None when absent), sentence, image path and
    either a mask path or an RLE."""

    line: int
    id: Any
    sentence: str
    image: Path
    mask: Path | None
    rle: dict[str, Any] | None


def index_jsonl(
    path: Path,
    *,
    root: Path | None = None,
    problems: Problems | None = None,
    require_mask: bool = True,
    confined: bool = True,
) -> list[JsonlSample]:
    """Parse and validate a JSON-lines file (module doc); ``root`` defaults to its folder.

    Every line is checked before anything is raised, so that one error lists all the
    malformed lines (:func:`malformed_lines`); with a collecting ``problems`` (``data check``)
    each is one item ``<path>:<line>: <reason>`` instead.

    Args:
        path: the ``.jsonl`` file.
        root: what relative paths are joined to.
        problems: where problems go (default: raise one InputError listing them).
        require_mask: with False (prediction input) a line may hold neither ``mask`` nor
            ``rle``; it never may hold both.
        confined: a dataset annotation file (True): paths must stay inside ``root``
            (:func:`~cmseg.data.formats.safe_join`). A user's prediction input (False): paths
            may be absolute or relative to ``root``, ``..`` included (cmseg's own
            ``predictions.jsonl`` names images by absolute path). Ids, which name output files,
            are always confined.
    """
    path = Path(path)
    root = Path(root) if root is not None else path.parent
    text = read_text(path, "JSON-lines")
    join = safe_join if confined else _user_path
    samples = []
    bad: list[tuple[int, str]] = []
    seen: dict[str, int] = {}
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = _line_object(line)
            image = join(root, obj["image"], what="image path", source=path)
            mask = join(root, obj["mask"], what="mask path", source=path) if "mask" in obj else None
            _check_target(obj, require_mask)
            key = _line_key(root, obj.get("id"), lineno, path)
        except _BadLine as err:
            bad.append((lineno, str(err)))
            continue
        except InputError as err:  # safe_join's refusals
            bad.append((lineno, err.reason))
            continue
        if key in seen:
            bad.append((lineno, f"duplicate id {obj['id']!r} (first on line {seen[key]})"))
            continue
        seen[key] = lineno
        rle = dict(obj["rle"]) if obj.get("rle") is not None else None
        samples.append(JsonlSample(lineno, obj.get("id"), obj["sentence"], image, mask, rle))
    if bad:
        if problems is not None and not problems.strict:
            for lineno, reason in bad:
                problems.add(f"{path}:{lineno}", reason)
        else:
            raise malformed_lines(path, bad)
    return samples


def malformed_lines(path: Path, bad: Sequence[tuple[int, str]]) -> InputError:
    """One error for the malformed lines ``(line number, reason)`` of ``path``: a single one
    as ``data check`` prints it (``refs.jsonl:3: <reason>``), several as ``refs.jsonl: 4
    malformed lines: line 2: ...; line 3: ...`` (the first :data:`SHOWN_LINES`, then a
    count)."""
    if len(bad) == 1:
        lineno, reason = bad[0]
        return InputError(f"{path}:{lineno}", reason)
    listed = "; ".join(f"line {n}: {reason}" for n, reason in bad[:SHOWN_LINES])
    more = f"; ... ({len(bad)} in all)" if len(bad) > SHOWN_LINES else ""
    return InputError(path, f"{len(bad)} malformed lines: {listed}{more}")


class _BadLine(ValueError):
    """What is wrong with one line (collected, then reported with the others)."""


def _line_object(line: str) -> Mapping[str, Any]:
    """The JSON object of one line, with ``image`` and a valid ``sentence``."""
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as err:
        raise _BadLine(f"invalid JSON: {err.msg}") from None
    if not isinstance(obj, Mapping):
        raise _BadLine("each line must be a JSON object")
    gone = missing_keys(obj, ("image", "sentence"))
    if gone:
        raise _BadLine(f"missing key {', '.join(repr(k) for k in gone)}")
    try:
        check_sentence(obj["sentence"])
    except (TypeError, ValueError) as err:
        raise _BadLine(f"'sentence': {err}") from None
    return obj


def _check_target(obj: Mapping[str, Any], require_mask: bool) -> None:
    """At most one of ``mask`` and ``rle`` (exactly one with ``require_mask``), well formed."""
    no_target = "mask" not in obj and "rle" not in obj
    if ("mask" in obj and "rle" in obj) or (require_mask and no_target):
        raise _BadLine("needs exactly one of 'mask' (PNG path) or 'rle' (COCO RLE)")
    rle = obj.get("rle")
    if rle is not None and (not isinstance(rle, Mapping) or missing_keys(rle, ("size", "counts"))):
        raise _BadLine("'rle' must be an object with 'size' and 'counts'")


def _line_key(root: Path, ident: Any, lineno: int, source: Path) -> str:
    """The output name of a line: its ``id`` (a string or integer that names a file inside
    an output folder) or ``line<NNNNNN>``."""
    if ident is None:
        return f"line{lineno:06d}"
    if isinstance(ident, bool) or not isinstance(ident, (int, str)):
        raise _BadLine("'id' must be a string or an integer")
    safe_join(root, ident, what="id", source=source)  # ids name prediction files
    return str(ident)


def _user_path(root: Path, rel: Any, *, what: str, source: Path) -> Path:
    """A path from a user's own list: absolute, or relative to ``root``."""
    if not isinstance(rel, str):
        raise InputError(source, f"{what} must be a string, got {type(rel).__name__}")
    if not rel or "\x00" in rel:
        raise InputError(source, f"{what} {rel!r} is empty or holds a NUL byte")
    return root / rel  # an absolute rel replaces root


def decode_sample_rle(
    rle: Mapping[str, Any], shape: tuple[int, ...], source: str | Path
) -> np.ndarray:
    """Decode a JSON-lines RLE, checking its size against the image's ``(H, W)``."""
    try:
        return coco_segmentation_mask(rle, int(shape[0]), int(shape[1]))
    except ValueError as err:
        raise InputError(source, str(err)) from None


class JsonlRefs(Reader):
    """Custom referring data as JSON lines (module doc).

    Args:
        path: the ``.jsonl`` file.
        root: folder the image/mask paths are relative to (default: the file's folder).
        transform: called on each sample dict.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        root: str | Path | None = None,
        transform: Transform | None = None,
    ) -> None:
        self.path = Path(path)
        self.root = Path(root) if root is not None else self.path.parent
        self.transform = transform
        try:
            self.samples = index_jsonl(self.path, root=self.root)
        except InputError as err:
            hint = CHECK_HINT.format(task="ris", root=self.root)
            raise InputError(err.path, f"{err.reason} ({hint})") from None
        if not self.samples:
            raise InputError(self.path, "no sample (the file holds no JSON object)")

    def __len__(self) -> int:
        return len(self.samples)

    def _load(self, index: int) -> dict[str, Any]:
        s = self.samples[index]
        image = read_image(s.image)
        if s.mask is not None:
            mask = read_mask(s.mask, strict=True)
            same_size(s.image, image.shape, s.mask, mask.shape, "mask")
        else:
            assert s.rle is not None
            mask = decode_sample_rle(s.rle, image.shape, f"{self.path}:{s.line}")
        return {
            "image": image,
            "mask": mask,
            "sentence": s.sentence,
            "ref_id": s.id if s.id is not None else s.line,
            "sent_id": s.line,
            "name": str(s.id) if s.id is not None else f"line{s.line:06d}",
        }
