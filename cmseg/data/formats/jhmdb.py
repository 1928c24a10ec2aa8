"""JHMDB-Sentences (evaluation only): the JHMDB clips with one referring sentence per actor,
read as A2D-Sentences is (the layout is in :mod:`cmseg.data.formats.a2d`'s docstring), with
the actor's mask from the clip's ``puppet_mask.mat``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cmseg.data.formats import (
    CHECK_HINT,
    Problems,
    Reader,
    Transform,
    load_json,
    load_mat_variable,
    require_folder,
    safe_join,
    same_size,
    seeded_rng,
)
from cmseg.data.formats.a2d import (
    clean_sentence,
    clip_indices,
    list_frames,
    one_frame_clip,
    read_text_annotations,
)
from cmseg.errors import InputError
from cmseg.io import read_image

__all__ = ["JHMDBVideo", "JHMDBSample", "JHMDBSentences", "read_puppet_masks", "index_jhmdb"]


def read_puppet_masks(path: Path) -> np.ndarray:
    """``part_mask`` of a JHMDB ``puppet_mask.mat`` as ``bool (T, H, W)``."""
    masks = load_mat_variable(path, "part_mask")
    if masks.ndim == 2:
        masks = masks[:, :, None]
    if masks.ndim != 3:
        raise InputError(path, f"'part_mask' must be (H, W, T), got shape {masks.shape}")
    return np.ascontiguousarray(masks.transpose(2, 0, 1)) > 0


@dataclass(frozen=True)
class JHMDBVideo:
    vid: str
    frame_dir: Path
    mask_file: Path


@dataclass(frozen=True)
class JHMDBSample:
    sentence: str
    vid: str
    frame: int  # 1-based
    n_frames: int  # usable frames (those with a puppet mask)


def index_jhmdb(
    root: Path, problems: Problems | None = None
) -> tuple[list[tuple[str, str]], dict[str, JHMDBVideo]]:
    """``[(video, sentence)]`` and the frame/mask locations of each video."""
    problems = problems if problems is not None else Problems(strict=True)
    rows = read_text_annotations(root / "jhmdb_annotation.txt", ("video_id", "query"), problems)
    frames_root = require_folder(root / "Rename_Images", "Rename_Images")
    masks_root = require_folder(root / "puppet_mask", "puppet_mask")
    videos: dict[str, JHMDBVideo] = {}
    for action in sorted(p for p in frames_root.iterdir() if p.is_dir()):
        for folder in sorted(p for p in action.iterdir() if p.is_dir()):
            mask = masks_root / action.name / folder.name / "puppet_mask.mat"
            videos.setdefault(folder.name, JHMDBVideo(folder.name, folder, mask))
    out = []
    for row in rows:
        vid, where = row["video_id"], f"{root / 'jhmdb_annotation.txt'}:{row['_line']}"
        try:
            safe_join(root, vid, what="video id", source=where)
        except InputError as err:
            problems.error(err)
            continue
        if vid not in videos:
            problems.add(where, f"video {vid!r} has no frame folder Rename_Images/<action>/{vid}/")
            continue
        if not videos[vid].mask_file.is_file():
            problems.add(videos[vid].mask_file, f"puppet mask of video {vid!r} not found")
            continue
        out.append((vid, clean_sentence(row["query"])))
    return out, videos


class JHMDBSentences(Reader):
    """JHMDB-Sentences, evaluation samples (module doc).

    Args:
        root: the ``jhmdb_sentences`` folder.
        num_frames: clip length T, centred on the evaluated frame.
        samples_file: MTTR's ``jhmdb_sentences_samples_metadata.json`` (fixed frames).
        frames_per_video: frames drawn per sentence without a samples file (MTTR: 3).
        seed: seed of that draw.
        transform: called on each sample dict.
    """

    def __init__(
        self,
        root: str | Path,
        *,
        num_frames: int = 8,
        samples_file: str | Path | None = None,
        frames_per_video: int = 3,
        seed: int = 0,
        transform: Transform | None = None,
    ) -> None:
        self.root = require_folder(Path(root), "JHMDB-Sentences root")
        self.num_frames = num_frames
        self.transform = transform
        try:
            sentences, self.videos = index_jhmdb(self.root)
        except InputError as err:
            raise InputError(
                err.path, f"{err.reason} ({CHECK_HINT.format(task='rvos', root=self.root)})"
            ) from None
        self._masks: dict[str, np.ndarray] = {}
        self.samples: list[JHMDBSample] = []
        if samples_file is not None:
            self._from_samples_file(Path(samples_file))
        else:
            for k, (vid, sentence) in enumerate(sentences):
                n = self._usable_frames(vid)
                rng = seeded_rng(seed, k)
                picks = sorted(
                    int(i) + 1 for i in rng.choice(n, size=min(frames_per_video, n), replace=False)
                )
                self.samples.extend(JHMDBSample(sentence, vid, f, n) for f in picks)
        if not self.samples:
            raise InputError(self.root, "no sample")

    def _usable_frames(self, vid: str) -> int:
        video = self.videos[vid]
        frames = list_frames(video.frame_dir)
        n_masks = len(read_puppet_masks(video.mask_file))
        n = min(len(frames), n_masks)
        if n == 0:
            raise InputError(video.frame_dir, "video has no frame with a puppet mask")
        return n

    def _from_samples_file(self, path: Path) -> None:
        data = load_json(path)
        if not isinstance(data, list):
            raise InputError(
                path, "expected a list of [video_id, frame_path, mask_path, total_frames, query]"
            )
        counts: dict[str, int] = {}
        for i, row in enumerate(data):
            if (
                not isinstance(row, list)
                or len(row) != 5
                or not isinstance(row[1], str)
                or not isinstance(row[4], str)
            ):
                raise InputError(
                    path, f"entry {i} is not [video_id, frame_path, mask_path, total_frames, query]"
                )
            vid = str(row[0])
            stem = Path(row[1].replace("\\", "/")).stem
            if vid not in self.videos or not stem.isdigit():
                raise InputError(path, f"entry {i}: unknown video {vid!r} or frame {row[1]!r}")
            if vid not in counts:
                counts[vid] = self._usable_frames(vid)
            self.samples.append(JHMDBSample(clean_sentence(row[4]), vid, int(stem), counts[vid]))

    def __len__(self) -> int:
        return len(self.samples)

    def _load(self, index: int) -> dict[str, Any]:
        s = self.samples[index]
        video = self.videos[s.vid]
        table = list_frames(video.frame_dir)
        positions = clip_indices(s.frame - 1, self.num_frames, s.n_frames)
        frames = []
        for p in positions:
            if p + 1 not in table:
                raise InputError(video.frame_dir, f"frame {p + 1:05d} is missing")
            frames.append(read_image(table[p + 1]))
        stack = np.stack(frames)
        masks = read_puppet_masks(video.mask_file)
        mask = masks[s.frame - 1]
        same_size(video.mask_file, mask.shape, table[s.frame], stack.shape[1:3], "frame")
        t = self.num_frames // 2
        return one_frame_clip(
            stack, t, mask, s.sentence, s.vid, "0", positions, image_id=f"v_{s.vid}_f_{s.frame}"
        )
