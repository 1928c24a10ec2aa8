"""Readers of the public datasets of each task, laid out as those datasets ship.

=========  ===============================================  ==========================================
task       reader                                           module
=========  ===============================================  ==========================================
sod        :class:`SODFolders`                              :mod:`.sod_folders`
coseg      :class:`CosegFolders`, :class:`CocoGroups`       :mod:`.coseg_groups`
ris        :class:`RefCOCO`, :class:`ReferIt`               :mod:`.refer`
ris        :class:`JsonlRefs`                               :mod:`.jsonl_refs`
rvos       :class:`RefYouTubeVOS`, :class:`MeViS`           :mod:`.ytvos`
rvos       :class:`A2DSentences`, :class:`JHMDBSentences`   :mod:`.a2d`
fsrvos     :class:`MiniRefYouTubeVOS`,                      :mod:`.fewshot`
           :class:`MiniRefSAILVOS`
=========  ===============================================  ==========================================

Every reader is a plain class with ``__len__`` and ``__getitem__`` returning a dict of numpy
arrays and Python values (``torch.utils.data.DataLoader`` takes it as is; nothing here imports
torch), and takes an optional ``transform`` callable applied to that dict. Constructors index
the dataset and raise :class:`~cmseg.errors.InputError` naming the folder or file that does not
match the layout; ``cmseg data check`` (:mod:`cmseg.data.check`) runs the same indexing in a
mode that collects every problem instead of stopping at the first.

This module also holds the small helpers the readers share: problem collection, safe joining
of dataset ids, case-insensitive folder lookup, JSON loading, seeded generators and COCO
segmentation decoding. Reader classes are importable from here (``from cmseg.data.formats
import SODFolders``); they are loaded on first use.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

import numpy as np

from cmseg.errors import InputError
from cmseg.fs import check_readable
from cmseg.io import read_json

__all__ = [
    "CHECK_HINT",
    "Problems",
    "Reader",
    "find_child",
    "frame_window",
    "load_json",
    "load_mat_variable",
    "safe_join",
    "seeded_rng",
    "coco_segmentation_mask",
]

#: Appended to a reader's error so the user knows how to see every problem at once.
CHECK_HINT = "run `cmseg data check {task} --root {root}` to list every problem"

Transform = Callable[[dict[str, Any]], Any]

_READERS = {
    "SODFolders": "sod_folders",
    "CosegFolders": "coseg_groups",
    "CocoGroups": "coseg_groups",
    "RefCOCO": "refer",
    "ReferIt": "refer",
    "JsonlRefs": "jsonl_refs",
    "RefYouTubeVOS": "ytvos",
    "MeViS": "ytvos",
    "A2DSentences": "a2d",
    "JHMDBSentences": "jhmdb",
    "MiniRefYouTubeVOS": "fewshot",
    "MiniRefSAILVOS": "fewshot",
}


def __getattr__(name: str) -> Any:  # lazy re-export of the reader classes
    if name in _READERS:
        module = importlib.import_module(f"{__name__}.{_READERS[name]}")
        return getattr(module, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# --------------------------------------------------------------------------------------------
# Problems: raise at the first (readers) or collect them all (data check)


class Problems:
    """Where indexing code reports what is wrong with a dataset.

    In strict mode (readers) the first *fatal* problem raises :class:`InputError`; non-fatal
    ones (an extra file nobody refers to) are ignored. In collecting mode (``data check``)
    every problem is kept as a one-line ``"<path>: <reason>"`` string.
    """

    def __init__(self, strict: bool = True) -> None:
        self.strict = strict
        self.items: list[str] = []

    def add(self, path: str | os.PathLike[str], reason: str, *, fatal: bool = True) -> None:
        if self.strict:
            if fatal:
                raise InputError(path, reason)
            return
        self.items.append(f"{os.fspath(path)}: {reason}")

    def error(self, err: InputError, *, fatal: bool = True) -> None:
        """Report an :class:`InputError` raised by a lower-level reader."""
        if self.strict:
            if fatal:
                raise err
            return
        self.items.append(str(err))

    def __len__(self) -> int:
        return len(self.items)


# --------------------------------------------------------------------------------------------
# Paths


def safe_join(root: Path, rel: Any, *, what: str = "id", source: Path | str | None = None) -> Path:
    """Join a dataset-provided relative path to ``root``, refusing anything that escapes it.

    Ids and file names come from JSON, CSV and pickle files that cmseg did not write; an id
    such as ``../../x`` or ``/etc/passwd`` would otherwise make a reader (or a writer of
    predictions named after it) touch files outside the dataset. Refused: non-strings, empty
    strings, NUL bytes, absolute paths (POSIX or Windows, drive letters included) and any
    ``..`` component. Sub-folders (``25/images/25000.jpg``) are fine.

    Raises:
        InputError: naming ``source`` (the file the id came from) or ``root``.
    """
    where = source if source is not None else root
    if isinstance(rel, int) and not isinstance(rel, bool):
        rel = str(rel)
    if not isinstance(rel, str):
        raise InputError(where, f"{what} must be a string, got {type(rel).__name__}")
    if not rel or "\x00" in rel:
        raise InputError(where, f"{what} {rel!r} is empty or holds a NUL byte")
    win = PureWindowsPath(rel)
    if rel.startswith(("/", "\\")) or win.drive or win.root or PurePosixPath(rel).is_absolute():
        raise InputError(
            where,
            f"{what} {rel!r} is an absolute path; refused (ids must stay inside the dataset root)",
        )
    parts = [p for p in rel.replace("\\", "/").split("/") if p not in ("", ".")]
    if any(p == ".." for p in parts):
        raise InputError(where, f"{what} {rel!r} would escape the dataset root; refused")
    if not parts:
        raise InputError(where, f"{what} {rel!r} names no file")
    return root.joinpath(*parts)


def find_child(parent: Path, names: Sequence[str], *, dirs: bool = True) -> Path | None:
    """The first entry of ``parent`` whose name matches one of ``names``, ignoring case.

    ``names`` are tried in order, so the preferred spelling wins when several exist.
    """
    if not parent.is_dir():
        return None
    entries = {}
    for entry in sorted(parent.iterdir()):
        if entry.name.startswith(".") or not (entry.is_dir() if dirs else entry.is_file()):
            continue
        entries.setdefault(entry.name.lower(), entry)
    for name in names:
        hit = entries.get(name.lower())
        if hit is not None:
            return hit
    return None


def require_folder(path: Path, what: str) -> Path:
    """``path`` if it is a folder, else a one-line InputError."""
    if not path.exists():
        raise InputError(path, f"{what} folder does not exist")
    if not path.is_dir():
        raise InputError(path, f"{what} must be a folder, got a file")
    return path


# --------------------------------------------------------------------------------------------
# Files


def load_mat_variable(path: Path, name: str) -> np.ndarray:
    """Variable ``name`` of a MATLAB ``.mat`` file; every failure is an InputError naming it."""
    import scipy.io

    if path.exists():
        check_readable(path)  # scipy would call a permission error an unreadable MATLAB file
    try:
        mat = scipy.io.loadmat(str(path))
    except FileNotFoundError:
        raise InputError(path, "no such file") from None
    except Exception as err:  # scipy raises ValueError, TypeError, MatReadError...
        detail = str(err).splitlines()[0] if str(err) else ""
        raise InputError(
            path, f"not a readable MATLAB file ({type(err).__name__}: {detail})"
        ) from None
    if name not in mat:
        keys = [k for k in mat if not k.startswith("__")]
        raise InputError(path, f"no '{name}' variable (has {', '.join(keys) or 'none'})")
    return np.asarray(mat[name])


#: Parse a UTF-8 JSON file; every failure is an InputError naming it (:func:`cmseg.io.read_json`).
load_json = read_json


def missing_keys(obj: Any, keys: Iterable[str]) -> list[str]:
    """The ``keys`` absent from ``obj`` (all of them when ``obj`` is not a mapping)."""
    if not isinstance(obj, Mapping):
        return list(keys)
    return [k for k in keys if k not in obj]


# --------------------------------------------------------------------------------------------
# Sampling


def seeded_rng(*keys: int) -> np.random.Generator:
    """A generator determined by integer ``keys`` (seed, epoch, index...), worker-independent."""
    return np.random.default_rng([int(k) & 0xFFFFFFFF for k in keys])


def frame_window(n_frames: int, start: int, length: int) -> list[int]:
    """``length`` consecutive positions from ``start``, shifted back to fit and padded with the
    last frame when the video is shorter than ``length``."""
    if n_frames <= 0:
        raise ValueError("a video needs at least one frame")
    start = max(0, min(start, n_frames - length))
    idx = list(range(start, min(start + length, n_frames)))
    return idx + [n_frames - 1] * (length - len(idx))


def clip_windows(n_frames: int, length: int, stride: int) -> list[list[int]]:
    """Training windows over a video: starts every ``stride`` frames, the last one shifted back
    to end on the last frame (Ref-YouTube-VOS practice of SOC/MTTR), duplicates dropped."""
    if length < 1 or stride < 1:
        raise ValueError("window length and stride must be >= 1")
    windows: list[list[int]] = []
    seen: set[tuple[int, ...]] = set()
    for start in range(0, max(n_frames, 1), stride):
        window = frame_window(n_frames, start, length)
        key = tuple(window)
        if key not in seen:
            seen.add(key)
            windows.append(window)
        if start + length >= n_frames:
            break
    return windows


# --------------------------------------------------------------------------------------------
# COCO segmentations


def coco_segmentation_mask(segmentation: Any, height: int, width: int) -> np.ndarray:
    """Decode a COCO ``segmentation`` (polygon list, uncompressed or compressed RLE) to a mask.

    Several polygons of one annotation are merged by union (CMPC's ``max``; REFER's
    ``getMask`` sums them, which LAVT then thresholds at == 1 and so loses overlaps).

    Raises:
        ValueError: malformed polygons or RLE, or an RLE whose size is not ``height x width``.
    """
    from cmseg.metrics.coco import decode_rle

    if isinstance(segmentation, Mapping):
        size = segmentation.get("size")
        if isinstance(size, (list, tuple)) and [*size] != [height, width]:
            raise ValueError(f"RLE size {list(size)} disagrees with its image ({height}x{width})")
        counts = segmentation.get("counts")
        if isinstance(counts, bytes):
            segmentation = {"size": size, "counts": counts.decode("ascii", "replace")}
        return decode_rle(segmentation)
    if not isinstance(segmentation, list) or not segmentation:
        raise ValueError("segmentation must be a non-empty polygon list or an RLE object")
    polygons = []
    for poly in segmentation:
        if (
            not isinstance(poly, (list, tuple))
            or len(poly) < 6
            or len(poly) % 2
            or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in poly)
        ):
            raise ValueError("each polygon must be a flat list of at least 3 x,y pairs")
        polygons.append([float(v) for v in poly])
    from pycocotools import mask as mask_utils

    rles = mask_utils.frPyObjects(polygons, height, width)
    merged = mask_utils.merge(rles) if len(rles) > 1 else rles[0]
    # decode with cmseg's own RLE decoder (pycocotools' decode warns under numpy 2)
    return decode_rle(
        {"size": [int(v) for v in merged["size"]], "counts": merged["counts"].decode("ascii")}
    )


# --------------------------------------------------------------------------------------------
# Reader base


class Reader:
    """Base of the readers: ``len``, bounds-checked ``[]`` and the optional ``transform``.

    Subclasses implement ``__len__`` and ``_load(index) -> dict``. Iterating a reader works
    (``__getitem__`` raises IndexError past the end).
    """

    transform: Transform | None = None

    def __len__(self) -> int:  # pragma: no cover - overridden
        raise NotImplementedError

    def _load(self, index: int) -> dict[str, Any]:  # pragma: no cover - overridden
        raise NotImplementedError

    def __getitem__(self, index: int) -> Any:
        n = len(self)
        if not isinstance(index, (int, np.integer)):
            raise TypeError(
                f"{type(self).__name__} indices must be integers, got {type(index).__name__}"
            )
        index = int(index)
        if index < 0:
            index += n
        if not 0 <= index < n:
            raise IndexError(f"{type(self).__name__} index {index} out of range (0..{n - 1})")
        sample = self._load(index)
        return self.transform(sample) if self.transform is not None else sample


def same_size(
    ref_path: Path, ref_shape: tuple[int, ...], path: Path, shape: tuple[int, ...], what: str
) -> None:
    """Raise when ``shape`` (H, W, ...) differs from ``ref_shape`` in height or width."""
    if tuple(shape[:2]) != tuple(ref_shape[:2]):
        raise InputError(
            path,
            f"{what} is {shape[1]}x{shape[0]} but {ref_path.name} is {ref_shape[1]}x{ref_shape[0]} (width x height)",
        )
