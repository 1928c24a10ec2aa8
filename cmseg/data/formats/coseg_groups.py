"""Object co-segmentation: the processed test sets and SSNM's COCO training groups.

**Processed test sets** (MSRC7, Internet_Datasets300, iCoseg8, PASCAL_VOC as SSNM ships them;
reference ssnm_coseg.md §5), read by :class:`CosegFolders`::

    <root>/
        image/<class>/<name>.jpg           images; folder also spelled images, Image, img
        groundtruth/<class>/<name>.png     masks (.png iCoseg/PASCAL, .bmp MSRC, .jpg Internet);
                                           folder also spelled GroundTruth, gt, masks

Image and mask are paired by stem inside each class. Groups are consecutive chunks of
``group_size`` images of one class in name order; a last, short chunk of ``r`` images is
completed with the first ``group_size - r`` images of the class, as SSNM's test script does, and
``keep`` marks which entries are new (score only those). SSNM chunks ``os.listdir`` order, which
depends on the file system; cmseg sorts by name so that groups are reproducible.

**COCO training groups** (SSNM's ``data_processed.py`` rule; reference ssnm_coseg.md §4), read
by :class:`CocoGroups`::

    <root>/
        annotations/instances_train2017.json
        train2017/<file_name>

An image is listed under a category when it has a non-crowd instance of it with ``area`` over
``min_area`` (4000 px); categories with fewer than ``min_images`` (100) such images are dropped;
the class index of a category is its rank in ascending category id. A group draws one category
uniformly, then ``group_size`` (5) distinct images of it; its co-categories are the categories
listed for all of its images (always including the drawn one), and each image's mask is the
union of *all* annotations of the co-categories in it (crowd and small ones included).
SSNM draws 4 distinct categories per batch; here each group is drawn independently from
``(seed, epoch, index)``.

Sample dict (both readers)::

    images   list of uint8 (H_i, W_i, 3)
    masks    list of bool (H_i, W_i)
    class    str                      class folder / COCO category name
    names    list[str]                image stems
    keep     list[bool]               CosegFolders: False for the entries that complete a group
    co_categories  list[int]          CocoGroups: COCO ids shared by the whole group
    label    float32 (C,)             CocoGroups: multi-hot over ``categories`` (SSNM's 78-d label)
"""

from __future__ import annotations

from collections import defaultdict
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
    coco_segmentation_mask,
    find_child,
    load_json,
    missing_keys,
    require_folder,
    safe_join,
    same_size,
    seeded_rng,
)
from cmseg.data.pairing import index_by_stem, index_subfolders
from cmseg.errors import InputError
from cmseg.io import read_image, read_mask

__all__ = [
    "IMAGE_DIR_NAMES",
    "GT_DIR_NAMES",
    "CosegItem",
    "CosegFolders",
    "CocoGroups",
    "index_coseg_folders",
    "make_groups",
    "CocoIndex",
    "index_coco",
]

IMAGE_DIR_NAMES = ("image", "images", "img", "imgs")
GT_DIR_NAMES = ("groundtruth", "ground_truth", "gt", "masks", "mask")


# --------------------------------------------------------------------------------------------
# Processed test sets


@dataclass(frozen=True)
class CosegItem:
    cls: str
    name: str
    image: Path
    gt: Path


