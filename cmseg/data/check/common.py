"""What every checker shares: the result record, parallel file checks, and the per-file
checks (readable, binary, non-empty, sizes that agree, valid COCO segmentations)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from cmseg.data.formats import coco_segmentation_mask
from cmseg.errors import InputError
from cmseg.io import read_mask

T = TypeVar("T")

# JPEG masks are exempt from the binary check: compression makes grey edges.
_LOSSY = (".jpg", ".jpeg")


@dataclass
class CheckResult:
    """What :func:`~cmseg.data.check.inspect_dataset` found.

    ``layout`` names the recognised layout, ``items`` counts the ``item_kind`` (samples,
    images, sentences, videos) checked; ``problems`` are one-line ``"<path>: <reason>"``
    strings and ``notes`` say what could not be checked (a missing optional package).
    """

    task: str
    root: Path
    layout: str = "unknown"
    items: int = 0
    item_kind: str = "samples"
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def dedupe(lines: Iterable[str]) -> list[str]:
    """``lines`` without repeats, in first-seen order (indexing and file checks may both
    report the same problem)."""
    seen: set[str] = set()
    out = []
    for line in lines:
        if line not in seen:
            seen.add(line)
            out.append(line)
    return out


def parallel(fn: Callable[[T], list[str]], items: Sequence[T], workers: int) -> list[str]:
    """Run ``fn`` on every item (threads; PIL and zlib release the GIL), keep the order."""
    if workers <= 1 or len(items) < 4:
        results = [fn(item) for item in items]
    else:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            results = list(pool.map(fn, items, chunksize=8))
    return [line for lines in results for line in lines]


def try_read(out: list[str], fn: Callable[..., T], *args: Any, **kwargs: Any) -> T | None:
    """``fn(*args, **kwargs)``, or ``None`` with the :class:`InputError` message appended to
    ``out`` (so one unreadable file does not stop the check)."""
    try:
        return fn(*args, **kwargs)
    except InputError as err:
        out.append(str(err))
    return None


def read_mask_checked(
    out: list[str],
    path: Path,
    *,
    binary: bool,
    nonempty: bool,
    what: str = "mask",
    threshold: int = 127,
) -> np.ndarray | None:
    """Read a mask (``bool`` ``(H, W)``, grey values ``> threshold``) or report why not; also
    report it when it must be ``binary`` (0/255 only, lossless formats) or ``nonempty`` and is
    not."""
    strict = binary and path.suffix.lower() not in _LOSSY
    mask = try_read(out, read_mask, path, strict=strict, threshold=threshold)
    if mask is not None and nonempty and not mask.any():
        out.append(f"{path}: {what} is empty (no foreground pixel)")
    return mask


def size_problem(
    ref: Path, ref_shape: Sequence[int], path: Path, shape: Sequence[int], what: str
) -> str | None:
    """The problem line when ``path`` (of shape ``shape``) differs in height or width from the
    reference file ``ref``; ``None`` when they agree."""
    if tuple(ref_shape[:2]) != tuple(shape[:2]):
        return (
            f"{path}: {what} is {shape[1]}x{shape[0]} but {ref.name} is "
            f"{ref_shape[1]}x{ref_shape[0]} (width x height)"
        )
    return None


def check_declared_size(
    out: list[str], path: Path, image: np.ndarray, info: dict[str, Any], source: Path
) -> None:
    """Report an image whose size differs from the ``height``/``width`` that the annotation
    file ``source`` declares for it (``info``: the COCO image record)."""
    try:
        h, w = int(info["height"]), int(info["width"])
    except (TypeError, ValueError, KeyError):
        out.append(f"{source}: image {info.get('id')!r} has no integer height/width")
        return
    if image.shape[:2] != (h, w):
        out.append(
            f"{path}: image is {image.shape[1]}x{image.shape[0]} but {source.name} says {w}x{h}"
        )


def segmentation_problem(
    seg: Any, h: int, w: int, *, decode: bool
) -> tuple[str | None, np.ndarray | None]:
    """Validate a COCO segmentation for an ``h x w`` image; decode it when asked (or for RLEs)."""
    if isinstance(seg, dict) or decode:
        try:
            return None, coco_segmentation_mask(seg, h, w)
        except ValueError as err:
            return str(err), None
    if not isinstance(seg, list) or not seg or not all(_is_polygon(p) for p in seg):
        return "each polygon must be a flat list of at least 3 x,y pairs", None
    return None, None


def _is_polygon(p: Any) -> bool:
    """Whether ``p`` is a COCO polygon: a flat list of at least 3 numeric x, y pairs."""
    return (
        isinstance(p, list)
        and len(p) >= 6
        and len(p) % 2 == 0
        and all(isinstance(v, (int, float)) for v in p)
    )
