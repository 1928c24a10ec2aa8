"""Per-pixel attribute maps of the synthetic referring images: shape, colour and size.

They are the targets of ``cmseg demo ris``'s backbone pretraining
(:func:`cmseg.engine.backbone_pretraining.pretrain_backbone`), the stand-in for the semantic
segmentation weights CMPC starts from (its DeepLab ResNet-101 was trained on PASCAL VOC). The
attributes are read back from the files on disk (:func:`cmseg.data.synthetic.ris.load_scenes`:
shape from the category, colour from the pixels, size from the area), so any folder that
:func:`~cmseg.data.synthetic.write_synthetic` wrote for ``ris`` can be used; which split an
image belongs to follows the generator's rule (image index mod 10).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from pycocotools import mask as mask_utils

from cmseg.data.synthetic import draw
from cmseg.data.synthetic.ris import RIS_COLOURS, SPLIT_OF_DIGIT, _decode, load_scenes
from cmseg.errors import InputError
from cmseg.io import read_json

__all__ = ["ATTRIBUTE_CLASSES", "AttributeMaps", "attribute_maps"]

#: Label names of each map; label 0 is the background, label i the (i-1)-th name. The shape
#: labels are the COCO category ids of ``instances.json``.
ATTRIBUTE_CLASSES: dict[str, tuple[str, ...]] = {
    "shape": tuple(draw.SHAPES),
    "colour": RIS_COLOURS,
    "size": ("small", "big"),
}


@dataclass
class AttributeMaps:
    """Images and their attribute maps.

    Attributes:
        images: ``uint8 (N, H, W, 3)`` RGB images.
        labels: ``uint8 (N, A, H, W)``, one map per attribute of :data:`ATTRIBUTE_CLASSES` in
            its order; 0 on the background, ``1 + index`` of the object's value elsewhere.
        image_ids: the ``N`` COCO image ids.
    """

    images: np.ndarray
    labels: np.ndarray
    image_ids: list[int]

    def __len__(self) -> int:
        return len(self.image_ids)


def attribute_maps(root: str | Path, splits: tuple[str, ...] = ("train",)) -> AttributeMaps:
    """The images of ``splits`` of a synthetic ``ris`` folder with their attribute maps.

    Args:
        root: the folder :func:`~cmseg.data.synthetic.write_synthetic` wrote (``refcoco/``
            and ``images/train2014/`` inside).
        splits: REFER split names (``train``, ``val``, ``testA``, ``testB``).

    Raises:
        InputError: a file is missing, or no image belongs to ``splits``.
    """
    root = Path(root)
    instances_file = root / "refcoco" / "instances.json"
    if not instances_file.is_file():
        raise InputError(instances_file, "not found: is this a synthetic ris folder?")
    instances = read_json(instances_file)
    scenes, _, _ = load_scenes(root)
    wanted = [im for im in instances["images"] if SPLIT_OF_DIGIT[(im["id"] - 1) % 10] in splits]
    if not wanted:
        raise InputError(root, f"holds no image of the splits {', '.join(splits)}")
    by_image: dict[int, list[dict]] = {}
    for ann in instances["annotations"]:
        by_image.setdefault(ann["image_id"], []).append(ann)

    h, w = int(wanted[0]["height"]), int(wanted[0]["width"])
    images = np.zeros((len(wanted), h, w, 3), np.uint8)
    labels = np.zeros((len(wanted), len(ATTRIBUTE_CLASSES), h, w), np.uint8)
    for n, im in enumerate(wanted):
        path = root / "images" / "train2014" / im["file_name"]
        bgr = cv2.imread(str(path))
        if bgr is None or bgr.shape[:2] != (h, w):
            raise InputError(path, f"missing, unreadable, or not {w} x {h}")
        images[n] = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        objects = dict(scenes.get(im["id"], []))
        for ann in by_image.get(im["id"], []):
            obj = objects[ann["id"]]
            rle = mask_utils.merge(mask_utils.frPyObjects(ann["segmentation"], h, w))
            inside = _decode(rle)
            values = (obj.shape, obj.colour, obj.size)
            for a, (names, value) in enumerate(
                zip(ATTRIBUTE_CLASSES.values(), values, strict=True)
            ):
                labels[n, a][inside] = names.index(value) + 1
    return AttributeMaps(images, labels, [int(im["id"]) for im in wanted])