def index_coseg_folders(
    root: Path, classes: Sequence[str] | None = None, *, problems: Problems | None = None
) -> dict[str, list[CosegItem]]:
    """``class -> items`` (sorted by name) of the processed layout."""
    problems = problems if problems is not None else Problems(strict=True)
    root = require_folder(Path(root), "dataset root")
    image_dir = find_child(root, IMAGE_DIR_NAMES)
    gt_dir = find_child(root, GT_DIR_NAMES)
    if image_dir is None:
        raise InputError(
            root, f"no image folder (looked for {', '.join(IMAGE_DIR_NAMES)}, any case)"
        )
    if gt_dir is None:
        raise InputError(
            root, f"no groundtruth folder (looked for {', '.join(GT_DIR_NAMES)}, any case)"
        )
    image_classes = index_subfolders(image_dir)
    gt_classes = index_subfolders(gt_dir)
    if classes is not None:
        unknown = [c for c in classes if c not in image_classes]
        if unknown:
            raise InputError(
                image_dir,
                f"no class folder {', '.join(unknown)} (found {', '.join(image_classes)})",
            )
        image_classes = {c: image_classes[c] for c in classes}
    if not image_classes:
        problems.add(image_dir, "holds no class folder (expected image/<class>/<name>.jpg)")
    out: dict[str, list[CosegItem]] = {}
    for cls, folder in image_classes.items():
        if cls not in gt_classes:
            problems.add(folder, f"no matching class folder {gt_dir.name}/{cls}/")
            continue
        dupes: list[str] = []
        images = index_by_stem(folder, problems=dupes)
        gts = index_by_stem(gt_classes[cls], problems=dupes)
        for line in dupes:
            path, _, reason = line.partition(": ")
            problems.add(path, reason, fatal=False)
        items = []
        for stem, path in images.items():
            if stem not in gts:
                problems.add(path, f"no mask named {stem}.* in {gt_dir.name}/{cls}/")
                continue
            items.append(CosegItem(cls, stem, path, gts[stem]))
        for stem in sorted(set(gts) - set(images)):
            problems.add(
                gts[stem], f"no image named {stem}.* in {image_dir.name}/{cls}/", fatal=False
            )
        if not items:
            problems.add(folder, "class holds no image with a mask")
            continue
        if len(items) < 2:
            problems.add(
                folder,
                "class has a single image; co-segmentation needs groups of 2 or more",
                fatal=False,
            )
        out[cls] = items
    if classes is None:
        for cls in sorted(set(gt_classes) - set(image_classes)):
            problems.add(
                gt_classes[cls], f"no matching class folder {image_dir.name}/{cls}/", fatal=False
            )
    return out


def make_groups(n: int, group_size: int | None) -> list[tuple[list[int], list[bool]]]:
    """Positions and keep-flags of SSNM's test groups over ``n`` images of a class.

    Consecutive chunks of ``group_size``; a last chunk of ``r < group_size`` images is the last
    ``r`` images followed by the first ``group_size - r`` (those are not kept). A class with no
    more than ``group_size`` images, or ``group_size=None``, is one group.
    """
    if n <= 0:
        return []
    if group_size is None or n <= group_size:
        return [(list(range(n)), [True] * n)]
    groups = []
    for start in range(0, n - n % group_size, group_size):
        groups.append((list(range(start, start + group_size)), [True] * group_size))
    r = n % group_size
    if r:
        idx = list(range(n - r, n)) + list(range(group_size - r))
        groups.append((idx, [True] * r + [False] * (group_size - r)))
    return groups


class CosegFolders(Reader):
    """Processed co-segmentation test set (layout in the module doc), one item per group.

    Args:
        root: the dataset folder holding ``image/`` and ``groundtruth/``.
        group_size: images per group (SSNM: 5); None puts each whole class in one group.
        classes: class folder names to read (default all, sorted).
        transform: called on each group dict.
    """

    def __init__(
        self,
        root: str | Path,
        *,
        group_size: int | None = 5,
        classes: Sequence[str] | None = None,
        transform: Transform | None = None,
    ) -> None:
        if group_size is not None and group_size < 1:
            raise ValueError("group_size must be >= 1 or None")
        self.root = Path(root)
        self.transform = transform
        try:
            self.items = index_coseg_folders(self.root, classes)
        except InputError as err:
            raise InputError(
                err.path, f"{err.reason} ({CHECK_HINT.format(task='coseg', root=self.root)})"
            ) from None
        self.classes = sorted(self.items)
        self.groups: list[tuple[str, list[int], list[bool]]] = []
        for cls in self.classes:
            for idx, keep in make_groups(len(self.items[cls]), group_size):
                self.groups.append((cls, idx, keep))

    def __len__(self) -> int:
        return len(self.groups)

    def _load(self, index: int) -> dict[str, Any]:
        cls, idx, keep = self.groups[index]
        images, masks, names = [], [], []
        for i in idx:
            item = self.items[cls][i]
            image = read_image(item.image)
            mask = read_mask(item.gt)
            same_size(item.image, image.shape, item.gt, mask.shape, "mask")
            images.append(image)
            masks.append(mask)
            names.append(item.name)
        return {"images": images, "masks": masks, "class": cls, "names": names, "keep": list(keep)}


