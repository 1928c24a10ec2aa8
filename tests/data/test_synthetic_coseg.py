"""Synthetic co-segmentation groups: layout, groups by name order, one common class, determinism."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from cmseg.data.synthetic import write_synthetic
from cmseg.data.synthetic.coseg import make_image, plan_groups
from cmseg.data.synthetic.draw import SHAPES, item_rng
from cmseg.errors import ConfigError


def _tree(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def test_layout_and_groups(tmp_path: Path) -> None:
    out = tmp_path / "coseg"
    summary = write_synthetic("coseg", out, n=9, size=64, seed=1, classes=3)
    # 3 classes x 3 groups: per class round(3 * 0.2) = 1 group to test
    assert summary["groups"] == {"train": 6, "test": 3}
    assert summary["images"] == {"train": 30, "test": 15}
    assert summary["groups_per_class"] == {"circle": 3, "square": 3, "triangle": 3}
    for split in ("train", "test"):
        assert sorted(p.name for p in (out / split).iterdir()) == ["groundtruth", "image"]
        for cls_dir in (out / split / "image").iterdir():
            assert cls_dir.name in SHAPES[:3]
            images = sorted(p.name for p in cls_dir.iterdir())
            gts = sorted(p.name for p in (out / split / "groundtruth" / cls_dir.name).iterdir())
            assert [Path(n).with_suffix(".png").name for n in images] == gts
            # sorted names, in consecutive chunks of 5, are exactly the groups
            assert len(images) % 5 == 0
            for k in range(0, len(images), 5):
                chunk = images[k : k + 5]
                assert {n.split("_")[0] for n in chunk} == {chunk[0].split("_")[0]}
            for name in gts:
                gt = cv2.imread(
                    str(out / split / "groundtruth" / cls_dir.name / name), cv2.IMREAD_UNCHANGED
                )
                assert gt.shape == (64, 64) and set(np.unique(gt)) <= {0, 255} and gt.any()
    listed = summary["group_list"]
    assert len(listed) == 9 and all(len(g["names"]) == 5 for g in listed)


def test_common_class_is_unique_by_construction() -> None:
    for classes in (2, 3, 12):
        for plan in plan_groups(40, seed=5, classes=classes, group_size=5, test_fraction=0.2):
            shared = set(SHAPES[:classes])
            for im in plan["images"]:
                assert plan["class"] not in im["distractors"]
                assert im["common"] in (1, 2) and len(im["distractors"]) <= 3
                shared &= {plan["class"], *im["distractors"]}
            assert shared == {plan["class"]}


def test_gt_is_the_common_class_only() -> None:
    rng = item_rng(0, "coseg", 0, 1)
    rgb, gt = make_image(rng, 96, "star", 2, ["circle", "square"])
    assert rgb.shape == (96, 96, 3) and gt.dtype == bool
    n, _ = cv2.connectedComponents(gt.astype(np.uint8))
    assert n - 1 == 2  # two separate star instances, nothing else


def test_deterministic(tmp_path: Path) -> None:
    write_synthetic("coseg", tmp_path / "a", n=4, size=48, seed=3, classes=2)
    write_synthetic("coseg", tmp_path / "b", n=4, size=48, seed=3, classes=2, workers=2)
    write_synthetic("coseg", tmp_path / "c", n=4, size=48, seed=4, classes=2)
    a, b, c = (_tree(tmp_path / x) for x in "abc")
    assert a == b and a != c


def test_reader_reads_it(tmp_path: Path) -> None:
    check = pytest.importorskip("cmseg.data.check")
    write_synthetic("coseg", tmp_path / "c", n=4, size=48, seed=0, classes=2)
    assert check.check_dataset("coseg", tmp_path / "c" / "train") == []


def test_option_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="classes"):
        write_synthetic("coseg", tmp_path / "x", n=2, size=48, classes=13)
    with pytest.raises(ConfigError, match="group_size"):
        write_synthetic("coseg", tmp_path / "x", n=2, size=48, group_size=0)
