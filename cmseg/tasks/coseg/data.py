"""The data of a ``coseg`` run: training groups drawn from COCO or from processed folders,
the held-out groups, the processed test sets, and the training pipeline.

Training groups are drawn by the transform from the generator the trainer gives it, keyed by
``(seed, index, epoch)`` (:mod:`cmseg.engine.sampling`): a class (a COCO category, or a class
folder) uniformly, then ``group_size`` distinct images of it (with repetition only when the
class has fewer), as SSNM's producer threads do; a resumed run draws exactly the same groups.
A group's label is the multi-hot vector over the training classes (COCO: every co-category of
the group, SSNM's rule; folders: its one class). Images are resized to ``model.image_size``
square and masks resized and kept above 0.5 (:mod:`cmseg.tasks.coseg.process`).

Held-out images (``data.options.heldout_images`` for COCO, ``heldout_per_class`` for folders)
are drawn with the fixed seed :data:`HELDOUT_SEED` (the same whatever ``train.seed``), removed
from the training pools, and grouped per class like a processed test set:
:func:`~cmseg.data.formats.coseg_groups.make_groups` over their sorted ids, the remainder
completed as SSNM's test script does.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cmseg.data.formats import find_child, same_size
from cmseg.data.formats.coseg_groups import (
    IMAGE_DIR_NAMES,
    CocoGroups,
    CosegFolders,
    CosegItem,
    index_coseg_folders,
    make_groups,
)
from cmseg.errors import ConfigError, InputError
from cmseg.io import read_grey, read_image, read_mask
from cmseg.tasks.coseg.options import CosegOptions
from cmseg.tasks.coseg.process import preprocess_group, resize_mask

__all__ = [
    "HELDOUT_SEED",
    "HELDOUT",
    "FixedGroups",
    "FolderPools",
    "CocoPools",
    "TrainGroups",
    "DrawGroup",
    "open_folder_sets",
    "open_test_set",
]

log = logging.getLogger(__name__)

#: Seed of the held-out draw: the same images are held out whatever ``train.seed``.
HELDOUT_SEED = 20200207
#: Name of the held-out validation set (its metrics are ``heldout/P``, ``heldout/J``...).
HELDOUT = "heldout"


def _draw_members(rng: np.random.Generator, pool_size: int, group_size: int) -> list[int]:
    """``group_size`` distinct positions of a pool (with repetition only in a smaller pool)."""
    picks = rng.choice(pool_size, size=group_size, replace=pool_size < group_size)
    return [int(i) for i in picks]


# --------------------------------------------------------------------------------------------
# Validation groups


@dataclass
class FixedGroups:
    """Fixed groups to score: item ``i`` is ``load(key, members)`` plus its class and keep
    flags: ``{"images", "gts", "names", "class", "keep"}`` (``gts``: bool or grey uint8).

    Attributes:
        groups: ``(class name, key, members, keep)`` per group; only kept members are scored.
        load: ``load(key, members) -> {"images", "gts", "names"}``.
    """

    groups: list[tuple[str, Any, list[Any], list[bool]]]
    load: Callable[[Any, list[Any]], dict[str, Any]]

    def __len__(self) -> int:
        return len(self.groups)

    def __getitem__(self, index: int) -> dict[str, Any]:
        cls, key, members, keep = self.groups[index]
        return {**self.load(key, members), "class": cls, "keep": list(keep)}


def load_items(_cls: Any, items: Sequence[CosegItem], *, protocol: str = "ssnm") -> dict[str, Any]:
    """Images and ground truths of processed-set items, the GT read as the protocol reads it
    (``ssnm``: grey, as SSNM's ``val.py``; ``native``: :func:`~cmseg.io.read_mask`)."""
    images, gts = [], []
    for item in items:
        image = read_image(item.image)
        gt = read_grey(item.gt) if protocol == "ssnm" else read_mask(item.gt)
        same_size(item.image, image.shape, item.gt, gt.shape, "mask")
        images.append(image)
        gts.append(gt)
    return {"images": images, "gts": gts, "names": [item.name for item in items]}


def _grouped(
    members_by_class: Mapping[str, tuple[Any, Sequence[Any]]], group_size: int
) -> list[tuple[str, Any, list[Any], list[bool]]]:
    """SSNM's test groups over each class's sorted members (classes of one member skipped)."""
    groups = []
    for cls, (key, members) in members_by_class.items():
        if len(members) < 2:
            continue
        for positions, keep in make_groups(len(members), group_size):
            groups.append((cls, key, [members[p] for p in positions], keep))
    return groups


def open_test_set(root: Path, group_size: int, protocol: str) -> FixedGroups:
    """A processed test set (``<root>/{image, groundtruth}/<class>/``) in SSNM's groups; a
    class of a single image cannot be co-segmented and is left out (with a warning)."""
    folders = CosegFolders(root, group_size=group_size)
    groups = [
        (cls, cls, [folders.items[cls][i] for i in idx], keep) for cls, idx, keep in folders.groups
    ]
    single = [g[0] for g in groups if len(g[2]) < 2]
    if single:
        log.warning("%s: class(es) of a single image not scored: %s", root, ", ".join(single))
    groups = [g for g in groups if len(g[2]) >= 2]
    return FixedGroups(groups, lambda key, items: load_items(key, items, protocol=protocol))


# --------------------------------------------------------------------------------------------
# Training pools


class FolderPools:
    """Training classes of processed sets: class -> its images (sets merged by class name).

    Args:
        sets: ``{set name: folder}`` of processed sets.
        opts: the task options (``classes``, ``heldout_per_class``, ``group_size``).
    """

    def __init__(self, sets: Mapping[str, Path], opts: CosegOptions) -> None:
        pools: dict[str, list[CosegItem]] = {}
        for folder in sets.values():
            for cls, items in index_coseg_folders(folder).items():
                pools.setdefault(cls, []).extend(items)
        if opts.classes:
            unknown = [c for c in opts.classes if c not in pools]
            if unknown:
                raise ConfigError(
                    f"data.options.classes: no class {', '.join(unknown)} in the training sets "
                    f"(found {', '.join(sorted(pools))})"
                )
            pools = {c: pools[c] for c in opts.classes}
        self.group_size = opts.group_size
        self.classes = sorted(pools)
        held = int(opts.heldout_per_class)
        rng = np.random.default_rng(HELDOUT_SEED)
        self.pools: dict[str, list[CosegItem]] = {}
        self.heldout: dict[str, list[CosegItem]] = {}
        for cls in self.classes:
            items = sorted(pools[cls], key=lambda it: (it.name, str(it.image)))
            if len(items) < held + 2:
                raise ConfigError(
                    f"class {cls} has {len(items)} images: too few to hold out {held} "
                    "(data.options.heldout_per_class) and train on 2 or more"
                )
            chosen = set(int(i) for i in rng.choice(len(items), size=held, replace=False))
            self.heldout[cls] = [it for i, it in enumerate(items) if i in chosen]
            self.pools[cls] = [it for i, it in enumerate(items) if i not in chosen]

    @property
    def names(self) -> list[str]:
        """The class names in label order."""
        return list(self.classes)

    def num_images(self) -> int:
        return sum(len(p) for p in self.pools.values())

    def draw(self, rng: np.random.Generator) -> tuple[str, list[CosegItem]]:
        cls = self.classes[int(rng.integers(len(self.classes)))]
        pool = self.pools[cls]
        return cls, [pool[i] for i in _draw_members(rng, len(pool), self.group_size)]

    def load(self, cls: str, items: Sequence[CosegItem]) -> dict[str, Any]:
        """``{"images", "masks" (bool), "label"}`` of a group of class ``cls``."""
        sample = load_items(cls, items, protocol="native")
        label = np.zeros(len(self.classes), dtype=np.float32)
        label[self.classes.index(cls)] = 1.0
        return {"images": sample["images"], "masks": sample["gts"], "label": label}

    def heldout_groups(self) -> FixedGroups:
        by_class = {cls: (cls, items) for cls, items in self.heldout.items()}
        groups = _grouped(by_class, self.group_size)
        return FixedGroups(groups, lambda key, items: load_items(key, items, protocol="native"))


class CocoPools:
    """SSNM's COCO training categories with a held-out part of their images.

    Args:
        coco: the reader (its index parsed once; its category lists are replaced by
            ``table`` minus the held-out images).
        table: the co-category dictionary, category id -> image ids.
        opts: the task options (``heldout_images``, ``group_size``).
    """

    def __init__(
        self, coco: CocoGroups, table: Mapping[int, list[int]], opts: CosegOptions
    ) -> None:
        self.coco, self.group_size = coco, opts.group_size
        listed = sorted({i for ids in table.values() for i in ids})
        count = min(int(opts.heldout_images), len(listed))
        rng = np.random.default_rng(HELDOUT_SEED)
        held = set(int(listed[i]) for i in rng.choice(len(listed), size=count, replace=False))
        self.heldout = {c: [i for i in ids if i in held] for c, ids in sorted(table.items())}
        train = {c: [i for i in ids if i not in held] for c, ids in sorted(table.items())}
        short = [coco.index.cat_names[c] for c, ids in train.items() if len(ids) < 2]
        if short:
            raise ConfigError(
                f"categories with fewer than 2 training images after holding out {count}: "
                f"{', '.join(short)} (lower data.options.heldout_images)"
            )
        coco.index.cat_to_images = train
        coco.categories = sorted(train)
        self.held_count = count

    @property
    def names(self) -> list[str]:
        return [self.coco.index.cat_names[c] for c in self.coco.categories]

    @property
    def ids(self) -> list[int]:
        return list(self.coco.categories)

    def num_images(self) -> int:
        return len({i for ids in self.coco.index.cat_to_images.values() for i in ids})

    def draw(self, rng: np.random.Generator) -> tuple[int, list[int]]:
        cat = self.coco.categories[int(rng.integers(len(self.coco.categories)))]
        pool = self.coco.index.cat_to_images[cat]
        return cat, [pool[i] for i in _draw_members(rng, len(pool), self.group_size)]

    def load(self, cat: int, image_ids: Sequence[int]) -> dict[str, Any]:
        sample = self.coco.load_group(cat, image_ids)
        return {"images": sample["images"], "masks": sample["masks"], "label": sample["label"]}

    def heldout_groups(self) -> FixedGroups:
        names = self.coco.index.cat_names
        by_class = {names[c]: (c, ids) for c, ids in self.heldout.items()}

        def load(cat: int, ids: list[int]) -> dict[str, Any]:
            sample = self.coco.load_group(cat, ids)
            return {"images": sample["images"], "gts": sample["masks"], "names": sample["names"]}

        return FixedGroups(_grouped(by_class, self.group_size), load)


def open_folder_sets(root: Path, names: Sequence[str]) -> dict[str, Path]:
    """``{set: folder}``: the named sets under ``root``; none named: ``root`` itself when it
    is a processed set (holds ``image/``), else every set under it.

    Raises:
        InputError: a named set that is not there, or no set at all.
    """
    if names:
        missing = [n for n in names if not (root / n).is_dir()]
        if missing:
            raise InputError(root / missing[0], "no such set folder (data.train_sets)")
        return {n: root / n for n in names}
    if find_child(root, IMAGE_DIR_NAMES) is not None:
        return {root.name: root}
    sets = {
        p.name: p for p in sorted(root.iterdir()) if p.is_dir() and find_child(p, IMAGE_DIR_NAMES)
    }
    if not sets:
        raise InputError(root, "holds no processed set (<set>/image/<class>/, <set>/groundtruth/)")
    return sets


# --------------------------------------------------------------------------------------------
# Training pipeline


class TrainGroups:
    """``length`` training items per epoch; item ``i`` names the pools, and the transform
    (:class:`DrawGroup`) draws its group from the generator keyed by ``(seed, i, epoch)``."""

    def __init__(self, pools: Any, length: int) -> None:
        self.pools, self.length = pools, max(1, int(length))

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict[str, Any]:
        if not 0 <= index < self.length:
            raise IndexError(index)
        return {"pools": self.pools}


class DrawGroup:
    """Draw a group, read it and make the tensors: ``images`` ``float32 (N, 3, S, S)``,
    ``masks`` ``float32 (N, S, S)`` in {0, 1}, ``labels`` ``float32 (K,)``.

    Args:
        size: the model's input side.
        flip: flip the whole group horizontally with probability 0.5.
    """

    def __init__(self, size: int, *, flip: bool = False) -> None:
        self.size, self.flip = int(size), bool(flip)

    def __call__(self, item: Mapping[str, Any], rng: np.random.Generator) -> dict[str, Any]:
        pools = item["pools"]
        sample = pools.load(*pools.draw(rng))
        images, masks = sample["images"], sample["masks"]
        if self.flip and rng.random() < 0.5:
            images = [np.ascontiguousarray(im[:, ::-1]) for im in images]
            masks = [np.ascontiguousarray(m[:, ::-1]) for m in masks]
        targets = np.stack([resize_mask(m, self.size) for m in masks]).astype(np.float32)
        return {
            "images": preprocess_group(images, self.size),
            "masks": torch.from_numpy(targets),
            "labels": torch.from_numpy(np.asarray(sample["label"], dtype=np.float32)),
        }
