"""``data check rvos``: Ref-YouTube-VOS, MeViS, A2D-Sentences and JHMDB-Sentences, and the
per-video checks that ``fsrvos`` shares."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from cmseg.data.check.common import CheckResult, parallel, size_problem, try_read
from cmseg.data.formats import Problems, coco_segmentation_mask
from cmseg.errors import InputError
from cmseg.io import read_image, read_index_mask


def _check_video(video: Any, *, binarise: bool) -> list[str]:
    """Frames readable and of one size; annotations present, readable, of that size; every
    referred object visible in at least one frame."""
    from cmseg.data.formats.ytvos import annotation_path, frame_path

    out: list[str] = []
    first: tuple[Path, tuple[int, ...]] | None = None
    present: set[int] = set()
    for f in video.frames:
        path = frame_path(video, f)
        image = try_read(out, read_image, path)
        if image is not None:
            if first is None:
                first = (path, image.shape)
            else:
                line = size_problem(first[0], first[1], path, image.shape, "frame")
                if line:
                    out.append(line)
        if video.ann_dir is not None:
            ann = annotation_path(video, f)
            mask = try_read(out, read_index_mask, ann)
            if mask is None:
                continue
            present.update(int(v) for v in np.unique(mask))
            if image is not None:
                line = size_problem(path, image.shape, ann, mask.shape, "annotation")
                if line:
                    out.append(line)
    if video.ann_dir is not None and not out:
        for exp in video.expressions.values():
            objs = [1] if binarise else exp.obj_ids
            for obj in objs:
                visible = bool(present - {0}) if binarise else obj in present
                if not visible:
                    out.append(
                        f"{video.ann_dir}: object {obj} of expression {exp.exp_id!r} "
                        f"({exp.sentence!r}) appears in no annotated frame"
                    )
    return out


def _check_mevis_video(
    video: Any, rles: dict[str, Any] | None, mask_dict: Path | None
) -> list[str]:
    """:func:`_check_video`, then the RLEs of ``mask_dict.json``: valid for the frame size,
    and every expression's objects non-empty in at least one frame."""
    out = _check_video(video, binarise=False)
    if rles is None or mask_dict is None:
        return out
    from cmseg.data.formats.ytvos import frame_path

    try:
        h, w = read_image(frame_path(video, video.frames[0])).shape[:2]
    except InputError:
        return out  # already reported
    visible: dict[int, bool] = {}
    for exp in video.expressions.values():
        for anno in exp.anno_ids:
            if anno in visible:
                continue
            entries = rles.get(str(anno))
            if not isinstance(entries, list):
                visible[anno] = True  # reported while indexing
                continue
            seen = False
            for f, rle in zip(video.frames, entries, strict=False):
                if rle is None:
                    continue
                try:
                    mask = coco_segmentation_mask(rle, h, w)
                except ValueError as err:
                    out.append(
                        f"{mask_dict}: anno_id {anno}, frame {f} of video {video.vid!r}: {err}"
                    )
                    continue
                seen = seen or bool(mask.any())
            visible[anno] = seen
        if exp.anno_ids and not any(visible.get(a, True) for a in exp.anno_ids):
            out.append(
                f"{mask_dict}: expression {exp.exp_id!r} of video {video.vid!r} "
                f"({exp.sentence!r}) has an empty mask in every frame"
            )
    return out


def check_videos(index: Any, result: CheckResult, workers: int, *, binarise: bool = False) -> None:
    """Check every video of a Ref-YouTube-VOS-style ``index`` (MeViS: with its RLEs);
    ``binarise``: objects are foreground vs background (Mini-Ref-SAIL-VOS)."""
    videos = [index.videos[v] for v in sorted(index.videos)]
    result.items += len(videos)
    result.item_kind = "videos"
    if index.rles is not None:
        problems = parallel(
            lambda v: _check_mevis_video(v, index.rles, index.mask_dict), videos, workers
        )
    else:
        problems = parallel(lambda v: _check_video(v, binarise=binarise), videos, workers)
    result.problems.extend(problems)


def check_rvos(root: Path, result: CheckResult, workers: int) -> None:
    """Recognise ``root`` as A2D-Sentences, JHMDB-Sentences, MeViS or Ref-YouTube-VOS (in
    that order) and check every split found."""
    from cmseg.data.formats.ytvos import index_mevis, index_ytvos

    if (root / "Release" / "videoset.csv").is_file() or (root / "text_annotations").is_dir():
        result.layout = "A2D-Sentences"
        _check_a2d(root, result, workers)
        return
    if (root / "Rename_Images").is_dir():
        result.layout = "JHMDB-Sentences"
        _check_jhmdb(root, result, workers)
        return
    mevis = ("train", "valid_u", "valid", "test")
    mevis_splits = [s for s in mevis if (root / s / "mask_dict.json").is_file()]
    if mevis_splits or (root / "valid_u").is_dir():
        splits = [s for s in mevis if (root / s / "meta_expressions.json").is_file()]
        result.layout = f"MeViS ({', '.join(splits) or 'no split'})"
        if not splits:
            raise InputError(root, "no <split>/meta_expressions.json")
        for split in splits:
            problems = Problems(strict=False)
            index = index_mevis(root, split, problems=problems)
            result.problems.extend(problems.items)
            check_videos(index, result, workers)
        return
    splits = [
        s
        for s in ("train", "valid", "test")
        if (root / s / "JPEGImages").is_dir()
        and (
            (root / "meta_expressions" / s / "meta_expressions.json").is_file()
            or (root / s / "meta_expressions.json").is_file()
        )
    ]
    if not splits:
        raise InputError(
            root,
            "no referring-video layout found: expected Ref-YouTube-VOS "
            "(meta_expressions/<split>/meta_expressions.json + <split>/JPEGImages), "
            "MeViS (<split>/mask_dict.json), A2D-Sentences (Release/videoset.csv) "
            "or JHMDB-Sentences (Rename_Images/)",
        )
    result.layout = f"Ref-YouTube-VOS ({', '.join(splits)})"
    for split in splits:
        problems = Problems(strict=False)
        index = index_ytvos(root, split, exclude_test=False, problems=problems)
        result.problems.extend(problems.items)
        check_videos(index, result, workers)


