"""Synthetic SOD scenes: layout, determinism, the aux-map difficulty gap, corruptions, options."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from cmseg.data.synthetic import MARKER, SYNTH_WRITERS, draw, task_options, write_synthetic
from cmseg.data.synthetic.sod import (
    Corruption,
    aux_blob_baseline,
    corrupt_aux,
    difficulty,
    make_scene,
    rgb_blob_baseline,
    write_corrupted_set,
)
from cmseg.errors import ConfigError, InputError
from cmseg.io import read_aux, read_image, read_mask


def _tree(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def test_writers_cover_every_task() -> None:
    assert set(SYNTH_WRITERS) == {"sod", "coseg", "ris", "rvos", "fsrvos"}
    assert {"camouflage", "noise", "holes", "blur", "shift", "missing", "modality"} <= set(
        task_options("sod")
    )


def test_layout_and_files(tmp_path: Path) -> None:
    out = tmp_path / "sod"
    summary = write_synthetic("sod", out, n=10, size=64, seed=3)
    assert summary["sets"] == {"train": 8, "test": 2}
    assert summary["n"] == 10 and summary["size"] == 64 and summary["seed"] == 3
    assert sorted(p.name for p in out.iterdir()) == [MARKER, "test", "train"]
    for set_name, names in (("train", range(8)), ("test", range(8, 10))):
        for folder, ext in (("RGB", ".jpg"), ("depth", ".png"), ("GT", ".png")):
            found = sorted(p.name for p in (out / set_name / folder).iterdir())
            assert found == [f"{i:05d}{ext}" for i in names]
    rgb = read_image(out / "train" / "RGB" / "00000.jpg")
    aux, valid = read_aux(out / "train" / "depth" / "00000.png")
    gt = cv2.imread(str(out / "train" / "GT" / "00000.png"), cv2.IMREAD_UNCHANGED)
    assert rgb.shape == (64, 64, 3) and aux.shape == (64, 64) and valid.all()
    assert gt.dtype == np.uint8 and set(np.unique(gt)) == {0, 255}
    assert read_mask(out / "train" / "GT" / "00000.png", strict=True).any()
    marker = json.loads((out / MARKER).read_text())
    assert marker["task"] == "sod" and marker["options"]["modality"] == "depth"
    assert "seconds" not in marker


def test_thermal_uses_T_folder(tmp_path: Path) -> None:
    write_synthetic("sod", tmp_path / "t", n=3, size=48, seed=0, modality="thermal")
    assert sorted(p.name for p in (tmp_path / "t" / "train").iterdir()) == ["GT", "RGB", "T"]


def test_deterministic_for_a_seed_and_any_worker_count(tmp_path: Path) -> None:
    write_synthetic("sod", tmp_path / "a", n=6, size=48, seed=7, workers=1)
    write_synthetic("sod", tmp_path / "b", n=6, size=48, seed=7, workers=2)
    write_synthetic("sod", tmp_path / "c", n=6, size=48, seed=8, workers=1)
    a, b, c = (_tree(tmp_path / x) for x in "abc")
    assert a == b
    assert a.keys() == c.keys() and a != c


def test_salient_object_is_neither_largest_nor_most_colourful() -> None:
    for i in range(40):
        rng = draw.item_rng(0, "sod", i)
        rgb, aux, gt, info = make_scene(rng, 96)
        t = info["target"]
        assert info["areas"][t] < max(info["areas"])
        assert info["saturations"][t] < max(info["saturations"])
        assert 3 <= len(info["shapes"]) <= 6 and gt.any()
        # The aux map singles it out: the GT is nearer than the rest on average.
        assert aux[gt].mean() > aux[~gt].mean() + 60


@pytest.mark.parametrize("options", [{}, {"camouflage": 1.0}, {"modality": "thermal"}])
def test_difficulty_gap(tmp_path: Path, options: dict) -> None:
    out = tmp_path / "sod"
    write_synthetic("sod", out, n=60, size=128, seed=11, test_fraction=0.0, **options)
    result = difficulty(out, "train")
    assert result["images"] == 60
    assert result["S_aux_blob"] >= result["S_rgb_blob"] + 0.15, result


def test_blob_baselines_shapes() -> None:
    rgb, aux, gt, _ = make_scene(draw.item_rng(1, "sod", 0), 64)
    for pred in (rgb_blob_baseline(rgb), aux_blob_baseline(aux)):
        assert pred.shape == (64, 64) and pred.dtype == np.uint8
        assert set(np.unique(pred)) <= {0, 255}


def test_corruptions() -> None:
    rng = np.random.default_rng(0)
    aux = np.zeros((64, 64), np.float32)
    aux[20:40, 20:40] = 1.0
    same = corrupt_aux(aux, rng, Corruption())
    assert np.array_equal(same, aux)
    holes = corrupt_aux(np.full((64, 64), 0.5, np.float32), rng, Corruption(holes=0.25))
    assert 0.2 <= (holes == 0).mean() <= 0.3
    shifted = corrupt_aux(aux, rng, Corruption(shift=8))
    assert not np.array_equal(shifted, aux)
    assert abs(shifted.sum() - aux.sum()) / aux.sum() < 0.05  # moved, not erased
    blurred = corrupt_aux(aux, rng, Corruption(blur=3))
    assert 0 < blurred[19, 30] < 1
    noisy = corrupt_aux(aux, rng, Corruption(noise=0.1))
    assert 0.05 < np.std(noisy - aux) < 0.15 and noisy.min() >= 0 and noisy.max() <= 1
    assert not corrupt_aux(aux, rng, Corruption(missing=1.0)).any()
    with pytest.raises(ValueError):
        Corruption(holes=1.5)
    with pytest.raises(ValueError):
        Corruption(noise=-1)


def test_corrupted_copy(tmp_path: Path) -> None:
    out = tmp_path / "sod"
    write_synthetic("sod", out, n=30, size=96, seed=2, test_fraction=0.0)
    clean = difficulty(out, "train")
    info = write_corrupted_set(
        out, "train", tmp_path / "bad", noise=0.25, holes=0.3, shift=10, seed=1
    )
    assert info == {"set": "train", "aux_dir": "depth", "maps": 30, "copied": 60}
    for folder in ("RGB", "GT"):
        assert _tree(out / "train" / folder) == _tree(tmp_path / "bad" / "train" / folder)
    assert _tree(out / "train" / "depth") != _tree(tmp_path / "bad" / "train" / "depth")
    bad = difficulty(tmp_path / "bad", "train")
    assert bad["S_aux_blob"] < clean["S_aux_blob"] - 0.05
    assert bad["S_rgb_blob"] == pytest.approx(clean["S_rgb_blob"])
    again = tmp_path / "again"
    write_corrupted_set(out, "train", again, noise=0.25, holes=0.3, shift=10, seed=1)
    assert _tree(again) == _tree(tmp_path / "bad")


def test_corruption_at_generation(tmp_path: Path) -> None:
    write_synthetic("sod", tmp_path / "m", n=4, size=48, seed=0, missing=1.0)
    for p in (tmp_path / "m" / "train" / "depth").iterdir():
        assert not cv2.imread(str(p), cv2.IMREAD_UNCHANGED).any()


def test_option_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown option"):
        write_synthetic("sod", tmp_path / "x", n=2, size=48, colour=1)
    with pytest.raises(ConfigError, match="unknown task"):
        write_synthetic("depth", tmp_path / "x")
    with pytest.raises(ConfigError, match="n must"):
        write_synthetic("sod", tmp_path / "x", n=0)
    with pytest.raises(ConfigError, match="size must"):
        write_synthetic("sod", tmp_path / "x", n=1, size=8)
    with pytest.raises(ConfigError, match="seed must"):
        write_synthetic("sod", tmp_path / "x", n=1, seed=-1)
    with pytest.raises(ConfigError, match="modality"):
        write_synthetic("sod", tmp_path / "x", n=1, size=48, modality="lidar")
    with pytest.raises(ConfigError, match="holes"):
        write_synthetic("sod", tmp_path / "x", n=1, size=48, holes=2.0)


def test_refuses_non_empty_folder_and_overwrites_own_output(tmp_path: Path) -> None:
    out = tmp_path / "o"
    out.mkdir()
    (out / "mine.txt").write_text("keep")
    with pytest.raises(InputError, match="not empty"):
        write_synthetic("sod", out, n=2, size=48)
    write_synthetic("sod", out, n=4, size=48, overwrite=True)
    write_synthetic("sod", out, n=2, size=48, overwrite=True)  # fewer scenes: no stale files
    assert len(list((out / "train" / "RGB").iterdir())) == 2
    assert (out / "mine.txt").read_text() == "keep"