# --------------------------------------------------------------------------------------------
# COCO training groups


@dataclass
class CocoIndex:
    """What :class:`CocoGroups` needs from an ``instances_*.json``."""

    images: dict[int, dict[str, Any]]  # id -> {"file_name", "height", "width"}
    anns_by_image: dict[int, list[dict[str, Any]]]
    cat_names: dict[int, str]
    cat_to_images: dict[int, list[int]]  # kept categories only, image ids sorted
    image_to_cats: dict[int, set[int]]  # qualifying (non-crowd, large) categories


def index_coco(
    annotation_file: Path,
    *,
    min_area: float = 4000,
    min_images: int = 100,
    problems: Problems | None = None,
) -> CocoIndex:
    """Validate a COCO instances file and build SSNM's category -> images lists."""
    problems = problems if problems is not None else Problems(strict=True)
    data = load_json(annotation_file)
    gone = missing_keys(data, ("images", "annotations", "categories"))
    if gone:
        raise InputError(
            annotation_file, f"COCO instances file lacks {', '.join(repr(k) for k in gone)}"
        )
    images: dict[int, dict[str, Any]] = {}
    for i, img in enumerate(data["images"]):
        gone = missing_keys(img, ("id", "file_name", "height", "width"))
        if gone:
            problems.add(annotation_file, f"images[{i}] lacks {', '.join(repr(k) for k in gone)}")
            continue
        images[img["id"]] = img
    cat_names: dict[int, str] = {}
    for i, cat in enumerate(data["categories"]):
        gone = missing_keys(cat, ("id", "name"))
        if gone:
            problems.add(
                annotation_file, f"categories[{i}] lacks {', '.join(repr(k) for k in gone)}"
            )
            continue
        cat_names[cat["id"]] = str(cat["name"])
    anns_by_image: dict[int, list[dict[str, Any]]] = defaultdict(list)
    qualifying: dict[int, set[int]] = defaultdict(set)
    for i, ann in enumerate(data["annotations"]):
        gone = missing_keys(ann, ("image_id", "category_id", "segmentation"))
        if gone:
            problems.add(
                annotation_file, f"annotations[{i}] lacks {', '.join(repr(k) for k in gone)}"
            )
            continue
        if ann["image_id"] not in images:
            problems.add(
                annotation_file, f"annotations[{i}] refers to unknown image id {ann['image_id']!r}"
            )
            continue
        if ann["category_id"] not in cat_names:
            problems.add(
                annotation_file, f"annotations[{i}] has unknown category id {ann['category_id']!r}"
            )
            continue
        anns_by_image[ann["image_id"]].append(ann)
        area = ann.get("area", 0)
        if not ann.get("iscrowd", 0) and isinstance(area, (int, float)) and area > min_area:
            qualifying[ann["image_id"]].add(ann["category_id"])
    cat_to_images: dict[int, list[int]] = defaultdict(list)
    for image_id in sorted(qualifying):
        for cat in qualifying[image_id]:
            cat_to_images[cat].append(image_id)
    kept = {c: ids for c, ids in sorted(cat_to_images.items()) if len(ids) >= min_images}
    if not kept:
        problems.add(
            annotation_file,
            f"no category has {min_images} or more images with a non-crowd instance over {min_area:g} px",
        )
    return CocoIndex(images, dict(anns_by_image), cat_names, kept, dict(qualifying))


def coco_paths(
    root: Path, split: str, annotation_file: str | Path | None, image_dir: str | Path | None
) -> tuple[Path, Path]:
    """Resolve the instances file and image folder of a COCO root."""
    ann = (
        Path(annotation_file)
        if annotation_file is not None
        else root / "annotations" / f"instances_{split}.json"
    )
    img = Path(image_dir) if image_dir is not None else root / split
    if not ann.is_file():
        raise InputError(
            ann,
            "COCO instances file not found (expected <root>/annotations/instances_<split>.json)",
        )
    require_folder(img, "COCO image")
    return ann, img


