"""Referring video object segmentation: Ref-YouTube-VOS and MeViS.

**Ref-YouTube-VOS** (reference soc_rvos.md §4), read by :class:`RefYouTubeVOS`::

    <root>/
        meta_expressions/{train,valid,test}/meta_expressions.json
        train/JPEGImages/<video>/<frame>.jpg
        train/Annotations/<video>/<frame>.png     palette PNG, pixel value = obj_id (0 background)
        train/meta.json                           objects -> category and frames (optional)
        valid/JPEGImages/<video>/<frame>.jpg      no annotations (scored on the server)

``meta_expressions.json`` is ``{"videos": {video: {"expressions": {exp_id: {"exp": str,
"obj_id": "1"}}, "frames": ["00000", "00005", ...]}}}`` (``obj_id`` absent in valid/test);
``meta.json`` is ``{"videos": {video: {"objects": {"1": {"category": str, "frames": [...]}}}}}``
(missing from newer downloads; without it no window is filtered). A ``meta_expressions.json``
inside ``<root>/<split>/`` is accepted too. For ``valid``, videos also listed in the test
file are dropped (``exclude_test``), which leaves the 202 competition videos.

**MeViS** (reference soc_rvos.md §4), read by :class:`MeViS`::

    <root>/{train,valid_u,valid}/
        JPEGImages/<video>/<frame>.jpg
        meta_expressions.json     expressions {"exp", "obj_id": [int], "anno_id": [int]}
        mask_dict.json            {str(anno_id): [RLE {"size", "counts"} or null, one per frame]}
                                  (train and valid_u only)

A MeViS expression may refer to several objects; its target is the union of their masks (SOC++,
MeViS' own evaluation). An entry ``null`` means the object is absent from that frame.

Two sampling modes:

* ``mode="clips"`` (training, default for ``train``): windows of ``num_frames`` consecutive
  annotated frames starting every ``stride`` frames (default ``num_frames``: SOC's
  non-overlapping windows), the last one shifted back to end on the last frame, a video shorter
  than a window padded with its last frame. A window is kept only when the referred object
  appears in it (all referred objects for MeViS), judged from ``meta.json`` / ``mask_dict.json``
  without decoding any mask.
* ``mode="video"`` (inference): one sample per expression with every listed frame.

Sample dict (both)::

    frames     uint8 (T, H, W, 3)
    masks      bool (T, H, W)           absent when the split has no annotations
    sentence   str
    video      str
    exp_id     str
    frame_ids  list[str]
    obj_ids    list[int]
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cmseg.data.formats import (
    CHECK_HINT,
    Problems,
    Reader,
    Transform,
    clip_windows,
    load_json,
    missing_keys,
    require_folder,
    safe_join,
    same_size,
)
from cmseg.errors import InputError
from cmseg.io import IMAGE_EXTENSIONS, read_image, read_index_mask

__all__ = [
    "Expression",
    "Video",
    "VideoIndex",
    "index_videos",
    "ytvos_paths",
    "index_ytvos",
    "index_mevis",
    "frame_path",
    "read_frames",
    "RefYouTubeVOS",
    "MeViS",
]


@dataclass
class Expression:
    exp_id: str
    sentence: str
    obj_ids: list[int]
    anno_ids: list[int] = field(default_factory=list)


@dataclass
class Video:
    vid: str
    frames: list[str]
    frame_dir: Path
    ann_dir: Path | None
    expressions: dict[str, Expression]
    #: obj_id -> (category, frames the object appears in), from meta.json
    objects: dict[int, tuple[str | None, set[str] | None]] = field(default_factory=dict)


@dataclass
class VideoIndex:
    videos: dict[str, Video]
    meta_expressions: Path
    meta: Path | None = None
    mask_dict: Path | None = None
    rles: dict[str, list[Any]] | None = None  # MeViS mask_dict


# --------------------------------------------------------------------------------------------
# Indexing


def _as_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    return None


def read_meta(
    meta_file: Path, problems: Problems
) -> dict[str, dict[int, tuple[str | None, set[str] | None]]]:
    """YouTube-VOS ``meta.json``: ``video -> obj_id -> (category, frames)``."""
    data = load_json(meta_file)
    videos = data.get("videos") if isinstance(data, Mapping) else None
    if not isinstance(videos, Mapping):
        raise InputError(meta_file, 'expected {"videos": {video: {"objects": {...}}}}')
    out: dict[str, dict[int, tuple[str | None, set[str] | None]]] = {}
    for vid, entry in videos.items():
        objects = entry.get("objects") if isinstance(entry, Mapping) else None
        if not isinstance(objects, Mapping):
            problems.add(meta_file, f"video {vid!r} lacks an 'objects' object")
            continue
        table: dict[int, tuple[str | None, set[str] | None]] = {}
        for key, obj in objects.items():
            obj_id = _as_int(key)
            if obj_id is None or not isinstance(obj, Mapping):
                problems.add(meta_file, f"video {vid!r}: bad object entry {key!r}")
                continue
            frames = obj.get("frames")
            category = obj.get("category")
            table[obj_id] = (
                str(category) if category is not None else None,
                {str(f) for f in frames} if isinstance(frames, list) else None,
            )
        out[str(vid)] = table
    return out


def index_videos(
    meta_expressions: Path,
    frames_root: Path,
    ann_root: Path | None,
    *,
    meta_file: Path | None = None,
    multi_object: bool = False,
    exclude: set[str] | None = None,
    problems: Problems | None = None,
) -> VideoIndex:
    """Validate a ``meta_expressions.json`` and locate each video's frame and mask folders.

    Args:
        multi_object: MeViS schema (``obj_id``/``anno_id`` lists) instead of Ref-YouTube-VOS.
        exclude: video ids to leave out (Ref-YouTube-VOS valid minus test).
    """
    problems = problems if problems is not None else Problems(strict=True)
    data = load_json(meta_expressions)
    videos = data.get("videos") if isinstance(data, Mapping) else None
    if not isinstance(videos, Mapping):
        raise InputError(
            meta_expressions,
            'expected {"videos": {video: {"expressions": {...}, "frames": [...]}}}',
        )
    meta = read_meta(meta_file, problems) if meta_file is not None else {}
    out: dict[str, Video] = {}
    for vid, entry in videos.items():
        if exclude and vid in exclude:
            continue
        video = _index_video(
            vid, entry, meta.get(str(vid), {}), meta_expressions, frames_root, ann_root,
            multi_object=multi_object, problems=problems,
        )  # fmt: skip
        if video is not None:
            out[str(vid)] = video
    return VideoIndex(out, meta_expressions, meta_file)


def _index_video(
    vid: str,
    entry: Any,
    objects: dict[int, tuple[str | None, set[str] | None]],
    source: Path,
    frames_root: Path,
    ann_root: Path | None,
    *,
    multi_object: bool,
    problems: Problems,
) -> Video | None:
    """One video of ``meta_expressions.json`` (``source``) with its frame and annotation
    folders, or None (after reporting why) when its entry or its folders are unusable."""
    try:
        frame_dir = safe_join(frames_root, vid, what="video id", source=source)
        ann_dir = safe_join(ann_root, vid, what="video id", source=source) if ann_root else None
    except InputError as err:
        problems.error(err)
        return None
    gone = missing_keys(entry, ("expressions", "frames"))
    if gone:
        problems.add(source, f"video {vid!r} lacks {', '.join(repr(k) for k in gone)}")
        return None
    frames = entry["frames"]
    if not isinstance(frames, list) or not frames or not all(isinstance(f, str) for f in frames):
        problems.add(source, f"video {vid!r}: 'frames' must be a non-empty list of frame names")
        return None
    for f in frames:  # a frame name must not escape the video's folder either
        try:
            safe_join(frame_dir, f, what="frame name", source=source)
        except InputError as err:
            problems.error(err)
            return None
    exps = entry["expressions"]
    if not isinstance(exps, Mapping):
        problems.add(source, f"video {vid!r}: 'expressions' must be an object")
        return None
    expressions: dict[str, Expression] = {}
    for exp_id, exp in exps.items():
        parsed = _expression(
            f"video {vid!r} expression {exp_id!r}", str(exp_id), exp, source,
            multi_object=multi_object, need_obj_id=ann_root is not None, problems=problems,
        )  # fmt: skip
        if parsed is not None:
            expressions[str(exp_id)] = parsed
    if not frame_dir.is_dir():
        problems.add(frame_dir, f"frame folder of video {vid!r} not found")
        return None
    if ann_dir is not None and not ann_dir.is_dir():
        problems.add(ann_dir, f"annotation folder of video {vid!r} not found")
        return None
    return Video(str(vid), list(frames), frame_dir, ann_dir, expressions, objects)


def _expression(
    where: str,
    exp_id: str,
    exp: Any,
    source: Path,
    *,
    multi_object: bool,
    need_obj_id: bool,
    problems: Problems,
) -> Expression | None:
    """One expression entry: its sentence and object ids (MeViS: ``obj_id``/``anno_id``
    lists; Ref-YouTube-VOS: one ``obj_id`` 1..255, required when there are annotations), or
    None after reporting why it is unusable."""
    if not isinstance(exp, Mapping) or not isinstance(exp.get("exp"), str):
        problems.add(source, f"{where} lacks a string 'exp'")
        return None
    if multi_object:
        obj_ids = exp.get("obj_id", [])
        anno_ids = exp.get("anno_id", [])
        if (
            not isinstance(obj_ids, list)
            or not isinstance(anno_ids, list)
            or any(_as_int(v) is None for v in [*obj_ids, *anno_ids])
        ):
            problems.add(source, f"{where}: 'obj_id' and 'anno_id' must be lists of integers")
            return None
        return Expression(exp_id, exp["exp"], [int(v) for v in obj_ids], [int(v) for v in anno_ids])
    raw = exp.get("obj_id")
    obj_id = _as_int(raw) if raw is not None else None
    if raw is not None and (obj_id is None or not 0 < obj_id < 256):
        problems.add(source, f"{where}: obj_id {raw!r} is not an object index 1..255")
        return None
    if obj_id is None and need_obj_id:
        problems.add(source, f"{where} lacks 'obj_id'")
        return None
    return Expression(exp_id, exp["exp"], [obj_id] if obj_id is not None else [])


def ytvos_paths(root: Path, split: str) -> tuple[Path, Path, Path | None, Path | None]:
    """``(meta_expressions, JPEGImages, Annotations or None, meta.json or None)`` of a split."""
    require_folder(root, "dataset root")
    split_dir = root / split
    require_folder(split_dir, f"{split!r} split")
    candidates = (
        root / "meta_expressions" / split / "meta_expressions.json",
        split_dir / "meta_expressions.json",
    )
    meta_exp = next((c for c in candidates if c.is_file()), None)
    if meta_exp is None:
        raise InputError(
            root,
            f"no meta_expressions.json (looked for {', '.join(str(c.relative_to(root)) for c in candidates)})",
        )
    frames = split_dir / "JPEGImages"
    require_folder(frames, "JPEGImages")
    ann = split_dir / "Annotations"
    meta = split_dir / "meta.json"
    return meta_exp, frames, ann if ann.is_dir() else None, meta if meta.is_file() else None


def index_ytvos(
    root: Path, split: str = "train", *, exclude_test: bool = True, problems: Problems | None = None
) -> VideoIndex:
    """Index a Ref-YouTube-VOS split (module doc)."""
    root = Path(root)
    meta_exp, frames, ann, meta = ytvos_paths(root, split)
    exclude: set[str] = set()
    test_file = root / "meta_expressions" / "test" / "meta_expressions.json"
    if split == "valid" and exclude_test and test_file.is_file():
        test = load_json(test_file)
        if isinstance(test, Mapping) and isinstance(test.get("videos"), Mapping):
            exclude = set(test["videos"])
    return index_videos(meta_exp, frames, ann, meta_file=meta, exclude=exclude, problems=problems)


def index_mevis(
    root: Path, split: str = "train", *, problems: Problems | None = None
) -> VideoIndex:
    """Index a MeViS split and load its ``mask_dict.json`` when present (module doc)."""
    problems = problems if problems is not None else Problems(strict=True)
    root = require_folder(Path(root), "dataset root")
    split_dir = require_folder(root / split, f"{split!r} split")
    meta_exp = split_dir / "meta_expressions.json"
    if not meta_exp.is_file():
        raise InputError(meta_exp, "no such file")
    frames = require_folder(split_dir / "JPEGImages", "JPEGImages")
    index = index_videos(meta_exp, frames, None, multi_object=True, problems=problems)
    mask_dict = split_dir / "mask_dict.json"
    if mask_dict.is_file():
        rles = load_json(mask_dict)
        if not isinstance(rles, Mapping):
            raise InputError(mask_dict, 'expected {"<anno_id>": [RLE or null per frame]}')
        index.mask_dict, index.rles = mask_dict, dict(rles)
        for video in index.videos.values():
            for exp in video.expressions.values():
                where = f"video {video.vid!r} expression {exp.exp_id!r}"
                if not exp.anno_ids:
                    problems.add(meta_exp, f"{where} has no 'anno_id'")
                for anno in exp.anno_ids:
                    entry = rles.get(str(anno))
                    if not isinstance(entry, list):
                        problems.add(mask_dict, f"no mask list for anno_id {anno} ({where})")
                    elif len(entry) != len(video.frames):
                        problems.add(
                            mask_dict,
                            f"anno_id {anno} has {len(entry)} masks but video {video.vid!r} lists {len(video.frames)} frames",
                        )
    return index


# --------------------------------------------------------------------------------------------
# Reading


def frame_path(video: Video, frame_id: str) -> Path:
    """The image file of a frame: ``<frame>.jpg``, else the same stem with another extension."""
    base = video.frame_dir / frame_id
    first = base.with_name(f"{base.name}.jpg")
    if first.is_file():
        return first
    for ext in IMAGE_EXTENSIONS:
        cand = base.with_name(f"{base.name}{ext}")
        if cand.is_file():
            return cand
    return first


def annotation_path(video: Video, frame_id: str) -> Path:
    assert video.ann_dir is not None
    base = video.ann_dir / frame_id
    return base.with_name(f"{base.name}.png")


def read_frames(video: Video, indices: Sequence[int]) -> np.ndarray:
    """Frames at ``indices`` as ``uint8 (T, H, W, 3)``; every frame must have the same size."""
    cache: dict[int, np.ndarray] = {}
    first: Path | None = None
    for i in indices:
        if i in cache:
            continue
        path = frame_path(video, video.frames[i])
        img = read_image(path)
        if first is None:
            first, shape = path, img.shape
        else:
            same_size(first, shape, path, img.shape, "frame")
        cache[i] = img
    return np.stack([cache[i] for i in indices])


def read_index_masks(video: Video, indices: Sequence[int], shape: tuple[int, ...]) -> np.ndarray:
    """Index masks (palette PNG values) at ``indices``, ``(T, H, W)``, checked against ``shape``."""
    out = []
    for i in indices:
        path = annotation_path(video, video.frames[i])
        m = read_index_mask(path)
        same_size(frame_path(video, video.frames[i]), shape, path, m.shape, "annotation")
        out.append(m)
    return np.stack(out)


class _VideoReader(Reader):
    """Shared sampling of expression-level video datasets."""

    task = "rvos"

    def _setup(self, index: VideoIndex, mode: str, num_frames: int, stride: int | None) -> None:
        if mode not in ("clips", "video"):
            raise ValueError("mode must be 'clips' or 'video'")
        if num_frames < 1:
            raise ValueError("num_frames must be >= 1")
        self.index = index
        self.videos = index.videos
        self.mode = mode
        self.num_frames = num_frames
        self.stride = stride or num_frames
        self.samples: list[tuple[str, str, list[int]]] = []
        for vid in sorted(self.videos):
            video = self.videos[vid]
            for exp_id, exp in video.expressions.items():
                n = len(video.frames)
                if mode == "video":
                    self.samples.append((vid, exp_id, list(range(n))))
                    continue
                for window in clip_windows(n, num_frames, self.stride):
                    if self._window_ok(video, exp, window):
                        self.samples.append((vid, exp_id, window))
        if not self.samples:
            raise InputError(
                index.meta_expressions,
                "no sample (no expression, or no window where its object appears)",
            )

    def _window_ok(self, video: Video, exp: Expression, window: list[int]) -> bool:
        return True

    def _masks(
        self, video: Video, exp: Expression, indices: list[int], shape: tuple[int, ...]
    ) -> np.ndarray | None:
        raise NotImplementedError

    def __len__(self) -> int:
        return len(self.samples)

    def _load(self, index: int) -> dict[str, Any]:
        vid, exp_id, indices = self.samples[index]
        video = self.videos[vid]
        exp = video.expressions[exp_id]
        frames = read_frames(video, indices)
        out: dict[str, Any] = {
            "frames": frames,
            "sentence": exp.sentence,
            "video": vid,
            "exp_id": exp_id,
            "frame_ids": [video.frames[i] for i in indices],
            "obj_ids": list(exp.obj_ids),
        }
        masks = self._masks(video, exp, indices, frames.shape[1:3])
        if masks is not None:
            out["masks"] = masks
        return out


class RefYouTubeVOS(_VideoReader):
    """Ref-YouTube-VOS (module doc).

    Args:
        root: folder holding ``meta_expressions/`` and the split folders.
        split: ``train``, ``valid`` or ``test``.
        mode: ``clips`` (training windows) or ``video`` (whole videos); default ``clips`` for
            ``train`` and ``video`` otherwise.
        num_frames: window length T in ``clips`` mode.
        stride: frames between window starts (default T: non-overlapping windows).
        exclude_test: for ``valid``, drop the videos of the test file.
        transform: called on each sample dict.
    """

    def __init__(
        self,
        root: str | Path,
        split: str = "train",
        *,
        mode: str | None = None,
        num_frames: int = 8,
        stride: int | None = None,
        exclude_test: bool = True,
        transform: Transform | None = None,
    ) -> None:
        self.root = Path(root)
        self.split = split
        self.transform = transform
        try:
            index = index_ytvos(self.root, split, exclude_test=exclude_test)
        except InputError as err:
            raise InputError(
                err.path, f"{err.reason} ({CHECK_HINT.format(task='rvos', root=self.root)})"
            ) from None
        self._setup(index, mode or ("clips" if split == "train" else "video"), num_frames, stride)

    def _window_ok(self, video: Video, exp: Expression, window: list[int]) -> bool:
        if video.ann_dir is None or not exp.obj_ids:
            return True
        info = video.objects.get(exp.obj_ids[0])
        if info is None or info[1] is None:
            return True  # no meta.json: cannot tell without decoding masks
        return any(video.frames[i] in info[1] for i in window)

    def _masks(
        self, video: Video, exp: Expression, indices: list[int], shape: tuple[int, ...]
    ) -> np.ndarray | None:
        if video.ann_dir is None or not exp.obj_ids:
            return None
        return read_index_masks(video, indices, shape) == exp.obj_ids[0]


class MeViS(_VideoReader):
    """MeViS (module doc).

    Args:
        root: folder holding the split folders.
        split: ``train``, ``valid_u`` or ``valid``.
        mode, num_frames, stride, transform: as :class:`RefYouTubeVOS`.
    """

    def __init__(
        self,
        root: str | Path,
        split: str = "train",
        *,
        mode: str | None = None,
        num_frames: int = 8,
        stride: int | None = None,
        transform: Transform | None = None,
    ) -> None:
        self.root = Path(root)
        self.split = split
        self.transform = transform
        try:
            index = index_mevis(self.root, split)
        except InputError as err:
            raise InputError(
                err.path, f"{err.reason} ({CHECK_HINT.format(task='rvos', root=self.root)})"
            ) from None
        self._setup(index, mode or ("clips" if split == "train" else "video"), num_frames, stride)

    def _window_ok(self, video: Video, exp: Expression, window: list[int]) -> bool:
        rles = self.index.rles
        if rles is None:
            return True
        return all(any(rles[str(a)][i] is not None for i in window) for a in exp.anno_ids)

    def _masks(
        self, video: Video, exp: Expression, indices: list[int], shape: tuple[int, ...]
    ) -> np.ndarray | None:
        rles = self.index.rles
        if rles is None:
            return None
        from cmseg.data.formats.mevis_masks import union_masks  # it imports this module

        assert self.index.mask_dict is not None
        return union_masks(
            rles, exp.anno_ids, indices, (int(shape[0]), int(shape[1])), self.index.mask_dict,
            lambda i: f"frame {video.frames[i]} of video {video.vid!r}",
        )  # fmt: skip
