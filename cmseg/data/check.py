"""``cmseg data check TASK --root DIR``: walk a dataset and list every problem at once.

The layout is recognised from what ``DIR`` holds (see ``docs/datasets.md``); indexing reuses
the readers' own code in a collecting mode, then every file a reader would open is opened:

* missing partner files (an RGB image without depth or GT, an image without its mask, a frame
  without its annotation), and files nobody refers to;
* unreadable, truncated or empty images, masks, ``.mat``/``.h5``/pickle/JSON files;
* size mismatches between an image, its depth/thermal map and its mask, between the frames of
  a video, and between an image and the height/width its annotation file states;
* masks that must be binary but are not (lossless masks of ``coseg`` and of the RIS JSON-lines
  format; JPEG masks are exempt, their compression makes grey edges; SOD GT may be soft) and
  masks that must not be empty but are (SOD GT, referring masks, a video object that appears in
  no frame);
* JSON, CSV and pickle files without the keys or columns their format requires;
* COCO RLEs whose size disagrees with their image, or whose runs do not add up;
* ids that would escape the dataset root (``../x``, absolute paths);
* and, for the pickles, anything but builtin containers and scalars.

Nothing here imports torch. Problems are one-line ``"<path>: <reason>"`` strings.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, TypeVar

import numpy as np

from cmseg.data.formats import Problems, coco_segmentation_mask, find_child, safe_join
from cmseg.errors import CmsegError, InputError
from cmseg.io import read_aux, read_image, read_index_mask, read_mask

__all__ = ["CheckResult", "check_dataset", "inspect_dataset", "format_summary", "run_check"]

T = TypeVar("T")

_LOSSY = (".jpg", ".jpeg")


@dataclass
class CheckResult:
    """What :func:`inspect_dataset` found."""

    task: str
    root: Path
    layout: str = "unknown"
    items: int = 0
    item_kind: str = "samples"
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def check_dataset(task: str, root: str | os.PathLike[str], *, workers: int | None = None) -> list[str]:
    """Every problem of the dataset at ``root`` for ``task``, as ``"<path>: <reason>"`` lines.

    An empty list means the dataset is clean. See :func:`inspect_dataset` for the counts.
    """
    return inspect_dataset(task, root, workers=workers).problems


def inspect_dataset(task: str, root: str | os.PathLike[str], *, workers: int | None = None) -> CheckResult:
    """Recognise the layout of ``root`` for ``task`` and check every file of it.

    Args:
        task: ``sod``, ``coseg``, ``ris``, ``rvos`` or ``fsrvos``.
        root: the dataset folder (for ``ris`` also a ``.jsonl`` file).
        workers: threads decoding files (default: the number of CPUs, at most 8).
    """
    if task not in _CHECKERS:
        raise ValueError(f"unknown task {task!r}; expected one of {', '.join(_CHECKERS)}")
    root = Path(root)
    result = CheckResult(task, root)
    if not root.exists():
        result.problems.append(f"{root}: dataset root does not exist")
        return result
    pool_size = workers or min(8, os.cpu_count() or 1)
    try:
        _CHECKERS[task](root, result, pool_size)
    except CmsegError as err:
        result.problems.append(str(err))
    result.problems = _dedupe(result.problems)
    return result


def format_summary(result: CheckResult | Sequence[str]) -> str:
    """The closing line of ``cmseg data check``."""
    if isinstance(result, CheckResult):
        n = len(result.problems)
        head = f"{result.task}: {result.items} {result.item_kind} checked in {result.root} ({result.layout})"
    else:
        n = len(result)
        head = "check finished"
    if n == 0:
        return f"{head}: no problem found"
    return f"{head}: {n} problem{'s' if n != 1 else ''} found"


def run_check(task: str, root: str | os.PathLike[str], *, out: IO[str] | None = None, workers: int | None = None) -> int:
    """Print every problem, any notes, then the summary line; return 0 when clean, 2 otherwise."""
    out = out or sys.stdout
    result = inspect_dataset(task, root, workers=workers)
    for line in result.problems:
        print(line, file=out)
    for note in result.notes:
        print(f"note: {note}", file=out)
    print(format_summary(result), file=out)
    return 0 if not result.problems else 2


# --------------------------------------------------------------------------------------------
# Helpers


def _dedupe(lines: Iterable[str]) -> list[str]:
    seen: set[str] = set()
    out = []
    for line in lines:
        if line not in seen:
            seen.add(line)
            out.append(line)
    return out


def _parallel(fn: Callable[[T], list[str]], items: Sequence[T], workers: int) -> list[str]:
    """Run ``fn`` on every item (threads; PIL and zlib release the GIL), keep the order."""
    if workers <= 1 or len(items) < 4:
        results = [fn(item) for item in items]
    else:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            results = list(pool.map(fn, items, chunksize=8))
    return [line for lines in results for line in lines]


def _try(out: list[str], fn: Callable[..., T], *args: Any, **kwargs: Any) -> T | None:
    try:
        return fn(*args, **kwargs)
    except InputError as err:
        out.append(str(err))
    return None


def _mask_checked(out: list[str], path: Path, *, binary: bool, nonempty: bool, what: str = "mask") -> np.ndarray | None:
    strict = binary and path.suffix.lower() not in _LOSSY
    mask = _try(out, read_mask, path, strict=strict)
    if mask is not None and nonempty and not mask.any():
        out.append(f"{path}: {what} is empty (no foreground pixel)")
    return mask


def _size_problem(ref: Path, ref_shape: Sequence[int], path: Path, shape: Sequence[int], what: str) -> str | None:
    if tuple(ref_shape[:2]) != tuple(shape[:2]):
        return (
            f"{path}: {what} is {shape[1]}x{shape[0]} but {ref.name} is {ref_shape[1]}x{ref_shape[0]} (width x height)"
        )
    return None


def _image_vs_declared(out: list[str], path: Path, image: np.ndarray, info: dict[str, Any], source: Path) -> None:
    try:
        h, w = int(info["height"]), int(info["width"])
    except (TypeError, ValueError, KeyError):
        out.append(f"{source}: image {info.get('id')!r} has no integer height/width")
        return
    if image.shape[:2] != (h, w):
        out.append(f"{path}: image is {image.shape[1]}x{image.shape[0]} but {source.name} says {w}x{h}")


def _segmentation_problem(seg: Any, h: int, w: int, *, decode: bool) -> tuple[str | None, np.ndarray | None]:
    """Validate a COCO segmentation for an ``h x w`` image; decode it when asked (or for RLEs)."""
    if isinstance(seg, dict) or decode:
        try:
            return None, coco_segmentation_mask(seg, h, w)
        except ValueError as err:
            return str(err), None
    if not isinstance(seg, list) or not seg or not all(
        isinstance(p, list) and len(p) >= 6 and len(p) % 2 == 0 and all(isinstance(v, (int, float)) for v in p) for p in seg
    ):
        return "each polygon must be a flat list of at least 3 x,y pairs", None
    return None, None


# --------------------------------------------------------------------------------------------
# sod


def _check_sod(root: Path, result: CheckResult, workers: int) -> None:
    from cmseg.data.formats.sod_folders import find_sets, index_sod

    problems = Problems(strict=False)
    sets = find_sets(root)
    samples = index_sod(root, problems=problems)
    result.layout = f"SOD folders, {len(sets)} set{'s' if len(sets) != 1 else ''}"
    result.items = len(samples)
    result.problems.extend(problems.items)

    def one(s: Any) -> list[str]:
        out: list[str] = []
        image = _try(out, read_image, s.image)
        aux = _try(out, read_aux, s.aux)
        gt = _mask_checked(out, s.gt, binary=False, nonempty=True, what="GT mask") if s.gt else None
        if aux is not None and not aux[1].any():
            out.append(f"{s.aux}: depth/thermal map has no valid pixel (all NaN or infinite)")
        if image is not None:
            for path, arr, what in ((s.aux, aux[0] if aux else None, "depth/thermal map"), (s.gt, gt, "GT mask")):
                if arr is not None:
                    line = _size_problem(s.image, image.shape, path, arr.shape, what)
                    if line:
                        out.append(line)
        return out

    result.problems.extend(_parallel(one, samples, workers))


# --------------------------------------------------------------------------------------------
# coseg


def _check_coseg(root: Path, result: CheckResult, workers: int) -> None:
    from cmseg.data.formats.coseg_groups import IMAGE_DIR_NAMES

    if find_child(root, IMAGE_DIR_NAMES) is not None:
        datasets = [root]
    else:  # a folder of processed sets (SSNM's cosegdatasets/{MSRC7, iCoseg8, ...})
        datasets = [
            p for p in sorted(root.iterdir())
            if p.is_dir() and not p.name.startswith(".") and find_child(p, IMAGE_DIR_NAMES) is not None
        ]
    if datasets:
        result.item_kind = "images"
        n_classes = 0
        for folder in datasets:
            n_classes += _check_coseg_folders(folder, result, workers)
        names = "" if datasets == [root] else f" ({', '.join(p.name for p in datasets)})"
        result.layout = f"co-segmentation folders{names}, {n_classes} classes"
        return
    ann_dir = root / "annotations"
    files = sorted(ann_dir.glob("instances_*.json")) if ann_dir.is_dir() else []
    if not files:
        raise InputError(
            root,
            f"no co-segmentation layout found: expected image/ + groundtruth/ (looked for {', '.join(IMAGE_DIR_NAMES)}), "
            "a folder of such sets, or annotations/instances_*.json",
        )
    result.layout = "COCO instances"
    result.item_kind = "images"
    for ann_file in files:
        _check_coco_instances(root, ann_file, result, workers)


def _check_coseg_folders(root: Path, result: CheckResult, workers: int) -> int:
    from cmseg.data.formats.coseg_groups import index_coseg_folders

    problems = Problems(strict=False)
    try:
        by_class = index_coseg_folders(root, problems=problems)
    except InputError as err:
        result.problems.append(str(err))
        return 0
    items = [item for cls in sorted(by_class) for item in by_class[cls]]
    result.items += len(items)
    result.problems.extend(problems.items)

    def one(item: Any) -> list[str]:
        out: list[str] = []
        image = _try(out, read_image, item.image)
        mask = _mask_checked(out, item.gt, binary=True, nonempty=False)
        if image is not None and mask is not None:
            line = _size_problem(item.image, image.shape, item.gt, mask.shape, "mask")
            if line:
                out.append(line)
        return out

    result.problems.extend(_parallel(one, items, workers))
    return len(by_class)


def _check_coco_instances(root: Path, ann_file: Path, result: CheckResult, workers: int) -> None:
    from cmseg.data.formats.coseg_groups import index_coco

    problems = Problems(strict=False)
    index = index_coco(ann_file, min_images=1, problems=problems)
    result.problems.extend(problems.items)
    split = ann_file.stem[len("instances_"):]
    image_dir = root / split
    if not image_dir.is_dir():
        result.problems.append(f"{image_dir}: image folder of {ann_file.name} not found")
        return
    image_ids = sorted(index.images)
    result.items += len(image_ids)

    def one(image_id: Any) -> list[str]:
        out: list[str] = []
        info = index.images[image_id]
        try:
            path = safe_join(image_dir, info["file_name"], what="file_name", source=ann_file)
        except InputError as err:
            return [str(err)]
        image = _try(out, read_image, path)
        if image is not None:
            _image_vs_declared(out, path, image, info, ann_file)
        try:
            h, w = int(info["height"]), int(info["width"])
        except (TypeError, ValueError):
            return out
        for ann in index.anns_by_image.get(image_id, []):
            reason, _ = _segmentation_problem(ann["segmentation"], h, w, decode=False)
            if reason:
                out.append(f"{ann_file}: annotation {ann.get('id', '?')!r} of image {image_id!r}: {reason}")
        return out

    result.problems.extend(_parallel(one, image_ids, workers))


# --------------------------------------------------------------------------------------------
# ris


def _check_ris(root: Path, result: CheckResult, workers: int) -> None:
    if root.is_file() and root.suffix == ".jsonl":
        result.layout = "JSON lines"
        _check_jsonl(root, root.parent, result, workers)
        return
    layouts = []
    refer_dirs = sorted({p.parent for p in root.glob("refs(*).p")} | {p.parent for p in root.glob("*/refs(*).p")})
    query_files = sorted(list(root.glob("referit_query_*.json")) + list(root.glob("data/referit_query_*.json")))
    jsonl = sorted(root.glob("*.jsonl"))
    for dataset_dir in refer_dirs:
        layouts.append(f"REFER {dataset_dir.name}")
        for refs in sorted(dataset_dir.glob("refs(*).p")):
            _check_refer(root, dataset_dir, refs.name[len("refs("):-len(").p")], result, workers)
    for query in query_files:
        layouts.append(f"ReferIt {query.stem[len('referit_query_'):]}")
        _check_referit(root, query, result, workers)
    for path in jsonl:
        layouts.append(f"JSON lines {path.name}")
        _check_jsonl(path, root, result, workers)
    if not layouts:
        raise InputError(
            root,
            "no referring-segmentation layout found: expected <dataset>/refs(<split_by>).p + instances.json (REFER), "
            "referit_query_<split>.json + images/ + mask/ (ReferIt), or *.jsonl",
        )
    result.layout = ", ".join(layouts)


def _check_refer(root: Path, dataset_dir: Path, split_by: str, result: CheckResult, workers: int) -> None:
    from cmseg.data.formats.refer import index_refer

    problems = Problems(strict=False)
    ix = index_refer(root, dataset_dir.name, None, split_by=split_by, problems=problems)
    result.problems.extend(problems.items)
    result.items += len(ix.samples)
    by_image: dict[Any, list[dict[str, Any]]] = {}
    for ref in ix.refs:
        by_image.setdefault(ref["image_id"], []).append(ref)

    def one(image_id: Any) -> list[str]:
        out: list[str] = []
        info = ix.images[image_id]
        try:
            h, w = int(info["height"]), int(info["width"])
        except (TypeError, ValueError):
            return [f"{ix.instances_file}: image {image_id!r} has no integer height/width"]
        if ix.image_dir is not None:
            try:
                path = safe_join(ix.image_dir, info["file_name"], what="file_name", source=ix.instances_file)
            except InputError as err:
                out.append(str(err))
            else:
                image = _try(out, read_image, path)
                if image is not None:
                    _image_vs_declared(out, path, image, info, ix.instances_file)
        for ref in by_image[image_id]:
            reason, mask = _segmentation_problem(ix.anns[ref["ann_id"]]["segmentation"], h, w, decode=True)
            if reason:
                out.append(f"{ix.instances_file}: annotation {ref['ann_id']!r} (ref {ref['ref_id']!r}): {reason}")
            elif mask is not None and not mask.any():
                out.append(f"{ix.instances_file}: annotation {ref['ann_id']!r} (ref {ref['ref_id']!r}): mask is empty")
        return out

    result.problems.extend(_parallel(one, sorted(by_image, key=str), workers))


def _check_referit(root: Path, query: Path, result: CheckResult, workers: int) -> None:
    from cmseg.data.formats.refer import index_referit, read_referit_mask

    split = query.stem[len("referit_query_"):]
    problems = Problems(strict=False)
    samples = index_referit(root, split, query_file=query, problems=problems)
    result.problems.extend(problems.items)
    result.items += len(samples)
    firsts = list({s.key: s for s in reversed(samples)}.values())[::-1]

    def one(s: Any) -> list[str]:
        out: list[str] = []
        image = _try(out, read_image, s.image)
        mask = _try(out, read_referit_mask, s.mask)
        if mask is not None and not mask.any():
            out.append(f"{s.mask}: mask is empty (no pixel with segimg_t == 0)")
        if image is not None and mask is not None:
            line = _size_problem(s.image, image.shape, s.mask, mask.shape, "mask")
            if line:
                out.append(line)
        return out

    result.problems.extend(_parallel(one, firsts, workers))


def _check_jsonl(path: Path, root: Path, result: CheckResult, workers: int) -> None:
    from cmseg.data.formats.refer import index_jsonl

    problems = Problems(strict=False)
    samples = index_jsonl(path, root=root, problems=problems)
    result.problems.extend(problems.items)
    result.items += len(samples)

    def one(s: Any) -> list[str]:
        out: list[str] = []
        where = f"{path}:{s.line}"
        image = _try(out, read_image, s.image)
        if s.mask is not None:
            mask = _mask_checked(out, s.mask, binary=True, nonempty=True)
            if image is not None and mask is not None:
                line = _size_problem(s.image, image.shape, s.mask, mask.shape, "mask")
                if line:
                    out.append(line)
        elif image is not None:
            try:
                mask = coco_segmentation_mask(s.rle, image.shape[0], image.shape[1])
            except ValueError as err:
                out.append(f"{where}: {err}")
            else:
                if not mask.any():
                    out.append(f"{where}: RLE mask is empty")
        return out

    result.problems.extend(_parallel(one, samples, workers))


# --------------------------------------------------------------------------------------------
# rvos / fsrvos


def _check_video(video: Any, *, binarise: bool) -> list[str]:
    """Frames readable and of one size; annotations present, readable, of that size; every
    referred object visible in at least one frame."""
    from cmseg.data.formats.ytvos import annotation_path, frame_path

    out: list[str] = []
    first: tuple[Path, tuple[int, ...]] | None = None
    present: set[int] = set()
    for f in video.frames:
        path = frame_path(video, f)
        image = _try(out, read_image, path)
        if image is not None:
            if first is None:
                first = (path, image.shape)
            else:
                line = _size_problem(first[0], first[1], path, image.shape, "frame")
                if line:
                    out.append(line)
        if video.ann_dir is not None:
            ann = annotation_path(video, f)
            mask = _try(out, read_index_mask, ann)
            if mask is None:
                continue
            present.update(int(v) for v in np.unique(mask))
            if image is not None:
                line = _size_problem(path, image.shape, ann, mask.shape, "annotation")
                if line:
                    out.append(line)
    if video.ann_dir is not None and not out:
        for exp in video.expressions.values():
            objs = [1] if binarise else exp.obj_ids
            for obj in objs:
                visible = bool(present - {0}) if binarise else obj in present
                if not visible:
                    out.append(
                        f"{video.ann_dir}: object {obj} of expression {exp.exp_id!r} ({exp.sentence!r}) appears in no annotated frame"
                    )
    return out


def _check_mevis_video(video: Any, rles: dict[str, Any] | None, mask_dict: Path | None) -> list[str]:
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
                    out.append(f"{mask_dict}: anno_id {anno}, frame {f} of video {video.vid!r}: {err}")
                    continue
                seen = seen or bool(mask.any())
            visible[anno] = seen
        if exp.anno_ids and not any(visible.get(a, True) for a in exp.anno_ids):
            out.append(f"{mask_dict}: expression {exp.exp_id!r} of video {video.vid!r} ({exp.sentence!r}) has an empty mask in every frame")
    return out


def _videos_check(index: Any, result: CheckResult, workers: int, *, binarise: bool = False) -> None:
    videos = [index.videos[v] for v in sorted(index.videos)]
    result.items += len(videos)
    result.item_kind = "videos"
    if index.rles is not None:
        result.problems.extend(_parallel(lambda v: _check_mevis_video(v, index.rles, index.mask_dict), videos, workers))
    else:
        result.problems.extend(_parallel(lambda v: _check_video(v, binarise=binarise), videos, workers))


def _check_rvos(root: Path, result: CheckResult, workers: int) -> None:
    from cmseg.data.formats.ytvos import index_mevis, index_ytvos

    if (root / "Release" / "videoset.csv").is_file() or (root / "text_annotations").is_dir():
        result.layout = "A2D-Sentences"
        _check_a2d(root, result, workers)
        return
    if (root / "Rename_Images").is_dir():
        result.layout = "JHMDB-Sentences"
        _check_jhmdb(root, result, workers)
        return
    mevis_splits = [s for s in ("train", "valid_u", "valid", "test") if (root / s / "mask_dict.json").is_file()]
    if mevis_splits or (root / "valid_u").is_dir():
        splits = [s for s in ("train", "valid_u", "valid", "test") if (root / s / "meta_expressions.json").is_file()]
        result.layout = f"MeViS ({', '.join(splits) or 'no split'})"
        if not splits:
            raise InputError(root, "no <split>/meta_expressions.json")
        for split in splits:
            problems = Problems(strict=False)
            index = index_mevis(root, split, problems=problems)
            result.problems.extend(problems.items)
            _videos_check(index, result, workers)
        return
    splits = [
        s for s in ("train", "valid", "test")
        if (root / s / "JPEGImages").is_dir()
        and ((root / "meta_expressions" / s / "meta_expressions.json").is_file() or (root / s / "meta_expressions.json").is_file())
    ]
    if not splits:
        raise InputError(
            root,
            "no referring-video layout found: expected Ref-YouTube-VOS (meta_expressions/<split>/meta_expressions.json + "
            "<split>/JPEGImages), MeViS (<split>/mask_dict.json), A2D-Sentences (Release/videoset.csv) "
            "or JHMDB-Sentences (Rename_Images/)",
        )
    result.layout = f"Ref-YouTube-VOS ({', '.join(splits)})"
    for split in splits:
        problems = Problems(strict=False)
        index = index_ytvos(root, split, exclude_test=False, problems=problems)
        result.problems.extend(problems.items)
        _videos_check(index, result, workers)


def _check_a2d(root: Path, result: CheckResult, workers: int) -> None:
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
        result.problems.append(f"{root / 'Release'}: no clips320H/ video folder and no frames/ folder")
    try:
        import h5py  # noqa: F401

        have_h5 = True
    except ImportError:
        have_h5 = False
        result.notes.append("h5py is not installed: the .h5 instance masks were not opened (pip install h5py)")
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
            got = _try(out, read_a2d_instances, folder / f"{f:05d}.h5")
            if got is not None:
                seen.update(got[0])
        for inst in sorted(by_video[vid] - seen):
            out.append(f"{folder}: instance {inst} of a sentence appears in no annotated frame")
        return out

    result.problems.extend(_parallel(one, sorted(by_video), workers))


def _check_jhmdb(root: Path, result: CheckResult, workers: int) -> None:
    from cmseg.data.formats.a2d import index_jhmdb, list_frames, read_puppet_masks

    problems = Problems(strict=False)
    sentences, videos = index_jhmdb(root, problems=problems)
    result.problems.extend(problems.items)
    result.items, result.item_kind = len(sentences), "sentences"

    def one(vid: str) -> list[str]:
        out: list[str] = []
        video = videos[vid]
        table = list_frames(video.frame_dir)
        masks = _try(out, read_puppet_masks, video.mask_file)
        if not table:
            out.append(f"{video.frame_dir}: holds no frame named by its number")
            return out
        first: tuple[Path, tuple[int, ...]] | None = None
        for number in sorted(table):
            image = _try(out, read_image, table[number])
            if image is None:
                continue
            if first is None:
                first = (table[number], image.shape)
            else:
                line = _size_problem(first[0], first[1], table[number], image.shape, "frame")
                if line:
                    out.append(line)
        if masks is not None and first is not None:
            line = _size_problem(first[0], first[1], video.mask_file, masks.shape[1:], "puppet mask")
            if line:
                out.append(line)
            if not masks.any():
                out.append(f"{video.mask_file}: puppet mask is empty in every frame")
        return out

    result.problems.extend(_parallel(one, sorted({v for v, _ in sentences}), workers))


def _check_fsrvos(root: Path, result: CheckResult, workers: int) -> None:
    from cmseg.data.formats.fewshot import (
        CATEGORIES_FILE,
        MINI_REF_YTVOS_CLASSES,
        SAIL_CLASSES,
        index_fewshot,
        mini_ytvos_index,
        read_categories,
        sail_index,
    )

    problems = Problems(strict=False)
    categories = None
    if (root / CATEGORIES_FILE).is_file():
        try:
            categories = read_categories(root / CATEGORIES_FILE)
        except InputError as err:
            problems.error(err)
    if (root / "Images").is_dir():
        result.layout = "Mini-Ref-SAIL-VOS"
        index = sail_index(root, problems=problems)
        fs = index_fewshot(index, SAIL_CLASSES, categories, binarise=True, problems=problems)
    elif (root / "train").is_dir():
        result.layout = "Mini-Ref-YouTube-VOS"
        index = mini_ytvos_index(root, problems=problems)
        fs = index_fewshot(index, MINI_REF_YTVOS_CLASSES, categories, binarise=False, problems=problems)
    else:
        raise InputError(
            root,
            "no few-shot layout found: expected Mini-Ref-YouTube-VOS (train/JPEGImages, train/Annotations, train/meta.json, "
            "meta_expressions/train/meta_expressions.json) or Mini-Ref-SAIL-VOS (Images/, Annotations/, meta.json, "
            "meta_expressions.json)",
        )
    result.layout += f", {len(fs.by_class)} classes"
    result.problems.extend(problems.items)
    _videos_check(index, result, workers, binarise=fs.binarise)


_CHECKERS: dict[str, Callable[[Path, CheckResult, int], None]] = {
    "sod": _check_sod,
    "coseg": _check_coseg,
    "ris": _check_ris,
    "rvos": _check_rvos,
    "fsrvos": _check_fsrvos,
}
