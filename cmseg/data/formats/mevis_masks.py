"""MeViS ground truth as its evaluation script reads it: a split folder's
``meta_expressions.json`` and ``mask_dict.json``, no frames and no PNG masks needed.

Layout (reference soc_rvos.md §4-5; the training reader is :class:`~cmseg.data.formats.ytvos.MeViS`)::

    <split>/meta_expressions.json   {"videos": {video: {"expressions": {exp_id: {"exp",
                                     "obj_id": [int], "anno_id": [int]}}, "frames": [...]}}}
    <split>/mask_dict.json          {str(anno_id): [RLE {"size": [h, w], "counts"} or null,
                                     one per frame of the video]}

The target of an expression on frame ``t`` is the union of the decoded masks of its
``anno_id``\\ s on that frame (``null``: the object is absent), as MeViS's ``eval_mevis.py``
builds it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from cmseg.data.formats import Problems, coco_segmentation_mask
from cmseg.data.formats.ytvos import _expression
from cmseg.errors import InputError
from cmseg.io import read_json

__all__ = [
    "MevisTarget",
    "is_mevis_split",
    "read_mevis_targets",
    "load_mask_dict",
    "mevis_masks",
    "union_masks",
]


@dataclass(frozen=True)
class MevisTarget:
    """One expression to score: its frames and the annotations whose union is its target.

    Attributes:
        video, exp_id: the keys of ``meta_expressions.json`` (the job key is ``video/exp_id``).
        frames: the video's frame names, in order.
        anno_ids: the expression's ``anno_id`` list.
        video_annos: every ``anno_id`` of the video (one of them gives the frame size when the
            expression's own objects are absent from every frame).
    """

    video: str
    exp_id: str
    frames: tuple[str, ...]
    anno_ids: tuple[int, ...]
    video_annos: tuple[int, ...]


def is_mevis_split(folder: Path) -> bool:
    """True when ``folder`` holds ``meta_expressions.json`` and ``mask_dict.json``."""
    return (folder / "meta_expressions.json").is_file() and (folder / "mask_dict.json").is_file()


def read_mevis_targets(split: Path) -> tuple[dict[str, MevisTarget], list[str]]:
    """Every expression of a MeViS split, checked against its ``mask_dict.json`` (read once
    per process: the scoring workers look their expression up here).

    Returns:
        ``({"video/exp_id": target}, problems)``: an expression with a bad entry or an
        ``anno_id`` without a mask list of the video's length is left out and listed.

    Raises:
        InputError: a file that cannot be read or is not the documented object.
    """
    stamps = tuple(_stamp(split / name) for name in ("meta_expressions.json", "mask_dict.json"))
    return _cached_targets(str(split), stamps)


def _stamp(path: Path) -> tuple[int, int]:
    """``(mtime_ns, size)`` of a file: the cache key that notices a rewritten file."""
    try:
        stat = path.stat()
    except OSError as err:
        raise InputError(path, f"cannot read it ({err.strerror or err})") from None
    return stat.st_mtime_ns, stat.st_size


@lru_cache(maxsize=2)
def _cached_targets(
    split_name: str, stamps: tuple[tuple[int, int], ...]
) -> tuple[dict[str, MevisTarget], list[str]]:
    split = Path(split_name)
    meta_file = split / "meta_expressions.json"
    data = read_json(meta_file)
    videos = data.get("videos") if isinstance(data, Mapping) else None
    if not isinstance(videos, Mapping):
        raise InputError(meta_file, 'expected {"videos": {video: {"expressions", "frames"}}}')
    rles = load_mask_dict(split / "mask_dict.json")
    problems = Problems(strict=False)
    targets: dict[str, MevisTarget] = {}
    for vid, entry in videos.items():
        frames = entry.get("frames") if isinstance(entry, Mapping) else None
        exps = entry.get("expressions") if isinstance(entry, Mapping) else None
        if not isinstance(frames, list) or not frames or not isinstance(exps, Mapping):
            problems.add(meta_file, f"video {vid!r} lacks a 'frames' list or 'expressions'")
            continue
        parsed = {
            str(k): _expression(
                f"video {vid!r} expression {k!r}",
                str(k),
                e,
                meta_file,
                multi_object=True,
                need_obj_id=False,
                problems=problems,
            )  # fmt: skip
            for k, e in exps.items()
        }
        annos = tuple(sorted({a for e in parsed.values() if e for a in e.anno_ids}))
        for exp_id, exp in parsed.items():
            if exp is None:
                continue
            where = f"video {vid!r} expression {exp_id!r}"
            bad = [a for a in exp.anno_ids if not _mask_list_ok(rles.get(str(a)), len(frames))]
            if not exp.anno_ids:
                problems.add(meta_file, f"{where} has no 'anno_id'")
                continue
            if bad:
                problems.add(
                    split / "mask_dict.json",
                    f"{where}: anno_id {bad[0]} has no mask list of {len(frames)} frames",
                )
                continue
            targets[f"{vid}/{exp_id}"] = MevisTarget(
                str(vid), exp_id, tuple(str(f) for f in frames), tuple(exp.anno_ids), annos
            )
    return targets, problems.items


def _mask_list_ok(entry: Any, n_frames: int) -> bool:
    return isinstance(entry, list) and len(entry) == n_frames


@lru_cache(maxsize=2)
def _cached_mask_dict(path: str, stamp: tuple[int, int]) -> dict[str, Any]:
    rles = read_json(path)
    if not isinstance(rles, Mapping):
        raise InputError(path, 'expected {"<anno_id>": [RLE or null per frame]}')
    return dict(rles)


def load_mask_dict(path: Path) -> dict[str, Any]:
    """``mask_dict.json``, parsed once per process (scoring workers reuse it per job)."""
    return _cached_mask_dict(str(path), _stamp(path))


def mevis_masks(target: MevisTarget, mask_dict: Path) -> np.ndarray:
    """The target of one expression, ``bool (T, H, W)``: per frame the union of its objects.

    Raises:
        InputError: a malformed RLE, RLEs of different sizes, or no RLE in the whole video
            to tell the frame size.
    """
    rles = load_mask_dict(mask_dict)
    shape = _frame_size(target, rles, mask_dict)
    frames = target.frames
    return union_masks(
        rles, target.anno_ids, range(len(frames)), shape, mask_dict,
        lambda i: f"frame {frames[i]} of video {target.video!r}",
    )  # fmt: skip


def union_masks(
    rles: Mapping[str, Any],
    anno_ids: Sequence[int],
    indices: Sequence[int],
    shape: tuple[int, int],
    source: Path,
    frame_name: Callable[[int], str],
) -> np.ndarray:
    """``bool (len(indices), H, W)``: per frame index the union of the decoded RLEs of
    ``anno_ids`` in ``rles`` (a ``mask_dict.json``; ``null``: the object is absent).

    Raises:
        InputError: naming ``source`` and ``frame_name(i)``, for a malformed RLE or one of
            another size than ``shape``.
    """
    h, w = shape
    out = np.zeros((len(indices), h, w), dtype=bool)
    for t, i in enumerate(indices):
        for anno in anno_ids:
            rle = rles[str(anno)][i]
            if rle is None:
                continue
            try:
                out[t] |= coco_segmentation_mask(rle, h, w)
            except ValueError as err:
                raise InputError(source, f"anno_id {anno}, {frame_name(i)}: {err}") from None
    return out


def _frame_size(target: MevisTarget, rles: Mapping[str, Any], source: Path) -> tuple[int, int]:
    """``(H, W)`` from the first RLE of the expression's objects, else of the video's."""
    for anno in (*target.anno_ids, *target.video_annos):
        for rle in rles.get(str(anno)) or ():
            size = rle.get("size") if isinstance(rle, Mapping) else None
            if isinstance(size, list) and len(size) == 2 and all(isinstance(v, int) for v in size):
                return int(size[0]), int(size[1])
    raise InputError(source, f"no mask of video {target.video!r} gives its frame size")
