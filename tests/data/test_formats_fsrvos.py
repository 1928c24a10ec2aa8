"""Few-shot RVOS episodes: Mini-Ref-YouTube-VOS folds and Mini-Ref-SAIL-VOS."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cmseg.data.formats import MiniRefSAILVOS, MiniRefYouTubeVOS
from cmseg.data.formats.fewshot import MINI_REF_YTVOS_CLASSES, SAIL_CLASSES, fold_class_ids
from cmseg.errors import InputError

H, W = 8, 8
N_FRAMES = 6


def _write_video(
    frames_dir: Path, ann_dir: Path, vid: str, value: int, ext: str = ".jpg"
) -> list[str]:
    frames = [f"{5 * t:05d}" for t in range(N_FRAMES)]
    (frames_dir / vid).mkdir(parents=True)
    (ann_dir / vid).mkdir(parents=True)
    for t, f in enumerate(frames):
        Image.fromarray(np.full((H, W, 3), 20 * t, dtype=np.uint8)).save(
            frames_dir / vid / f"{f}{ext}"
        )
        m = np.zeros((H, W), dtype=np.uint8)
        m[t % H, :] = value  # object `value` is row t
        if value == 2:
            m[(t + 4) % H, :2] = 1  # a second object in the same video
        Image.fromarray(m).save(ann_dir / vid / f"{f}.png")
    return frames


def make_mini_ytvos(root: Path, videos_per_class: dict[str, int] | None = None) -> Path:
    """Classes hat (id 1, fold-1 test), plant, hand, horse (ids 2-4); obj_id 2 in the odd videos,
    whose first expression is about obj 1 of another category (the class is the last one's)."""
    videos_per_class = videos_per_class or {"hat": 3, "plant": 2, "hand": 2, "horse": 2}
    train = root / "train"
    meta_exp, meta = {"videos": {}}, {"videos": {}}
    for cls, n in videos_per_class.items():
        for k in range(n):
            vid = f"{cls}{k}"
            obj = 2 if k % 2 else 1
            frames = _write_video(train / "JPEGImages", train / "Annotations", vid, obj)
            exps = {}
            objects = {str(obj): {"category": cls, "frames": frames}}
            if obj == 2:
                exps["0"] = {"exp": "a small thing", "obj_id": "1"}
                objects["1"] = {"category": "giraffe", "frames": frames}
            exps[str(len(exps))] = {"exp": f"the {cls} on the left", "obj_id": str(obj)}
            exps[str(len(exps))] = {"exp": f"a {cls} moving", "obj_id": str(obj)}
            meta_exp["videos"][vid] = {"expressions": exps, "frames": frames}
            meta["videos"][vid] = {"objects": objects}
    (root / "meta_expressions" / "train").mkdir(parents=True)
    (root / "meta_expressions" / "train" / "meta_expressions.json").write_text(json.dumps(meta_exp))
    (train / "meta.json").write_text(json.dumps(meta))
    return root


def test_class_list_and_folds():
    assert len(MINI_REF_YTVOS_CLASSES) == 48 and len(set(MINI_REF_YTVOS_CLASSES)) == 48
    ids = {name: i + 1 for i, name in enumerate(MINI_REF_YTVOS_CLASSES)}
    assert ids["hat"] == 1 and ids["dog"] == 28 and ids["sedan"] == 37 and ids["person"] == 48
    train, test = fold_class_ids(2, 48)
    assert len(test) == 12 and len(train) == 36
    assert [MINI_REF_YTVOS_CLASSES[i - 1] for i in test][:3] == ["plant", "squirrel", "penguin"]
    assert SAIL_CLASSES == ("dog", "car", "person")
    with pytest.raises(ValueError):
        fold_class_ids(5, 48)


def test_training_episodes(tmp_path):
    ds = MiniRefYouTubeVOS(
        make_mini_ytvos(tmp_path), fold=1, split="train", episodes_per_class=4, seed=7
    )
    assert ds.class_ids == [2, 3, 4] and len(ds) == 12
    for i in range(len(ds)):
        cid, supports, query = ds.episode(i)
        assert cid == ds.class_ids[i // 4]
        assert len(supports) == 1 and supports[0].vid != query.vid
        assert len(query.indices) == 5 and len(supports[0].indices) == 5
        assert list(query.indices) == list(range(query.indices[0], query.indices[0] + 5))
    ep = ds[5]
    assert set(ep) == {"support", "query", "class", "class_id"}
    assert ep["class"] == "hand" and ep["class_id"] == 3
    q, s = ep["query"], ep["support"][0]
    for clip in (q, s):
        assert clip["frames"].shape == (5, H, W, 3) and clip["masks"].shape == (5, H, W)
        assert clip["masks"].dtype == bool and set(clip) >= {
            "sentence",
            "video",
            "exp_id",
            "frame_ids",
        }
        obj = clip["obj_ids"][0]
        first = int(clip["frame_ids"][0]) // 5
        assert clip["masks"][0, first % H].all() == (obj in (1, 2))
    assert [ds.episode(i) for i in range(12)] == [ds.episode(i) for i in range(12)]
    before = [ds.episode(i) for i in range(12)]
    ds.set_epoch(3)
    assert [ds.episode(i) for i in range(12)] != before


def test_video_class_is_the_last_expressions_category(tmp_path):
    ds = MiniRefYouTubeVOS(make_mini_ytvos(tmp_path), fold=1, split="train", episodes_per_class=1)
    assert ds.fs.by_class[2] == ["plant0", "plant1"]  # plant1's first expression is a giraffe


def test_test_episodes_are_deterministic(tmp_path):
    make_mini_ytvos(tmp_path)
    ds = MiniRefYouTubeVOS(tmp_path, fold=1, split="test", run=0)
    assert ds.class_ids == [1]
    supports = {ds.episode(i)[1] for i in range(len(ds))}
    assert len(supports) == 1
    support = next(iter(supports))[0]
    # every (video, expression) of the two other hat videos is a query
    others = [v for v in ("hat0", "hat1", "hat2") if v != support.vid]
    assert len(ds) == sum(len(ds.videos[v].expressions) for v in others)
    assert sorted({ds.episode(i)[2].vid for i in range(len(ds))}) == others
    assert all(ds.episode(i)[2].vid != support.vid for i in range(len(ds)))
    ep = ds[0]
    assert ep["query"]["frames"].shape[0] == N_FRAMES and ep["support"][0]["frames"].shape[0] == 5
    again = MiniRefYouTubeVOS(tmp_path, fold=1, split="test", run=0)
    assert [again.episode(i) for i in range(len(again))] == [ds.episode(i) for i in range(len(ds))]
    runs = {
        MiniRefYouTubeVOS(tmp_path, fold=1, split="test", run=r).episode(0)[1] for r in range(8)
    }
    assert len(runs) > 1


def test_custom_categories_and_problems(tmp_path):
    make_mini_ytvos(tmp_path, {"red": 2, "blue": 2, "green": 1})
    ds = MiniRefYouTubeVOS(tmp_path, fold=1, split="train", episodes_per_class=2)
    assert ds.classes == ["blue", "green", "red"]  # not the official list: sorted names found
    # fold 1 trains on ids 2 (green) and 3 (red); green has a single video: no episode
    assert ds.fs.by_class[2] == ["green0"] and ds.class_ids == [3] and len(ds) == 2
    with pytest.raises(InputError, match="no test class with two or more videos"):
        MiniRefYouTubeVOS(tmp_path, fold=2, split="test")
    (tmp_path / "train" / "meta.json").unlink()
    with pytest.raises(InputError, match="meta.json: no such file"):
        MiniRefYouTubeVOS(tmp_path)


def make_sail(root: Path) -> Path:
    meta_exp, meta = {"videos": {}}, {"videos": {}}
    for cls, n in (("dog", 2), ("car", 3)):
        for k in range(n):
            vid = f"{cls}_{k}"
            frames = _write_video(root / "Images", root / "Annotations", vid, 3, ext=".bmp")
            meta_exp["videos"][vid] = {
                "expressions": {"0": {"exp": f"the {cls}", "obj_id": "1"}},
                "frames": frames,
            }
            meta["videos"][vid] = {"objects": {"1": {"category": cls, "frames": frames}}}
    (root / "meta_expressions.json").write_text(json.dumps(meta_exp))
    (root / "meta.json").write_text(json.dumps(meta))
    return root


def test_sail_test_episodes_binarise_masks(tmp_path):
    ds = MiniRefSAILVOS(make_sail(tmp_path))
    assert ds.classes == list(SAIL_CLASSES) and ds.class_ids == [1, 2]
    assert len(ds) == 1 + 2  # dog: 1 query video, car: 2
    ep = ds[0]
    assert ep["class"] == "dog"
    q = ep["query"]
    assert q["frames"].shape == (N_FRAMES, H, W, 3)
    assert all(q["masks"][t, t % H].all() for t in range(N_FRAMES))  # value 3 counts as the object


def test_categories_json_defines_class_ids(tmp_path):
    make_mini_ytvos(tmp_path, {"red": 2, "blue": 2, "green": 2})
    (tmp_path / "categories.json").write_text(json.dumps({"green": 1, "red": 2, "blue": 3}))
    ds = MiniRefYouTubeVOS(tmp_path, fold=1, split="test")
    assert ds.classes == ["green", "red", "blue"] and ds.class_ids == [1]
    assert ds[0]["class"] == "green"
    (tmp_path / "categories.json").write_text(json.dumps({"green": 1, "red": 3}))
    with pytest.raises(InputError, match="class ids must be the integers 1..2"):
        MiniRefYouTubeVOS(tmp_path)
