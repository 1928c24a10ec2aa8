"""``data check coseg``: co-segmentation folders (one or a folder of sets) or COCO instances."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cmseg.data.check.common import (
    CheckResult,
    check_declared_size,
    parallel,
    read_mask_checked,
    segmentation_problem,
    size_problem,
    try_read,
)
from cmseg.data.formats import Problems, find_child, safe_join
from cmseg.errors import InputError
from cmseg.io import read_image


def check_coseg(root: Path, result: CheckResult, workers: int) -> None:
    """Check ``root`` as co-segmentation folders (``image/`` + ``groundtruth/``), a folder of
    such sets, or COCO ``annotations/instances_*.json`` with their image folders."""
    from cmseg.data.formats.coseg_groups import IMAGE_DIR_NAMES

    if find_child(root, IMAGE_DIR_NAMES) is not None:
        datasets = [root]
    else:  # a folder of processed sets (SSNM's cosegdatasets/{MSRC7, iCoseg8, ...})
        datasets = [
            p
            for p in sorted(root.iterdir())
            if p.is_dir()
            and not p.name.startswith(".")
            and find_child(p, IMAGE_DIR_NAMES) is not None
        ]
    if datasets:
        result.item_kind = "images"
        classes: set[str] = set()  # splits share their classes: each is counted once
        for folder in datasets:
            classes |= _check_coseg_folders(folder, result, workers)
        names = "" if datasets == [root] else f" ({', '.join(p.name for p in datasets)})"
        result.layout = f"co-segmentation folders{names}, {len(classes)} classes"
        return
    ann_dir = root / "annotations"
    files = sorted(ann_dir.glob("instances_*.json")) if ann_dir.is_dir() else []
    if not files:
        raise InputError(
            root,
            "no co-segmentation layout found: expected image/ + groundtruth/ "
            f"(looked for {', '.join(IMAGE_DIR_NAMES)}), "
            "a folder of such sets, or annotations/instances_*.json",
        )
    result.layout = "COCO instances"
    result.item_kind = "images"
    for ann_file in files:
        _check_coco_instances(root, ann_file, result, workers)


def _check_coseg_folders(root: Path, result: CheckResult, workers: int) -> set[str]:
    """Check one set of class folders (every image with a binary mask of its size); returns
    the names of its classes."""
    from cmseg.data.formats.coseg_groups import index_coseg_folders

    problems = Problems(strict=False)
    try:
        by_class = index_coseg_folders(root, problems=problems)
    except InputError as err:
        result.problems.append(str(err))
        return set()
    items = [item for cls in sorted(by_class) for item in by_class[cls]]
    result.items += len(items)
    result.problems.extend(problems.items)

    def one(item: Any) -> list[str]:
        out: list[str] = []
        image = try_read(out, read_image, item.image)
        mask = read_mask_checked(out, item.gt, binary=True, nonempty=False)
        if image is not None and mask is not None:
            line = size_problem(item.image, image.shape, item.gt, mask.shape, "mask")
            if line:
                out.append(line)
        return out

    result.problems.extend(parallel(one, items, workers))
    return set(by_class)


def _check_coco_instances(root: Path, ann_file: Path, result: CheckResult, workers: int) -> None:
    """Check one COCO instances file: its images (readable, of the declared size, inside the
    root) and the segmentation of every annotation."""
    from cmseg.data.formats.coseg_groups import index_coco

    problems = Problems(strict=False)
    index = index_coco(ann_file, min_images=1, problems=problems)
    result.problems.extend(problems.items)
    split = ann_file.stem[len("instances_") :]
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
        image = try_read(out, read_image, path)
        if image is not None:
            check_declared_size(out, path, image, info, ann_file)
        try:
            h, w = int(info["height"]), int(info["width"])
        except (TypeError, ValueError):
            return out
        for ann in index.anns_by_image.get(image_id, []):
            reason, _ = segmentation_problem(ann["segmentation"], h, w, decode=False)
            if reason:
                out.append(
                    f"{ann_file}: annotation {ann.get('id', '?')!r} of image {image_id!r}: {reason}"
                )
        return out

    result.problems.extend(parallel(one, image_ids, workers))
