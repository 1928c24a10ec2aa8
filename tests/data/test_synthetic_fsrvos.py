"""Synthetic few-shot RVOS in the Mini-Ref-YouTube-VOS layout: classes, folds, expressions."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cmseg.data.synthetic import write_synthetic
from cmseg.data.synthetic.draw import SHAPES
from cmseg.data.synthetic.fsrvos import folds
from cmseg.errors import ConfigError


@pytest.fixture(scope="module")
def fs_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("fsrvos") / "mini"
    write_synthetic("fsrvos", out, n=24, size=48, seed=6)
    return out


def test_layout(fs_root: Path) -> None:
    assert sorted(p.name for p in fs_root.iterdir()) == [
        "categories.json", "cmseg_synth.json", "meta_expressions", "train",
    ]  # fmt: skip
    assert sorted(p.name for p in (fs_root / "train").iterdir()) == [
        "Annotations",
        "JPEGImages",
        "meta.json",
    ]
    assert (fs_root / "meta_expressions" / "train" / "meta_expressions.json").is_file()
    cats = json.loads((fs_root / "categories.json").read_text())
    assert cats == {name: i + 1 for i, name in enumerate(SHAPES)}
    assert len(cats) >= 8


def test_classes_and_folds(fs_root: Path) -> None:
    cats = json.loads((fs_root / "categories.json").read_text())
    meta = json.loads((fs_root / "train" / "meta.json").read_text())["videos"]
    exps = json.loads(
        (fs_root / "meta_expressions" / "train" / "meta_expressions.json").read_text()
    )["videos"]
    videos_per_class: dict[str, int] = {}
    for vid, v in exps.items():
        assert v["expressions"], vid
        # every expression refers to an object of the video's class (CMA: last expression's)
        classes = {meta[vid]["objects"][e["obj_id"]]["category"] for e in v["expressions"].values()}
        assert len(classes) == 1
        cls = classes.pop()
        videos_per_class[cls] = videos_per_class.get(cls, 0) + 1
        assert (
            sorted(p.stem for p in (fs_root / "train" / "JPEGImages" / vid).iterdir())
            == v["frames"]
        )
    assert set(videos_per_class) == set(cats) and min(videos_per_class.values()) >= 2
    f = folds(12)
    assert sorted(sum(f.values(), [])) == sorted(cats)
    for g, names in f.items():
        assert len(names) == 3 and all((cats[n] - 1) % 4 == g - 1 for n in names)


def test_fewer_classes_and_errors(tmp_path: Path) -> None:
    summary = write_synthetic("fsrvos", tmp_path / "f", n=16, size=48, seed=0, classes=8)
    assert summary["videos_per_class"] == {name: 2 for name in SHAPES[:8]}
    assert {g: len(v) for g, v in summary["folds"].items()} == {"1": 2, "2": 2, "3": 2, "4": 2}
    with pytest.raises(ConfigError, match="classes"):
        write_synthetic("fsrvos", tmp_path / "g", n=16, size=48, classes=7)
    with pytest.raises(ConfigError, match="2 videos per class"):
        write_synthetic("fsrvos", tmp_path / "h", n=10, size=48)


def test_deterministic(tmp_path: Path) -> None:
    def tree(root: Path) -> dict[str, bytes]:
        return {
            str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
        }

    write_synthetic("fsrvos", tmp_path / "a", n=16, size=32, seed=3, classes=8)
    write_synthetic("fsrvos", tmp_path / "b", n=16, size=32, seed=3, classes=8, workers=2)
    assert tree(tmp_path / "a") == tree(tmp_path / "b")


def test_reader_reads_it(fs_root: Path) -> None:
    check = pytest.importorskip("cmseg.data.check")
    assert check.check_dataset("fsrvos", fs_root) == []
