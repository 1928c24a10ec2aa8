"""Synthetic RVOS: Ref-YouTube-VOS and MeViS layouts, unique referents re-derived from the
files, motion-only expressions, determinism."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as mask_utils

from cmseg.data.synthetic import write_synthetic
from cmseg.data.synthetic.draw import COLOURS, item_rng
from cmseg.data.synthetic.ris import RIS_COLOURS
from cmseg.data.synthetic.rvos import clip_expressions, parse_expression, plan_objects
from cmseg.io import read_image, read_index_mask

SIZE = 96


@pytest.fixture(scope="module")
def ytvos_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("rvos") / "ytvos"
    write_synthetic("rvos", out, n=20, size=SIZE, seed=5)
    return out


def _tree(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def _colour(rgb: np.ndarray) -> str:
    palette = np.array([COLOURS[c] for c in RIS_COLOURS], np.float32)
    return RIS_COLOURS[int(np.argmin(((palette - rgb) ** 2).sum(axis=1)))]


def _objects_from_disk(
    split_dir: Path, vid: str, frames: list[str], meta: dict
) -> dict[str, tuple]:
    """obj_id -> (shape, colour, motion), from meta.json, the frames and the annotations."""
    labels = [read_index_mask(split_dir / "Annotations" / vid / f"{f}.png") for f in frames]
    out = {}
    for obj_id, info in meta["videos"][vid]["objects"].items():
        k = int(obj_id)
        seen = [t for t, lab in enumerate(labels) if (lab == k).any()]
        centres = [np.argwhere(labels[t] == k).mean(axis=0) for t in (seen[0], seen[-1])]
        dy, dx = centres[1] - centres[0]
        if max(abs(dx), abs(dy)) < 0.1 * SIZE:
            motion = "still"
        elif abs(dx) > abs(dy):
            motion = "right" if dx > 0 else "left"
        else:
            motion = "down" if dy > 0 else "up"
        t = seen[0]
        rgb = read_image(split_dir / "JPEGImages" / vid / f"{frames[t]}.jpg").astype(np.float32)
        out[obj_id] = (info["category"], _colour(np.median(rgb[labels[t] == k], axis=0)), motion)
    return out


def test_ytvos_layout(ytvos_root: Path) -> None:
    assert sorted(p.name for p in ytvos_root.iterdir()) == [
        "cmseg_synth.json", "meta_expressions", "train", "valid",
    ]  # fmt: skip
    for split, n_videos in (("train", 16), ("valid", 4)):
        split_dir = ytvos_root / split
        assert sorted(p.name for p in split_dir.iterdir()) == [
            "Annotations",
            "JPEGImages",
            "meta.json",
        ]
        exps = json.loads(
            (ytvos_root / "meta_expressions" / split / "meta_expressions.json").read_text()
        )
        meta = json.loads((split_dir / "meta.json").read_text())
        assert len(exps["videos"]) == n_videos and set(meta["videos"]) == set(exps["videos"])
        for vid, v in exps["videos"].items():
            frames = v["frames"]
            assert 8 <= len(frames) <= 24 and frames == [f"{5 * t:05d}" for t in range(len(frames))]
            assert sorted(p.stem for p in (split_dir / "JPEGImages" / vid).iterdir()) == frames
            assert sorted(p.stem for p in (split_dir / "Annotations" / vid).iterdir()) == frames
            assert list(v["expressions"]) == [str(i) for i in range(len(v["expressions"]))]
            objects = meta["videos"][vid]["objects"]
            assert 2 <= len(objects) <= 4
            for e in v["expressions"].values():
                assert set(e) == {"exp", "obj_id"} and isinstance(e["obj_id"], str)
                assert e["obj_id"] in objects
            for info in objects.values():
                assert set(info) == {"category", "frames"} and set(info["frames"]) <= set(frames)
    ann = Image.open(next((ytvos_root / "train" / "Annotations").rglob("*.png")))
    assert ann.mode == "P" and ann.getpalette()[:6] == [0, 0, 0, 128, 0, 0]


def test_every_expression_refers_to_exactly_its_object(ytvos_root: Path) -> None:
    n_expressions = n_motion_only = 0
    for split in ("train", "valid"):
        split_dir = ytvos_root / split
        exps = json.loads(
            (ytvos_root / "meta_expressions" / split / "meta_expressions.json").read_text()
        )
        meta = json.loads((split_dir / "meta.json").read_text())
        for vid, v in exps["videos"].items():
            objs = _objects_from_disk(split_dir, vid, v["frames"], meta)
            for e in v["expressions"].values():
                shape, colour, motion = parse_expression(e["exp"])
                fits = [
                    k for k, (s, c, m) in objs.items()
                    if (shape is None or s == shape) and (colour is None or c == colour)
                    and (motion is None or m == motion)
                ]  # fmt: skip
                assert fits == [e["obj_id"]], (vid, e, objs)
                n_expressions += 1
                target = objs[e["obj_id"]]
                same_look = [k for k, o in objs.items() if o[:2] == target[:2]]
                if len(same_look) > 1:  # only motion can tell: the expression must name it
                    assert motion is not None
                    n_motion_only += 1
    assert n_expressions > 50
    assert n_motion_only / n_expressions >= 0.15


def test_motion_only_flag_by_construction() -> None:
    for i in range(50):
        rng = item_rng(0, "rvos", i)
        objs = plan_objects(rng, twin_prob=1.0)
        assert objs[0]["shape"] == objs[1]["shape"] and objs[0]["colour"] == objs[1]["colour"]
        assert objs[0]["motion"] != objs[1]["motion"]
        for e in clip_expressions(objs, rng):
            shape, colour, motion = parse_expression(e["exp"])
            fits = [
                k
                for k, o in enumerate(objs)
                if (shape is None or o["shape"] == shape)
                and (colour is None or o["colour"] == colour)
                and (motion is None or o["motion"] == motion)
            ]
            assert fits == [e["obj"]]
            if e["obj"] in (0, 1):
                assert e["motion_only"] and motion is not None


def test_parse_expression() -> None:
    assert parse_expression("the square moving up") == ("square", None, "up")
    assert parse_expression("the red circle that moves to the left") == ("circle", "red", "left")
    assert parse_expression("the object standing still") == (None, None, "still")
    assert parse_expression("the blue star") == ("star", "blue", None)


def test_mevis_layout(tmp_path: Path) -> None:
    out = tmp_path / "mevis"
    summary = write_synthetic("rvos", out, n=10, size=64, seed=2, layout="mevis", twin_prob=1.0)
    assert sorted(p.name for p in out.iterdir()) == ["cmseg_synth.json", "train", "valid_u"]
    multi = 0
    for split in ("train", "valid_u"):
        d = out / split
        assert sorted(p.name for p in d.iterdir()) == [
            "JPEGImages",
            "mask_dict.json",
            "meta_expressions.json",
        ]
        exps = json.loads((d / "meta_expressions.json").read_text())
        masks = json.loads((d / "mask_dict.json").read_text())
        used = set()
        for vid, v in exps["videos"].items():
            frames = v["frames"]
            assert frames == [f"{t:05d}" for t in range(len(frames))]
            assert sorted(p.stem for p in (d / "JPEGImages" / vid).iterdir()) == frames
            for e in v["expressions"].values():
                assert set(e) == {"exp", "obj_id", "anno_id"}
                assert len(e["obj_id"]) == len(e["anno_id"]) >= 1
                assert all(isinstance(x, int) for x in e["obj_id"] + e["anno_id"])
                multi += len(e["obj_id"]) > 1
                for a in e["anno_id"]:
                    used.add(a)
                    rles = masks[str(a)]
                    assert len(rles) == len(frames)
                    rle = next(r for r in rles if r is not None)
                    assert rle["size"] == [64, 64] and isinstance(rle["counts"], str)
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore", DeprecationWarning)
                        assert mask_utils.decode(rle).any()
        assert used <= {int(k) for k in masks}
    assert (
        multi
        == summary["splits"]["train"]["multi_object"] + summary["splits"]["valid_u"]["multi_object"]
    )
    assert multi > 0


def test_deterministic(tmp_path: Path) -> None:
    write_synthetic("rvos", tmp_path / "a", n=3, size=48, seed=1)
    write_synthetic("rvos", tmp_path / "b", n=3, size=48, seed=1, workers=2)
    write_synthetic("rvos", tmp_path / "c", n=3, size=48, seed=2)
    a, b, c = (_tree(tmp_path / x) for x in "abc")
    assert a == b and a != c


def test_readers_read_them(ytvos_root: Path, tmp_path: Path) -> None:
    check = pytest.importorskip("cmseg.data.check")
    assert check.check_dataset("rvos", ytvos_root) == []
    write_synthetic("rvos", tmp_path / "m", n=4, size=48, seed=0, layout="mevis")
    assert check.check_dataset("rvos", tmp_path / "m") == []
