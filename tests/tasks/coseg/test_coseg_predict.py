"""The coseg predictor and ``cmseg predict coseg`` (then ``cmseg evaluate coseg``)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from cmseg.cli import main
from cmseg.config import RunConfig, load_config
from cmseg.engine.trainer import Trainer
from cmseg.errors import InputError
from cmseg.io import read_grey, read_image, write_png
from cmseg.metrics.masks import binarize_soft_map
from cmseg.predictors import CosegPredictor
from cmseg.tasks.coseg.train import build_training

ROOT = Path(__file__).resolve().parents[3]
TINY = ROOT / "configs" / "coseg" / "ssnm_tiny.yaml"

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def checkpoint(synth, tmp_path, monkeypatch) -> Path:
    """A checkpoint of the real ssnm_tiny trained one step on the synthetic groups."""
    monkeypatch.setenv("CMSEG_PROGRESS", "0")
    out = tmp_path / "run"
    cfg = load_config(
        RunConfig,
        TINY,
        [f"data.root={synth}", f"output_dir={out}", "model.image_size=64", "data.batch_size=2",
         "data.num_workers=0", "data.options.group_size=3", "train.device=cpu",
         "train.max_steps=1", "train.tensorboard=false"],
    )  # fmt: skip
    torch.manual_seed(0)
    Trainer.from_setup(build_training(cfg), cfg).fit()
    return out / "last"


def run_cli(capsys, *args: str) -> tuple[int, str]:
    code = main(list(args))
    return code, capsys.readouterr().err


# --------------------------------------------------------------------------------------------
# Predictor


def test_a_group_of_any_size_gives_maps_at_each_image_size(checkpoint):
    predictor = CosegPredictor.from_checkpoint(checkpoint, device="cpu")
    assert predictor.category_names == ["circle", "square", "triangle"]
    rng = np.random.default_rng(0)
    sizes = [(40, 70), (64, 64), (90, 33), (17, 25)]
    images = [rng.integers(0, 255, (h, w, 3), dtype=np.uint8) for h, w in sizes]
    maps = predictor.predict(images)
    assert [m.shape for m in maps] == sizes
    assert all(m.dtype == np.float32 and 0 <= m.min() and m.max() <= 1 for m in maps)
    assert set(predictor.categories()) == {"circle", "square", "triangle"}
    # the two-phase form and several groups at once give the same maps
    predictor.set_group(images[:2])
    two = predictor.predict()
    assert predictor.predict() is two  # computed once
    both = predictor.predict_groups([images[:2], images[2:], images[:3]])
    assert [len(g) for g in both] == [2, 2, 3]
    for a, b in zip(both[0], two, strict=True):
        assert np.allclose(a, b, atol=1e-6)
    with pytest.raises(ValueError, match="group of 2 or more"):
        predictor.predict(images[:1])


@pytest.mark.parametrize("modulator", ["semantic_modulator", "spatial_modulator"])
def test_the_ablations_train_and_predict(synth, tmp_path, monkeypatch, modulator):
    """Without the semantic modulator the model has no co-category head: no classification
    loss, no category scores; without the spatial one the spatial mask is zeros."""
    monkeypatch.setenv("CMSEG_PROGRESS", "0")
    cfg = load_config(
        RunConfig,
        TINY,
        [f"data.root={synth}", f"output_dir={tmp_path}", "model.image_size=64",
         "data.batch_size=2", "data.num_workers=0", "data.options.group_size=3",
         "train.device=cpu", "train.max_steps=1", "train.tensorboard=false",
         f"model.options.{modulator}=false"],
    )  # fmt: skip
    Trainer.from_setup(build_training(cfg), cfg).fit()
    predictor = CosegPredictor.from_checkpoint(tmp_path / "last", device="cpu")
    images = [np.zeros((40, 50, 3), np.uint8), np.full((64, 32, 3), 200, np.uint8)]
    assert [m.shape for m in predictor.predict(images)] == [(40, 50), (64, 32)]
    names = {"circle", "square", "triangle"}
    assert set(predictor.categories()) == (set() if modulator == "semantic_modulator" else names)


def test_predictor_refuses_a_checkpoint_of_another_task(checkpoint, tmp_path):
    meta = json.loads((checkpoint / "meta.json").read_text())
    meta["config"]["task"] = "ris"
    folder = tmp_path / "other"
    shutil.copytree(checkpoint, folder)
    (folder / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(InputError, match="not a 'coseg' one"):
        CosegPredictor.from_checkpoint(folder, device="cpu")


# --------------------------------------------------------------------------------------------
# CLI


def test_predict_a_processed_set_then_evaluate(checkpoint, synth, tmp_path, capsys):
    out = tmp_path / "pred"
    code, err = run_cli(
        capsys, "predict", "coseg", "--checkpoint", str(checkpoint), "--input",
        str(synth / "test"), "--group-size", "3", "--device", "cpu", "--out", str(out), "-q",
    )  # fmt: skip
    assert code == 0, err
    written = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.png"))
    expected = sorted(
        p.relative_to(synth / "test" / "image").with_suffix(".png").as_posix()
        for p in (synth / "test" / "image").rglob("*.jpg")
    )
    assert written == expected  # every image once (the completed groups wrote no extra)
    image = next((synth / "test" / "image").rglob("*.jpg"))
    png = out / image.relative_to(synth / "test" / "image").with_suffix(".png")
    assert read_grey(png).shape == read_image(image).shape[:2]
    code, err = run_cli(
        capsys, "evaluate", "coseg", "--pred", str(out), "--gt",
        str(synth / "test" / "groundtruth"), "--out", str(tmp_path / "r.json"), "-q",
    )  # fmt: skip
    assert code == 0, err
    result = json.loads((tmp_path / "r.json").read_text())
    metrics = result["metrics"] if "metrics" in result else result["results"][0]["metrics"]
    assert 0 <= metrics["J"] <= 1 and metrics["num_items"] == len(expected)


def test_written_maps_are_the_predictor_maps(checkpoint, synth, tmp_path, capsys):
    """A class is one group by default; the PNG is round(p x 255), or with --binary the
    adaptive-threshold mask."""
    folder = synth / "test" / "image" / "circle"
    paths = sorted(folder.glob("*.jpg"))
    maps = CosegPredictor.from_checkpoint(checkpoint, device="cpu").predict(
        [read_image(p) for p in paths]
    )
    for flag, out in (("", tmp_path / "soft"), ("--binary", tmp_path / "bin")):
        code, err = run_cli(
            capsys, "predict", "coseg", "--checkpoint", str(checkpoint), "--input",
            str(folder), "--device", "cpu", "--out", str(out), "-q", *([flag] if flag else []),
        )  # fmt: skip
        assert code == 0, err
        for path, prob in zip(paths, maps, strict=True):
            png = read_grey(out / f"{path.stem}.png")  # one folder: one group, <out>/<name>.png
            if flag:
                assert (png == binarize_soft_map(prob)[0] * np.uint8(255)).all()
            else:
                assert np.abs(png.astype(int) - np.round(prob * 255)).max() <= 0
            assert png.shape == read_image(path).shape[:2]


def test_class_folders_and_the_remainder_rule(checkpoint, synth, tmp_path, capsys):
    """Plain class folders; a class of 5 in groups of 3: (0 1 2) and (3 4 0), image 0 written
    once, from its first group."""
    src = tmp_path / "photos"
    for cls in ("circle", "square"):
        shutil.copytree(synth / "test" / "image" / cls, src / cls)
    out = tmp_path / "pred"
    code, err = run_cli(
        capsys, "predict", "coseg", "--checkpoint", str(checkpoint), "--input", str(src),
        "--group-size", "3", "--device", "cpu", "--out", str(out), "-q",
    )  # fmt: skip
    assert code == 0, err
    assert sorted(p.parent.name for p in out.rglob("*.png")) == ["circle"] * 5 + ["square"] * 5
    paths = sorted((src / "circle").glob("*.jpg"))
    predictor = CosegPredictor.from_checkpoint(checkpoint, device="cpu")
    first = predictor.predict([read_image(p) for p in paths[:3]])
    second = predictor.predict([read_image(p) for p in paths[3:] + paths[:1]])
    expect = {paths[i].stem: m for i, m in enumerate(first)}
    expect.update({paths[3].stem: second[0], paths[4].stem: second[1]})
    for stem, prob in expect.items():
        png = read_grey(out / "circle" / f"{stem}.png")
        assert (png == np.round(prob * 255).astype(np.uint8)).all(), stem


def test_bad_inputs_are_one_line_errors(checkpoint, synth, tmp_path, capsys, caplog):
    lonely = tmp_path / "lonely"
    (lonely / "cat").mkdir(parents=True)
    shutil.copy(next((synth / "test" / "image" / "circle").glob("*.jpg")), lonely / "cat")
    shutil.copytree(synth / "test" / "image" / "square", lonely / "dog")
    code, err = run_cli(
        capsys, "predict", "coseg", "--checkpoint", str(checkpoint), "--input", str(lonely),
        "--out", str(tmp_path / "o1"),
    )  # fmt: skip
    assert code == 2 and f"{lonely / 'cat'}: holds 1 image(s)" in err
    assert err.count("\n") == 1 and not (tmp_path / "o1").exists()

    broken = tmp_path / "broken"
    shutil.copytree(synth / "test" / "image" / "square", broken / "square")
    bad = sorted((broken / "square").glob("*.jpg"))[1]
    bad.write_bytes(bad.read_bytes()[:200])  # truncated
    code, err = run_cli(
        capsys, "predict", "coseg", "--checkpoint", str(checkpoint), "--input", str(broken),
        "--device", "cpu", "--out", str(tmp_path / "o2"), "--group-size", "2",
    )  # fmt: skip
    assert code == 2 and "2 image(s) failed" in err
    assert f"error: {bad}: corrupt or truncated image" in caplog.text
    assert "its group holds" in caplog.text  # the other image of its group is listed too
    assert len(list((tmp_path / "o2" / "square").glob("*.png"))) == 3  # the other groups

    meta = json.loads((checkpoint / "meta.json").read_text())
    meta["config"]["task"] = "sod"
    other = tmp_path / "other"
    shutil.copytree(checkpoint, other)
    (other / "meta.json").write_text(json.dumps(meta))
    code, err = run_cli(
        capsys, "predict", "coseg", "--checkpoint", str(other), "--input",
        str(synth / "test"), "--out", str(tmp_path / "o3"),
    )  # fmt: skip
    assert code == 2 and "not a 'coseg' one" in err and err.count("\n") == 1


def test_skip_existing_predicts_whole_groups_and_writes_only_the_missing(
    checkpoint, synth, tmp_path, capsys
):
    folder = synth / "test" / "image" / "circle"
    out = tmp_path / "pred"
    args = ["predict", "coseg", "--checkpoint", str(checkpoint), "--input", str(folder),
            "--device", "cpu", "--out", str(out), "-q"]  # fmt: skip
    assert run_cli(capsys, *args)[0] == 0
    victim = sorted(out.glob("*.png"))[2]
    kept = {p.name: p.read_bytes() for p in out.glob("*.png")}
    victim.unlink()
    write_png(out / "unrelated.png", np.zeros((2, 2), np.uint8))
    assert run_cli(capsys, *args, "--skip-existing")[0] == 0
    assert {p.name: p.read_bytes() for p in out.glob("*.png") if p.name != "unrelated.png"} == kept