def _check_a2d(root: Path, result: CheckResult, workers: int) -> None:
    """Check A2D-Sentences: the sentence files, every referred video's frames (or ``.mp4``)
    and ``.h5`` instance annotations (when h5py is installed), each instance annotated."""
    from cmseg.data.formats.a2d import (
        a2d_paths,
        annotated_frames,
        index_a2d_text,
        list_frames,
        read_a2d_instances,
    )

    problems = Problems(strict=False)
    paths = a2d_paths(root)
    used: list[tuple[str, int, str]] = []
    for split in ("train", "test"):
        try:
            used.extend(index_a2d_text(root, split, problems=problems))
        except InputError as err:
            problems.error(err)
            break
    result.problems.extend(problems.items)
    result.item_kind = "sentences"
    result.items = len(used)
    if paths["videos"] is None and paths["frames"] is None:
        result.problems.append(
            f"{root / 'Release'}: no clips320H/ video folder and no frames/ folder"
        )
    try:
        import h5py  # noqa: F401

        have_h5 = True
    except ImportError:
        have_h5 = False
        result.notes.append(
            "h5py is not installed: the .h5 instance masks were not opened (pip install h5py)"
        )
    by_video: dict[str, set[int]] = {}
    for vid, inst, _ in used:
        by_video.setdefault(vid, set()).add(inst)
    inst_root = paths["instances"]
    assert inst_root is not None

    def one(vid: str) -> list[str]:
        out: list[str] = []
        frames_dir = paths["frames"] / vid if paths["frames"] is not None else None
        if frames_dir is not None and frames_dir.is_dir():
            if not list_frames(frames_dir):
                out.append(f"{frames_dir}: holds no frame named by its number")
        elif paths["videos"] is not None:
            if not (paths["videos"] / f"{vid}.mp4").is_file():
                out.append(f"{paths['videos'] / (vid + '.mp4')}: video of {vid!r} not found")
        elif frames_dir is not None:
            out.append(f"{frames_dir}: frames of video {vid!r} not found")
        folder = inst_root / vid
        frames = annotated_frames(folder)
        if not frames:
            out.append(f"{folder}: no .h5 instance annotation for video {vid!r}")
            return out
        if not have_h5:
            return out
        seen: set[int] = set()
        for f in frames:
            got = try_read(out, read_a2d_instances, folder / f"{f:05d}.h5")
            if got is not None:
                seen.update(got[0])
        for inst in sorted(by_video[vid] - seen):
            out.append(f"{folder}: instance {inst} of a sentence appears in no annotated frame")
        return out

    result.problems.extend(parallel(one, sorted(by_video), workers))


def _check_jhmdb(root: Path, result: CheckResult, workers: int) -> None:
    """Check JHMDB-Sentences: every referred video's frames (readable, of one size) and its
    puppet masks (of that size, not empty)."""
    from cmseg.data.formats.a2d import list_frames
    from cmseg.data.formats.jhmdb import index_jhmdb, read_puppet_masks

    problems = Problems(strict=False)
    sentences, videos = index_jhmdb(root, problems=problems)
    result.problems.extend(problems.items)
    result.items, result.item_kind = len(sentences), "sentences"

    def one(vid: str) -> list[str]:
        out: list[str] = []
        video = videos[vid]
        table = list_frames(video.frame_dir)
        masks = try_read(out, read_puppet_masks, video.mask_file)
        if not table:
            out.append(f"{video.frame_dir}: holds no frame named by its number")
            return out
        first: tuple[Path, tuple[int, ...]] | None = None
        for number in sorted(table):
            image = try_read(out, read_image, table[number])
            if image is None:
                continue
            if first is None:
                first = (table[number], image.shape)
            else:
                line = size_problem(first[0], first[1], table[number], image.shape, "frame")
                if line:
                    out.append(line)
        if masks is not None and first is not None:
            line = size_problem(first[0], first[1], video.mask_file, masks.shape[1:], "puppet mask")
            if line:
                out.append(line)
            if not masks.any():
                out.append(f"{video.mask_file}: puppet mask is empty in every frame")
        return out

    result.problems.extend(parallel(one, sorted({v for v, _ in sentences}), workers))
