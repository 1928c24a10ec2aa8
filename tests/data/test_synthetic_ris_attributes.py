"""Attribute maps of the synthetic referring images (the demo's pretraining targets)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from pycocotools import mask as mask_utils

from cmseg.data.synthetic import write_synthetic
from cmseg.data.synthetic.ris import RIS_SHAPES, load_scenes
from cmseg.data.synthetic.ris_attributes import ATTRIBUTE_CLASSES, attribute_maps
from cmseg.errors import InputError


@pytest.fixture(scope="module")
def ris_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("ris_attr") / "data"
    write_synthetic("ris", out, n=30, size=96, seed=2)
    return out


def test_splits_follow_the_generator_rule(ris_root: Path) -> None:
    train = attribute_maps(ris_root, ("train",))
    held = attribute_maps(ris_root, ("val", "testA", "testB"))
    assert all((i - 1) % 10 < 7 for i in train.image_ids)
    assert all((i - 1) % 10 >= 7 for i in held.image_ids)
    assert sorted(train.image_ids + held.image_ids) == list(range(1, 31))
    assert train.images.shape == (len(train), 96, 96, 3) and train.images.dtype == np.uint8
    assert train.labels.shape == (len(train), 3, 96, 96)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # pycocotools under numpy 2
def test_labels_are_the_objects_attributes(ris_root: Path) -> None:
    maps = attribute_maps(ris_root, ("val",))
    instances = json.loads((ris_root / "refcoco" / "instances.json").read_text())
    scenes, _, _ = load_scenes(ris_root)
    names = list(ATTRIBUTE_CLASSES)
    for n, image_id in enumerate(maps.image_ids):
        painted = np.zeros((96, 96), bool)
        objects = dict(scenes[image_id])
        for ann in (a for a in instances["annotations"] if a["image_id"] == image_id):
            inside = mask_utils.decode(
                mask_utils.merge(mask_utils.frPyObjects(ann["segmentation"], 96, 96))
            ).astype(bool)
            painted |= inside
            obj = objects[ann["id"]]
            assert obj.shape in RIS_SHAPES
            # the shape label is the COCO category id
            assert set(np.unique(maps.labels[n, names.index("shape")][inside])) == {
                ann["category_id"]
            }
            colour = ATTRIBUTE_CLASSES["colour"].index(obj.colour) + 1
            assert set(np.unique(maps.labels[n, names.index("colour")][inside])) == {colour}
            size = ATTRIBUTE_CLASSES["size"].index(obj.size) + 1
            assert set(np.unique(maps.labels[n, names.index("size")][inside])) == {size}
        assert not maps.labels[n][:, ~painted].any()  # background is 0 in every map
        assert painted.any()


def test_clear_errors(tmp_path: Path, ris_root: Path) -> None:
    with pytest.raises(InputError, match="instances.json"):
        attribute_maps(tmp_path)
    with pytest.raises(InputError, match="no image of the splits"):
        attribute_maps(ris_root, ("trainval",))
