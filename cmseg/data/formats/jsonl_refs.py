"""Referring image segmentation from JSON lines (custom data), read by :class:`JsonlRefs`.

One object per line, paths relative to the file's folder::

    {"image": "images/a.jpg", "sentence": "the red cup", "mask": "masks/a_0.png", "id": "a_0"}
    {"image": "images/a.jpg", "sentence": "the left cup", "rle": {"size": [H, W], "counts": "..."}}

``mask`` is a binary PNG (0/255 or 0/1), ``rle`` a COCO RLE (compressed string or list
counts) whose size must be the image's; ``id`` is optional.

Samples are the dicts of :mod:`.refer` (``image``, ``mask``, ``sentence``, ``ref_id``,
``sent_id``, ``name``: the line's ``id``, or ``line<NNNNNN>``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
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
from cmseg.errors import InputError
from cmseg.io import read_image, read_mask, read_text

__all__ = ["JsonlSample", "JsonlRefs", "index_jsonl", "decode_sample_rle"]


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
) -> list[JsonlSample]:
    """Parse and validate a JSON-lines file (module doc); ``root`` defaults to its folder.

    With ``require_mask=False`` (prediction input) a line may hold neither ``mask`` nor
    ``rle``; it never may hold both.
    """
    problems = problems if problems is not None else Problems(strict=True)
    path = Path(path)
    root = Path(root) if root is not None else path.parent
    text = read_text(path, "JSON-lines")
    samples = []
    seen: dict[str, int] = {}
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{path}:{lineno}"
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as err:
            problems.add(where, f"invalid JSON: {err.msg}")
            continue
        if not isinstance(obj, Mapping):
            problems.add(where, "each line must be a JSON object")
            continue
        gone = missing_keys(obj, ("image", "sentence"))
        if gone:
            problems.add(where, f"missing key {', '.join(repr(k) for k in gone)}")
            continue
        no_target = "mask" not in obj and "rle" not in obj
        if ("mask" in obj and "rle" in obj) or (require_mask and no_target):
            problems.add(where, "needs exactly one of 'mask' (PNG path) or 'rle' (COCO RLE)")
            continue
        if not isinstance(obj["sentence"], str) or not obj["sentence"].strip():
            problems.add(where, "'sentence' must be a non-empty string")
            continue
        try:
            image = safe_join(root, obj["image"], what="image path", source=where)
            mask = None
            if "mask" in obj:
                mask = safe_join(root, obj["mask"], what="mask path", source=where)
        except InputError as err:
            problems.error(err)
            continue
        rle = obj.get("rle")
        if rle is not None and (
            not isinstance(rle, Mapping) or missing_keys(rle, ("size", "counts"))
        ):
            problems.add(where, "'rle' must be an object with 'size' and 'counts'")
            continue
        ident = obj.get("id")
        if ident is not None:
            if isinstance(ident, bool) or not isinstance(ident, (int, str)):
                problems.add(where, "'id' must be a string or an integer")
                continue
            try:  # ids name prediction files: they must not escape an output folder either
                safe_join(root, ident, what="id", source=where)
            except InputError as err:
                problems.error(err)
                continue
        key = str(ident) if ident is not None else f"line{lineno:06d}"

        if key in seen:
            problems.add(where, f"duplicate id {ident!r} (first on line {seen[key]})")
            continue
        seen[key] = lineno
        rle_copy = dict(rle) if rle is not None else None
        samples.append(JsonlSample(lineno, ident, obj["sentence"], image, mask, rle_copy))
    return samples


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