class CocoGroups(Reader):
    """SSNM's training groups drawn from COCO (rules in the module doc).

    Args:
        root: COCO root holding ``annotations/`` and the image folder.
        split: ``train2017`` (SSNM) or any ``instances_<split>.json`` present.
        annotation_file, image_dir: override the default paths.
        group_size: images per group (5).
        min_area: an instance must be larger than this (px, COCO ``area``) to list its image.
        min_images: categories with fewer listed images are dropped (100).
        length: groups per epoch (default: listed images // group_size).
        seed: base seed; group ``i`` of epoch ``e`` depends only on ``(seed, e, i)``.
        transform: called on each group dict.
    """

    def __init__(
        self,
        root: str | Path,
        *,
        split: str = "train2017",
        annotation_file: str | Path | None = None,
        image_dir: str | Path | None = None,
        group_size: int = 5,
        min_area: float = 4000,
        min_images: int = 100,
        length: int | None = None,
        seed: int = 0,
        transform: Transform | None = None,
    ) -> None:
        if group_size < 1:
            raise ValueError("group_size must be >= 1")
        self.root = Path(root)
        self.annotation_file, self.image_dir = coco_paths(
            self.root, split, annotation_file, image_dir
        )
        self.index = index_coco(self.annotation_file, min_area=min_area, min_images=min_images)
        self.categories = sorted(self.index.cat_to_images)
        self.group_size = group_size
        self.seed = seed
        self.epoch = 0
        self.transform = transform
        listed = {i for ids in self.index.cat_to_images.values() for i in ids}
        self.length = length if length is not None else max(1, len(listed) // group_size)

    def set_epoch(self, epoch: int) -> None:
        """Draw a different set of groups (call once per epoch, like a DistributedSampler)."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.length

    def draw(self, index: int) -> tuple[int, list[int]]:
        """The category and image ids of group ``index`` (no file is read)."""
        rng = seeded_rng(self.seed, self.epoch, index)
        cat = self.categories[int(rng.integers(len(self.categories)))]
        pool = self.index.cat_to_images[cat]
        replace = len(pool) < self.group_size
        picks = rng.choice(len(pool), size=self.group_size, replace=replace)
        return cat, [pool[int(i)] for i in picks]

    def _load(self, index: int) -> dict[str, Any]:
        return self.load_group(*self.draw(index))

    def load_group(self, cat: int, image_ids: Sequence[int]) -> dict[str, Any]:
        """The sample dict (module docstring) of the group of ``image_ids`` drawn for category
        ``cat``, however they were chosen (:meth:`draw`, or a caller's own groups)."""
        shared = set.intersection(*(self.index.image_to_cats.get(i, set()) for i in image_ids))
        shared.add(cat)
        images, masks, names = [], [], []
        for image_id in image_ids:
            info = self.index.images[image_id]
            path = safe_join(
                self.image_dir, info["file_name"], what="file_name", source=self.annotation_file
            )
            image = read_image(path)
            h, w = int(info["height"]), int(info["width"])
            if image.shape[:2] != (h, w):
                raise InputError(
                    path,
                    f"image is {image.shape[1]}x{image.shape[0]} but the annotations say {w}x{h}",
                )
            mask = np.zeros((h, w), dtype=bool)
            for ann in self.index.anns_by_image.get(image_id, []):
                if ann["category_id"] in shared:
                    try:
                        mask |= coco_segmentation_mask(ann["segmentation"], h, w)
                    except ValueError as err:
                        raise InputError(
                            self.annotation_file, f"annotation {ann.get('id', '?')}: {err}"
                        ) from None
            images.append(image)
            masks.append(mask)
            names.append(Path(info["file_name"]).stem)
        label = np.zeros(len(self.categories), dtype=np.float32)
        for c in shared:
            if c in self.index.cat_to_images:
                label[self.categories.index(c)] = 1.0
        return {
            "images": images,
            "masks": masks,
            "class": self.index.cat_names[cat],
            "names": names,
            "category_id": cat,
            "co_categories": sorted(shared),
            "label": label,
        }
