"""The ``coseg`` part of ``cmseg predict``: the object shared by each group of images::

    cmseg predict coseg --checkpoint runs/coseg/best --input cosegdatasets/iCoseg8 --out pred/
    cmseg predict coseg --checkpoint runs/coseg/best --input photos/ --group-size 5 --binary --out pred/
    cmseg evaluate coseg --pred pred/ --gt cosegdatasets/iCoseg8/groundtruth

``--input DIR`` is read, by what it holds (in this order):

* a processed set (``DIR/image/<class>/``; also spelled ``images``, ``img``): each class
  folder is a class;
* image files directly inside ``DIR``: one group, written as ``<out>/<name>.png``;
* class folders of images (``DIR/<class>/``).

A class is one group (default), or with ``--group-size N`` consecutive groups of ``N`` images
in name order, a last short group completed with the first images of the class as SSNM's test
script does (:func:`~cmseg.data.formats.coseg_groups.make_groups`); only the entries new to a
group are written, so every image is written once, as ``<out>/<class>/<name>.png``:

* by default SSNM's output: the foreground probability times 255 (``uint8``, rounded) at the
  image's own size, the network's map resized back bilinearly;
* with ``--binary``: the mask after the adaptive threshold of SSNM's P / J (``prob > min(mean
  + std, 0.8)`` per image, :func:`cmseg.metrics.masks.binarize_soft_map`), 0 / 255.

A class folder with a single image is refused before the model loads (a group needs two or
more); an image that cannot be read fails its group (every image of it is listed). What every
task's ``predict`` shares (``--skip-existing``, atomic writes, the list of failures) is
:func:`cmseg.engine.prediction.run_prediction`; with ``--skip-existing`` a group whose images
are partly written is predicted whole again (its composition is what it is) and only the
missing outputs are written. ``--batch-size`` counts groups per forward pass.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cmseg.data.formats import find_child
from cmseg.data.formats.coseg_groups import IMAGE_DIR_NAMES, make_groups
from cmseg.data.pairing import index_by_stem, index_subfolders, require_dir
from cmseg.engine.prediction import Outcome, PredictCommand, PredictItem
from cmseg.errors import CmsegError, ConfigError, InputError
from cmseg.io import read_image

__all__ = ["CosegEntry", "collect_groups", "PREDICT"]


@dataclass(frozen=True)
class CosegEntry:
    """One image to write and the group it is predicted in.

    Attributes:
        group: the group's key (class name, group number).
        members: every image of the group, in order.
        position: this image's place in ``members``.
    """

    group: tuple[str, int]
    members: tuple[Path, ...]
    position: int


def _classes(root: Path) -> dict[str, Path]:
    """``{class: folder}`` of ``--input`` (module docstring); ``{"": root}`` for one group."""
    image_dir = find_child(root, IMAGE_DIR_NAMES)
    if image_dir is not None:
        return index_subfolders(image_dir)
    if index_by_stem(root):
        return {"": root}
    return {
        name: folder for name, folder in index_subfolders(root).items() if index_by_stem(folder)
    }


def _class_images(folder: Path) -> list[Path]:
    dupes: list[str] = []
    images = index_by_stem(folder, problems=dupes)
    if dupes:
        raise InputError(*dupes[0].split(": ", 1))
    if len(images) < 2:
        raise InputError(
            folder,
            f"holds {len(images)} image(s); co-segmentation needs groups of 2 or more",
        )
    return list(images.values())


def collect_groups(root: Path, group_size: int | None) -> list[PredictItem]:
    """The images of ``--input`` (module docstring), each with its group, in name order.

    Raises:
        InputError: no such folder, no image in it, a class of one image, or two images of one
            name in a class.
        ConfigError: a group size under 2.
    """
    if group_size is not None and group_size < 2:
        raise ConfigError(f"--group-size must be >= 2 (a group), got {group_size}")
    root = require_dir(root, "input")
    classes = _classes(root)
    if not classes:
        raise InputError(root, "holds no image, no class folder of images and no image/ folder")
    items: list[PredictItem] = []
    for cls, folder in classes.items():
        paths = _class_images(folder)
        for number, (positions, keep) in enumerate(make_groups(len(paths), group_size)):
            members = tuple(paths[p] for p in positions)
            for j, (p, kept) in enumerate(zip(positions, keep, strict=True)):
                if kept:
                    name = f"{cls}/{paths[p].stem}" if cls else paths[p].stem
                    entry = CosegEntry((cls, number), members, j)
                    items.append(PredictItem(name, (paths[p],), payload=entry))
    return items


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--input", required=True, metavar="DIR",
        help="a processed set (DIR/image/<class>/), a folder of class folders of images, or "
        "one folder of images (one group)",
    )  # fmt: skip
    parser.add_argument(
        "--group-size", type=int, default=None, metavar="N",
        help="groups of N images per class, the last one completed as SSNM's test script "
        "does (default: each class is one group)",
    )  # fmt: skip
    parser.add_argument(
        "--binary", action="store_true",
        help="write the masks after the adaptive threshold of P / J (min(mean + std, 0.8)) "
        "instead of the probability x 255",
    )  # fmt: skip


def _collect(args: argparse.Namespace) -> list[PredictItem]:
    return collect_groups(Path(args.input), args.group_size)


def _load(args: argparse.Namespace) -> Any:
    from cmseg.tasks.coseg.predictor import CosegPredictor

    return CosegPredictor.from_checkpoint(args.checkpoint, device=args.device)


def _by_group(items: Sequence[PredictItem]) -> list[list[PredictItem]]:
    groups: dict[tuple[str, int], list[PredictItem]] = {}
    for item in items:
        groups.setdefault(item.payload.group, []).append(item)
    return list(groups.values())


def _read_group(items: list[PredictItem]) -> list[np.ndarray] | list[Outcome]:
    """Every image of the group, or one failed outcome per item when one cannot be read."""
    members = items[0].payload.members
    images = []
    for path in members:
        try:
            images.append(read_image(path))
        except CmsegError as err:
            return [
                Outcome(it, error=str(err) if it.inputs[0] == path else (
                    f"{it.inputs[0]}: not predicted, its group holds {path}, which cannot be read"
                ))
                for it in items
            ]  # fmt: skip
    return images


def _files(item: PredictItem, prob: np.ndarray, args: argparse.Namespace) -> dict[Path, Any]:
    from cmseg.metrics.masks import binarize_soft_map

    if args.binary:
        value: Any = binarize_soft_map(prob)[0]
    else:
        value = np.round(np.clip(prob, 0.0, 1.0) * 255.0).astype(np.uint8)
    return {Path(args.out) / f"{item.name}.png": value}


def _predict(
    predictor: Any, items: Sequence[PredictItem], args: argparse.Namespace
) -> Iterator[Outcome]:
    """``--batch-size`` groups at a time (those of one size in one forward pass)."""
    groups = _by_group(items)
    for start in range(0, len(groups), args.batch_size):
        ready: list[tuple[list[PredictItem], list[np.ndarray]]] = []
        for group in groups[start : start + args.batch_size]:
            read = _read_group(group)
            if read and isinstance(read[0], Outcome):
                yield from read  # type: ignore[misc]
                continue
            ready.append((group, read))  # type: ignore[arg-type]
        if not ready:
            continue
        maps = predictor.predict_groups([images for _, images in ready])
        for (group, _), group_maps in zip(ready, maps, strict=True):
            for item in group:
                yield Outcome(item, files=_files(item, group_maps[item.payload.position], args))


PREDICT = PredictCommand(
    help="masks of the object that each group of images shares", unit="image",
    batch_unit="groups", add_arguments=_add_arguments, collect=_collect, load=_load,
    predict=_predict,
)  # fmt: skip
