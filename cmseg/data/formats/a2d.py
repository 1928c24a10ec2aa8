"""Referring video segmentation on actors: A2D-Sentences and JHMDB-Sentences.

**A2D-Sentences** (the MTTR/SOC layout; reference soc_rvos.md §4), read by :class:`A2DSentences`::

    <root>/
        Release/videoset.csv             no header; vid, label, start, end, height, width,
                                         total_frames, annotated_frames, subset (0 train, 1 test)
        Release/clips320H/<vid>.mp4      the videos (also spelled CLIPS320, clips320)
        Release/frames/<vid>/<n>.jpg     optional: frames already extracted, named by their
                                         1-based frame number (any zero padding, any image type)
        text_annotations/a2d_annotation.txt        CSV with header video_id,instance_id,query
        text_annotations/a2d_missed_videos.txt     one video id per line, left out
        text_annotations/a2d_annotation_with_instances/<vid>/<frame:05d>.h5
                                         per annotated frame (1-based number): ``instance``
                                         (ids), ``reMask`` (masks stored transposed, (N, W, H),
                                         or (W, H) for a single instance), ``reBBox``

One sample per (sentence, annotated frame in which its instance appears); the instance id
``1 (copy)`` (a known annotation mistake) is dropped. The clip is ``num_frames`` frames centred
on the annotated one (``[f - T//2, f + (T+1)//2)``, edge frames repeated past either end);
only that frame has a mask. Reading the ``.h5`` files needs ``h5py`` (``pip install h5py``),
imported when an A2D reader is built; the text files and frames are read without it.

**JHMDB-Sentences** (evaluation only), read by :class:`JHMDBSentences`::

    <root>/
        jhmdb_annotation.txt                              CSV with header video_id,query
        Rename_Images/<action>/<vid>/<n:05d>.png          frames, 1-based
        puppet_mask/<action>/<vid>/puppet_mask.mat        ``part_mask`` (H, W, T), 0/1

Frames past the last puppet mask are ignored. MTTR evaluates 3 frames per video drawn at random
once and stored in ``jhmdb_sentences_samples_metadata.json`` (a list of ``[video_id,
frame_path, mask_path, total_frames, query]``); pass that file as ``samples_file`` to use the
same frames, otherwise ``frames_per_video`` frames are drawn from ``seed``.

Sample dict (both)::

    frames        uint8 (T, H, W, 3)
    masks         bool (T, H, W)      zeros except at target_index
    mask_valid    bool (T,)           True only at target_index
    target_index  int                 position of the annotated frame in the clip (T // 2)
    sentence      str                 lower-cased, whitespace collapsed (as MTTR)
    video         str
    exp_id        str                 A2D: instance id; JHMDB: "0"
    frame_ids     list[str]           1-based frame numbers, 5 digits
    image_id      str                 the COCO ground-truth id: v_<vid>_f_<frame>_i_<instance>
                                      (A2D) or v_<vid>_f_<frame> (JHMDB)
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cmseg.data.formats import (
    CHECK_HINT,
    Problems,
    Reader,
    Transform,
    find_child,
    require_folder,
    safe_join,
    same_size,
)
from cmseg.errors import CmsegError, InputError
from cmseg.fs import check_readable
from cmseg.io import IMAGE_EXTENSIONS, read_image, read_text

__all__ = [
    "A2DVideo",
    "A2DSentences",
    "read_videoset",
    "read_text_annotations",
    "read_missed_videos",
    "list_frames",
    "annotated_frames",
    "clip_indices",
    "require_h5py",
    "read_a2d_instances",
    "index_a2d_text",
    "one_annotated_frame",
    "one_frame_clip",
    "read_video_frames",
]

VIDEO_DIR_NAMES = ("clips320H", "CLIPS320", "clips320", "clips")
ANNOTATION_MISTAKE = "1 (copy)"


def require_h5py() -> Any:
    """Import h5py or tell the user, in one line, how to get it."""
    try:
        import h5py
    except ImportError:
        raise CmsegError(
            "A2D-Sentences masks are HDF5 (.h5) files: install h5py with `pip install h5py`"
        ) from None
    return h5py


# --------------------------------------------------------------------------------------------
# Text files


@dataclass(frozen=True)
class A2DVideo:
    vid: str
    height: int
    width: int
    total_frames: int
    subset: int  # 0 train, 1 test


def read_videoset(path: Path, problems: Problems | None = None) -> dict[str, A2DVideo]:
    """Parse ``Release/videoset.csv`` (no header, 9 columns)."""
    problems = problems if problems is not None else Problems(strict=True)
    out: dict[str, A2DVideo] = {}
    for lineno, row in enumerate(csv.reader(io.StringIO(read_text(path))), start=1):
        if not row or not "".join(row).strip():
            continue
        if len(row) < 9:
            problems.add(
                f"{path}:{lineno}",
                f"expected 9 columns (vid, label, start, end, height, width, total_frames, annotated_frames, subset), got {len(row)}",
            )
            continue
        try:
            height, width, total, subset = int(row[4]), int(row[5]), int(row[6]), int(row[8])
        except ValueError:
            problems.add(
                f"{path}:{lineno}", "height, width, total_frames and subset must be integers"
            )
            continue
        if subset not in (0, 1):
            problems.add(f"{path}:{lineno}", f"subset must be 0 (train) or 1 (test), got {subset}")
            continue
        out[row[0].strip()] = A2DVideo(row[0].strip(), height, width, total, subset)
    return out


def read_missed_videos(path: Path) -> set[str]:
    """``a2d_missed_videos.txt``: one id per line (empty set when the file is absent)."""
    if not path.is_file():
        return set()
    return {line.strip() for line in read_text(path).splitlines() if line.strip()}


def read_text_annotations(
    path: Path,
    columns: Sequence[str] = ("video_id", "instance_id", "query"),
    problems: Problems | None = None,
) -> list[dict[str, str]]:
    """Rows of a sentence CSV with a header (``a2d_annotation.txt``, ``jhmdb_annotation.txt``)."""
    problems = problems if problems is not None else Problems(strict=True)
    reader = csv.DictReader(io.StringIO(read_text(path)))
    header = [h.strip() for h in (reader.fieldnames or [])]
    gone = [c for c in columns if c not in header]
    if gone:
        raise InputError(
            path,
            f"header lacks column {', '.join(repr(c) for c in gone)} (has {', '.join(header) or 'none'})",
        )
    rows = []
    for lineno, row in enumerate(reader, start=2):
        clean = {(k or "").strip(): (v or "").strip() for k, v in row.items() if k is not None}
        if any(not clean.get(c) for c in columns):
            problems.add(f"{path}:{lineno}", f"empty {'/'.join(columns)} field")
            continue
        clean["_line"] = str(lineno)
        rows.append(clean)
    return rows


def clean_sentence(text: str) -> str:
    """Lower case, whitespace collapsed (MTTR's clean-up of the queries)."""
    return " ".join(text.lower().split())


# --------------------------------------------------------------------------------------------
# Frames


def list_frames(folder: Path) -> dict[int, Path]:
    """``frame number -> file`` for the images of a folder named by (1-based) frame number.

    ``00001.png``, ``1.jpg`` and ``000001.jpeg`` all give frame 1; files whose stem is not a
    number are ignored.
    """
    out: dict[int, Path] = {}
    for path in sorted(folder.iterdir()):
        if (
            path.name.startswith(".")
            or not path.is_file()
            or path.suffix.lower() not in IMAGE_EXTENSIONS
        ):
            continue
        if path.stem.isdigit():
            out.setdefault(int(path.stem), path)
    return out


def annotated_frames(folder: Path) -> list[int]:
    """Frame numbers of the ``<n:05d>.h5`` annotation files of one A2D video, sorted."""
    if not folder.is_dir():
        return []
    return sorted(int(p.stem) for p in folder.iterdir() if p.suffix == ".h5" and p.stem.isdigit())


def clip_indices(center: int, length: int, n_frames: int) -> list[int]:
    """0-based positions of a ``length``-frame window centred on 0-based ``center``, clamped."""
    return [
        min(max(i, 0), n_frames - 1)
        for i in range(center - length // 2, center + (length + 1) // 2)
    ]


def read_video_frames(path: Path, positions: Sequence[int]) -> tuple[list[np.ndarray], int]:
    """Decode the 0-based ``positions`` of a video file with OpenCV, as RGB.

    Positions past the end get the last decoded frame. Returns the frames and the number of
    frames decoded.
    """
    import cv2

    if not path.is_file():
        raise InputError(path, "no such file")
    check_readable(path)  # OpenCV would report a permission error as "no decoder"
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise InputError(path, "cannot open the video (OpenCV found no decoder for it)")
    wanted = sorted(set(positions))
    got: dict[int, np.ndarray] = {}
    last: np.ndarray | None = None
    count = 0
    try:
        while count <= wanted[-1]:
            ok, frame = cap.read()
            if not ok:
                break
            last = frame
            if count in wanted:
                got[count] = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
            count += 1
    finally:
        cap.release()
    if last is None:
        raise InputError(path, "video has no decodable frame")
    tail = cv2.cvtColor(last, cv2.COLOR_BGR2RGB)
    return [got.get(p, tail) for p in positions], count


# --------------------------------------------------------------------------------------------
# A2D-Sentences


def read_a2d_instances(path: Path) -> tuple[list[int], np.ndarray]:
    """``(instance ids, masks bool (N, H, W))`` of one A2D ``.h5`` frame annotation."""
    h5py = require_h5py()
    if path.exists():
        check_readable(path)  # h5py would call a permission error an unreadable HDF5 file
    try:
        with h5py.File(path, "r") as f:
            if "instance" not in f or "reMask" not in f:
                raise InputError(path, f"lacks 'instance' or 'reMask' (has {', '.join(f.keys())})")
            ids = [int(v) for v in np.asarray(f["instance"]).reshape(-1)]
            masks = np.asarray(f["reMask"])
    except InputError:
        raise
    except (OSError, ValueError, KeyError) as err:
        raise InputError(
            path,
            f"not a readable HDF5 file ({str(err).splitlines()[0] if str(err) else type(err).__name__})",
        ) from None
    if masks.ndim == 2:
        masks = masks[None]
    if masks.ndim != 3 or masks.shape[0] != len(ids):
        raise InputError(
            path, f"reMask of shape {masks.shape} does not match {len(ids)} instance ids"
        )
    return ids, np.ascontiguousarray(masks.transpose(0, 2, 1)) > 0


@dataclass(frozen=True)
class A2DSample:
    sentence: str
    vid: str
    frame: int  # 1-based
    instance: int


def a2d_paths(root: Path) -> dict[str, Path | None]:
    release = root / "Release"
    text = root / "text_annotations"
    return {
        "videoset": release / "videoset.csv",
        "videos": find_child(release, VIDEO_DIR_NAMES),
        "frames": find_child(release, ("frames", "Frames")),
        "annotations": text / "a2d_annotation.txt",
        "missed": text / "a2d_missed_videos.txt",
        "instances": text / "a2d_annotation_with_instances",
    }


def index_a2d_text(
    root: Path, split: str, problems: Problems | None = None
) -> list[tuple[str, int, str]]:
    """``(video, instance id, sentence)`` of a split, from the text files alone (no h5py)."""
    problems = problems if problems is not None else Problems(strict=True)
    if split not in ("train", "test"):
        raise ValueError("split must be 'train' or 'test'")
    paths = a2d_paths(root)
    videos = read_videoset(paths["videoset"], problems)  # type: ignore[arg-type]
    missed = read_missed_videos(paths["missed"])  # type: ignore[arg-type]
    subset = 0 if split == "train" else 1
    out = []
    for row in read_text_annotations(paths["annotations"], problems=problems):  # type: ignore[arg-type]
        vid, inst = row["video_id"], row["instance_id"]
        where = f"{paths['annotations']}:{row['_line']}"
        if inst == ANNOTATION_MISTAKE:
            continue
        try:
            safe_join(root, vid, what="video id", source=where)
        except InputError as err:
            problems.error(err)
            continue
        if not inst.isdigit():
            problems.add(where, f"instance_id {inst!r} is not an integer")
            continue
        info = videos.get(vid)
        if info is None:
            problems.add(where, f"video {vid!r} is not in videoset.csv", fatal=False)
            continue
        if info.subset != subset or vid in missed:
            continue
        out.append((vid, int(inst), clean_sentence(row["query"])))
    return out


class A2DSentences(Reader):
    """A2D-Sentences (module doc). Needs ``h5py``.

    Args:
        root: the ``a2d_sentences`` folder.
        split: ``train`` or ``test``.
        num_frames: clip length T, centred on the annotated frame.
        frames_dir: folder of extracted frames ``<vid>/<n>.<ext>`` (default ``Release/frames``
            when present; the ``.mp4`` files are decoded otherwise).
        transform: called on each sample dict.
    """

    def __init__(
        self,
        root: str | Path,
        split: str = "train",
        *,
        num_frames: int = 8,
        frames_dir: str | Path | None = None,
        transform: Transform | None = None,
    ) -> None:
        self.root = require_folder(Path(root), "A2D-Sentences root")
        self.num_frames = num_frames
        self.transform = transform
        self.paths = a2d_paths(self.root)
        if frames_dir is not None:
            self.paths["frames"] = require_folder(Path(frames_dir), "frames")
        if self.paths["frames"] is None and self.paths["videos"] is None:
            raise InputError(
                self.root / "Release",
                f"no video folder (looked for {', '.join(VIDEO_DIR_NAMES)}) and no frames/ folder",
            )
        try:
            text = index_a2d_text(self.root, split)
        except InputError as err:
            raise InputError(
                err.path, f"{err.reason} ({CHECK_HINT.format(task='rvos', root=self.root)})"
            ) from None
        require_h5py()
        self.samples: list[A2DSample] = []
        inst_root = self.paths["instances"]
        assert inst_root is not None
        require_folder(inst_root, "a2d_annotation_with_instances")
        cache: dict[str, list[tuple[int, list[int]]]] = {}
        for vid, inst, sentence in text:
            if vid not in cache:
                folder = inst_root / vid
                cache[vid] = [
                    (f, read_a2d_instances(folder / f"{f:05d}.h5")[0])
                    for f in annotated_frames(folder)
                ]
            for frame, ids in cache[vid]:
                if inst in ids:
                    self.samples.append(A2DSample(sentence, vid, frame, inst))
        if not self.samples:
            raise InputError(inst_root, f"no annotated frame for any sentence of split {split!r}")

    def __len__(self) -> int:
        return len(self.samples)

    def _read_frames(self, vid: str, positions: list[int]) -> tuple[list[np.ndarray], list[int]]:
        """Frames at 0-based ``positions`` (past the end: the last frame) and the positions used."""
        frames_root = self.paths["frames"]
        if frames_root is not None and (frames_root / vid).is_dir():
            table = list_frames(frames_root / vid)
            if not table:
                raise InputError(frames_root / vid, "holds no frame named by its number")
            used = [min(p, max(table) - 1) for p in positions]
            out = []
            for p in used:
                if p + 1 not in table:
                    raise InputError(frames_root / vid, f"frame {p + 1} is missing")
                out.append(read_image(table[p + 1]))
            return out, used
        videos = self.paths["videos"]
        if videos is None:
            raise InputError(frames_root or self.root, f"no frames for video {vid!r}")
        frames, count = read_video_frames(
            safe_join(videos, f"{vid}.mp4", what="video id"), positions
        )
        return frames, [min(p, count - 1) for p in positions]

    def _load(self, index: int) -> dict[str, Any]:
        s = self.samples[index]
        center = s.frame - 1
        positions = clip_indices(center, self.num_frames, 1 << 30)
        frames, positions = self._read_frames(s.vid, positions)
        h5 = self.paths["instances"] / s.vid / f"{s.frame:05d}.h5"  # type: ignore[operator]
        ids, masks = read_a2d_instances(h5)
        mask = masks[ids.index(s.instance)]
        stack = np.stack(frames)
        t = self.num_frames // 2
        same_size(h5, mask.shape, h5, stack.shape[1:3], "frames of the video")
        return one_frame_clip(
            stack, t, mask, s.sentence, s.vid, str(s.instance), positions,
            image_id=f"v_{s.vid}_f_{s.frame}_i_{s.instance}",
        )  # fmt: skip


def one_frame_clip(
    stack: np.ndarray,
    t: int,
    mask: np.ndarray,
    sentence: str,
    video: str,
    exp_id: str,
    positions: Sequence[int],
    *,
    image_id: str,
) -> dict[str, Any]:
    """The sample of a clip ``stack`` (``uint8 (T, H, W, 3)``) whose one annotated frame is
    ``t`` with ``mask`` (A2D and JHMDB annotate one frame per sentence)."""
    masks, valid = one_annotated_frame(stack.shape[:3], t, mask)
    return {
        "frames": stack,
        "masks": masks,
        "mask_valid": valid,
        "target_index": t,
        "sentence": sentence,
        "video": video,
        "exp_id": exp_id,
        "frame_ids": [f"{p + 1:05d}" for p in positions],
        "image_id": image_id,
    }


def one_annotated_frame(
    shape: tuple[int, ...], t: int, mask: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """``(masks bool (T, H, W), valid bool (T,))`` of a clip whose only annotation is ``mask``
    on frame ``t`` (A2D and JHMDB annotate one frame per sentence)."""
    masks = np.zeros(shape, dtype=bool)
    masks[t] = mask
    valid = np.zeros(shape[0], dtype=bool)
    valid[t] = True
    return masks, valid
