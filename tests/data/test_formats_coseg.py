"""Co-segmentation readers: SSNM's processed test layout and COCO training groups."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cmseg.data.formats import CocoGroups, CosegFolders
from cmseg.data.formats.coseg_groups import index_coco, make_groups
from cmseg.errors import InputError
from cmseg.metrics.coco import encode_rle

H, W = 10, 14


def write_coseg(root: Path, classes: dict[str, int], *, gt_ext: str = ".png") -> Path:
    """``image/<class>/<name>.jpg`` + ``groundtruth/<class>/<name><gt_ext>``."""
    for c, (cls, n) in enumerate(classes.items()):
        for i in range(n):
            (root / "image" / cls).mkdir(parents=True, exist_ok=True)
            (root / "groundtruth" / cls).mkdir(parents=True, exist_ok=True)
            rgb = np.full((H, W, 3), 20 * c + i, dtype=np.uint8)
            Image.fromarray(rgb).save(root / "image" / cls / f"{cls}_{i:02d}.jpg")
            gt = np.zeros((H, W), dtype=np.uint8)
            gt[1 : 2 + i, 2:9] = 255
            Image.fromarray(gt).save(root / "groundtruth" / cls / f"{cls}_{i:02d}{gt_ext}")
    return root


def test_make_groups_follows_ssnm_remainder_rule():
    assert make_groups(10, 5) == [([0, 1, 2, 3, 4], [True] * 5), ([5, 6, 7, 8, 9], [True] * 5)]
    groups = make_groups(7, 5)
    assert groups[1] == ([5, 6, 0, 1, 2], [True, True, False, False, False])
    assert make_groups(3, 5) == [([0, 1, 2], [True, True, True])]
    assert make_groups(4, None) == [([0, 1, 2, 3], [True] * 4)]
    assert make_groups(0, 5) == []


@pytest.mark.parametrize("gt_ext", [".png", ".bmp", ".jpg"])  # iCoseg/PASCAL, MSRC, Internet
def test_folders_group_by_class(tmp_path, gt_ext):
    write_coseg(tmp_path, {"bird": 7, "car": 3}, gt_ext=gt_ext)
    ds = CosegFolders(tmp_path, group_size=5)
    assert ds.classes == ["bird", "car"]
    assert len(ds) == 3
    g = ds[1]
    assert set(g) == {"images", "masks", "class", "names", "keep"}
    assert g["class"] == "bird"
    assert g["names"] == ["bird_05", "bird_06", "bird_00", "bird_01", "bird_02"]
    assert g["keep"] == [True, True, False, False, False]
    assert all(im.dtype == np.uint8 and im.shape == (H, W, 3) for im in g["images"])
    assert all(m.dtype == bool and m.shape == (H, W) for m in g["masks"])
    assert g["masks"][0].sum() == 6 * 7  # rows 1..6 of bird_05
    assert ds[2]["names"] == ["car_00", "car_01", "car_02"]


def test_folders_whole_class_and_class_selection(tmp_path):
    write_coseg(tmp_path, {"bird": 7, "car": 3})
    ds = CosegFolders(tmp_path, group_size=None, classes=["car"])
    assert len(ds) == 1 and len(ds[0]["images"]) == 3
    with pytest.raises(InputError, match="no class folder cow"):
        CosegFolders(tmp_path, classes=["cow"])


def test_folders_missing_mask_and_missing_folder(tmp_path):
    write_coseg(tmp_path, {"bird": 3})
    (tmp_path / "groundtruth" / "bird" / "bird_01.png").unlink()
    with pytest.raises(InputError) as info:
        CosegFolders(tmp_path)
    assert "bird_01.jpg" in str(info.value) and "no mask named bird_01" in str(info.value)
    (tmp_path / "other").mkdir()
    with pytest.raises(InputError, match="no image folder"):
        CosegFolders(tmp_path / "other")


# --------------------------------------------------------------------------------------------
# COCO groups


def _poly(x0: int, y0: int, x1: int, y1: int) -> list[list[float]]:
    return [[x0, y0, x1, y0, x1, y1, x0, y1]]


def write_coco(root: Path) -> Path:
    """``annotations/instances_train2017.json`` + ``train2017/``: 4 images, categories 1 and 2.

    Category 1 (cat) is large and non-crowd in images 1-3; category 2 (dog) is large in images
    1-2 and only crowd in image 3; image 4 has only a small cat.
    """
    (root / "annotations").mkdir(parents=True)
    (root / "train2017").mkdir()
    h, w = 100, 120
    images, anns = [], []
    for i in range(1, 5):
        name = f"{i:012d}.jpg"
        Image.fromarray(np.full((h, w, 3), 30 * i, dtype=np.uint8)).save(root / "train2017" / name)
        images.append({"id": i, "file_name": name, "height": h, "width": w})

    def add(image_id, cat, seg, area, crowd=0):
        anns.append(
            {
                "id": len(anns) + 1,
                "image_id": image_id,
                "category_id": cat,
                "segmentation": seg,
                "area": area,
                "bbox": [0, 0, 1, 1],
                "iscrowd": crowd,
            }
        )

    for i in (1, 2, 3):
        add(i, 1, _poly(0, 0, 80, 60), 4800)
    add(1, 2, _poly(90, 60, 119, 99), 4100.5)
    add(2, 2, _poly(90, 60, 119, 99), 4100.5)
    crowd = np.zeros((h, w), dtype=bool)
    crowd[90:, 100:] = True
    add(3, 2, {"size": [h, w], "counts": list(map(int, _uncompressed(crowd)))}, 5000, crowd=1)
    add(4, 1, _poly(0, 0, 10, 10), 100)
    add(1, 1, _poly(100, 0, 110, 10), 100)  # a small cat: not listing, but part of the union
    data = {
        "images": images,
        "annotations": anns,
        "categories": [
            {"id": 1, "name": "cat", "supercategory": "animal"},
            {"id": 2, "name": "dog", "supercategory": "animal"},
        ],
    }
    (root / "annotations" / "instances_train2017.json").write_text(json.dumps(data))
    return root


def _uncompressed(mask: np.ndarray) -> list[int]:
    flat = mask.T.reshape(-1).astype(np.uint8)
    runs, current, count = [], 0, 0
    for v in flat:
        if v == current:
            count += 1
        else:
            runs.append(count)
            current, count = v, 1
    runs.append(count)
    return runs


def test_coco_index_applies_ssnm_rules(tmp_path):
    write_coco(tmp_path)
    ix = index_coco(tmp_path / "annotations" / "instances_train2017.json", min_images=2)
    assert ix.cat_to_images == {1: [1, 2, 3], 2: [1, 2]}
    assert ix.image_to_cats[3] == {1}
    assert 4 not in ix.image_to_cats
    assert index_coco(
        tmp_path / "annotations" / "instances_train2017.json", min_images=3
    ).cat_to_images == {1: [1, 2, 3]}


def test_coco_groups_union_of_shared_categories(tmp_path):
    write_coco(tmp_path)
    ds = CocoGroups(tmp_path, group_size=2, min_images=2, length=20, seed=3)
    assert ds.categories == [1, 2] and len(ds) == 20
    seen_dog_group = False
    for i in range(len(ds)):
        cat, ids = ds.draw(i)
        g = ds[i]
        assert set(g) == {
            "images",
            "masks",
            "class",
            "names",
            "category_id",
            "co_categories",
            "label",
        }
        assert len(set(ids)) == 2 and g["category_id"] == cat
        assert g["label"].dtype == np.float32 and g["label"].shape == (2,)
        if set(ids) == {1, 2}:  # both images have a large cat and a large dog
            assert g["co_categories"] == [1, 2] and g["label"].tolist() == [1.0, 1.0]
            m = g["masks"][ids.index(1)]
            assert m[30, 40] and m[80, 100] and m[5, 105]  # cat, dog and the small cat
            seen_dog_group = True
        if 3 in ids:
            assert g["co_categories"] == [1]
            m = g["masks"][ids.index(3)]
            assert m[30, 40] and not m[95, 110]  # the crowd dog is not a shared category
    assert seen_dog_group
    assert [ds.draw(i) for i in range(5)] == [ds.draw(i) for i in range(5)]
    before = [ds.draw(i) for i in range(20)]
    ds.set_epoch(1)
    assert [ds.draw(i) for i in range(20)] != before


def test_coco_bad_file(tmp_path):
    (tmp_path / "annotations").mkdir()
    (tmp_path / "train2017").mkdir()
    (tmp_path / "annotations" / "instances_train2017.json").write_text(json.dumps({"images": []}))
    with pytest.raises(InputError, match="lacks 'annotations', 'categories'"):
        CocoGroups(tmp_path)
    with pytest.raises(InputError, match="instances file not found"):
        CocoGroups(tmp_path, split="val2017")


def test_coco_rle_size_must_match_image(tmp_path):
    write_coco(tmp_path)
    path = tmp_path / "annotations" / "instances_train2017.json"
    data = json.loads(path.read_text())
    for ann in data["annotations"]:
        if ann["image_id"] == 1 and ann["category_id"] == 1 and ann["area"] > 4000:
            ann["segmentation"] = encode_rle(np.ones((50, 50), dtype=bool))
    path.write_text(json.dumps(data))
    ds = CocoGroups(tmp_path, group_size=2, min_images=2, length=30)
    bad = next(i for i in range(30) if 1 in ds.draw(i)[1])
    with pytest.raises(
        InputError, match=r"RLE size \[50, 50\] disagrees with its image \(100x120\)"
    ):
        ds[bad]
