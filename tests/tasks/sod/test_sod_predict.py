"""`SODPredictor` and `cmseg predict sod`: files and folders, pairing by name, odd aux maps,
--skip-existing, one-line errors."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from cmseg.cli import main
from cmseg.config import RunConfig, load_config, to_dict
from cmseg.engine.checkpoint import save_checkpoint
from cmseg.errors import InputError
from cmseg.io import read_grey, write_png
from cmseg.models import build_model
from cmseg.predictors import SODPredictor
from cmseg.tasks.sod.process import final_logits, postprocess, preprocess

ROOT = Path(__file__).resolve().parents[3]
TINY = ROOT / "configs" / "sod" / "xmsnet_tiny.yaml"
ENV = {**os.environ, "CMSEG_PROGRESS": "0", "OMP_NUM_THREADS": "1"}


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def make_checkpoint(folder: Path, *overrides: str) -> Path:
    """An (untrained) xmsnet_tiny checkpoint at 64 px, as `cmseg train` would write it."""
    cfg = load_config(RunConfig, TINY, ["model.image_size=64", *overrides])
    torch.manual_seed(0)
    model = build_model("xmsnet_tiny")
    with torch.no_grad():  # make the output depend visibly on the input
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.01)
    return save_checkpoint(
        folder, model.state_dict(), step=1, model_name="xmsnet_tiny", config=to_dict(cfg)
    )


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    return make_checkpoint(tmp_path_factory.mktemp("ckpt") / "best")


@pytest.fixture(scope="module")
def predictor(checkpoint) -> SODPredictor:
    return SODPredictor.from_checkpoint(checkpoint, device="cpu")


def images(rng: np.random.Generator, h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    rgb = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    depth = np.zeros((h, w), np.uint8)
    depth[h // 4 : 3 * h // 4, w // 4 : 3 * w // 4] = 200
    return rgb, depth


def write_image(path: Path, rgb: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_png(path, rgb)


# --------------------------------------------------------------------------------------------
# The Python API


def test_predictor_round_trip(checkpoint, predictor):
    assert predictor.image_size == 64 and not predictor.zero_aux
    assert not predictor.model.training
    rng = np.random.default_rng(0)
    rgb, depth = images(rng, 48, 80)
    predictor.set_image(rgb, depth)
    out = predictor.predict()
    assert out.dtype == np.uint8 and out.shape == (48, 80)
    assert out.min() == 0 and out.max() == 255
    assert predictor.predict() is out  # cached

    # the same as the shared pre/postprocessing around a plain forward pass
    model = build_model("xmsnet_tiny")
    from cmseg.engine.checkpoint import load_checkpoint

    model.load_state_dict(load_checkpoint(checkpoint)[0])
    image, aux = preprocess(rgb, depth, 64)
    with torch.no_grad():
        manual = postprocess(final_logits(model.eval(), image[None], aux[None])[0], (48, 80))
    assert np.abs(manual.astype(int) - out.astype(int)).max() <= 1

    other = images(rng, 30, 30)
    maps = predictor.predict_batch([(rgb, depth), other])
    assert [m.shape for m in maps] == [(48, 80), (30, 30)]
    assert np.abs(maps[0].astype(int) - out.astype(int)).max() <= 1
    assert predictor.predict() is out  # predict_batch leaves set_image's inputs alone


def test_predict_before_set_image_is_a_clear_error(predictor):
    fresh = SODPredictor(predictor.model, image_size=64, device="cpu")
    with pytest.raises(RuntimeError, match="before set_image"):
        fresh.predict()
    with pytest.raises(ValueError, match="depth/thermal map"):
        fresh.set_image(np.zeros((32, 32, 3), np.uint8))  # this model needs an aux map


def test_predictor_takes_odd_aux_maps(predictor, caplog):
    rng = np.random.default_rng(1)
    rgb, _ = images(rng, 40, 60)
    raw = rng.uniform(0.5, 8.0, (20, 30))  # float64 metres, half the size
    raw[2:8, 3:9] = np.nan
    raw[0, :] = np.inf
    with caplog.at_level(logging.WARNING, logger="cmseg"):
        predictor.set_image(rgb, raw)
        out = predictor.predict()
    assert out.shape == (40, 60) and out.max() == 255
    assert "differs from the image" in caplog.text
    predictor.set_image(rgb, np.full((40, 60), np.nan))  # no valid pixel at all
    assert predictor.predict().shape == (40, 60)


def test_rgb_only_checkpoint_needs_no_aux(tmp_path):
    ckpt = make_checkpoint(tmp_path / "rgb_only", "data.options.zero_aux=true")
    predictor = SODPredictor.from_checkpoint(ckpt, device="cpu")
    assert predictor.zero_aux
    rgb, depth = images(np.random.default_rng(2), 32, 48)
    predictor.set_image(rgb)
    without = predictor.predict()
    predictor.set_image(rgb, depth)  # ignored
    assert np.array_equal(predictor.predict(), without)


def test_from_checkpoint_errors(tmp_path):
    with pytest.raises(InputError, match="no such checkpoint"):
        SODPredictor.from_checkpoint(tmp_path / "nowhere", device="cpu")
    bad = save_checkpoint(
        tmp_path / "bad",
        {"w": torch.zeros(1)},
        step=0,
        model_name="xmsnet_tiny",
        config=to_dict(load_config(RunConfig, TINY, ["model.image_size=64"])),
    )
    with pytest.raises(InputError, match="missing"):
        SODPredictor.from_checkpoint(bad, device="cpu")


# --------------------------------------------------------------------------------------------
# The command line


def cmseg(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cmseg", *args], capture_output=True, text=True, env=ENV, cwd=cwd
    )


def test_predict_cli_files_folders_odd_maps_and_skip_existing(checkpoint, tmp_path):
    rng = np.random.default_rng(3)
    rgb_dir, aux_dir, out = tmp_path / "rgb", tmp_path / "aux", tmp_path / "out"
    a, a_depth = images(rng, 64, 64)
    b, _ = images(rng, 60, 80)
    c, c_depth = images(rng, 50, 70)
    write_image(rgb_dir / "a.png", a)
    write_image(rgb_dir / "b.png", b)
    write_image(tmp_path / "single" / "c.png", c)  # a file given on its own
    write_image(aux_dir / "a.png", a_depth)
    b_depth = rng.uniform(1, 5, (60, 80)).astype(np.float32)
    b_depth[10:20, 10:30] = np.nan
    b_depth[0, 0], b_depth[1, 1] = np.inf, -np.inf
    np.save(aux_dir / "b.npy", b_depth)
    write_image(aux_dir / "c.png", c_depth[::2, ::2].copy())  # 35x25 for a 70x50 image
    write_image(aux_dir / "extra.png", a_depth)  # a map without an image is ignored

    args = ["predict", "sod", "--checkpoint", str(checkpoint), "--rgb", str(rgb_dir)]
    args += ["--rgb", str(tmp_path / "single" / "c.png"), "--aux", str(aux_dir)]
    args += ["--out", str(out), "--batch-size", "2", "--device", "cpu"]
    result = cmseg(*args, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in out.iterdir()) == ["a.png", "b.png", "c.png"]
    for name, rgb in (("a", a), ("b", b), ("c", c)):
        saliency = read_grey(out / f"{name}.png")
        assert saliency.shape == rgb.shape[:2]  # the original RGB size
        assert saliency.min() == 0 and saliency.max() == 255
    warnings = [line for line in result.stderr.splitlines() if "differs from the image" in line]
    assert len(warnings) == 1 and "c.png" in warnings[0] and "35x25" in warnings[0]
    assert "Traceback" not in result.stderr

    # --skip-existing: nothing to do, nothing touched, no model loaded
    mtimes = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    result = cmseg(*args, "--skip-existing", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == mtimes
    assert "nothing to do" in result.stderr

    # only the missing map is recomputed (in-process: torch is already loaded here)
    (out / "b.png").unlink()
    assert main([*args, "--skip-existing"]) == 0
    assert (out / "b.png").is_file()
    assert all((out / n).stat().st_mtime_ns == mtimes[n] for n in ("a.png", "c.png"))
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temporary files left


def test_predict_cli_single_file_pair_with_other_names(checkpoint, tmp_path):
    rgb, depth = images(np.random.default_rng(4), 40, 40)
    write_image(tmp_path / "photo.png", rgb)
    write_image(tmp_path / "photo_depth.png", depth)
    code = main(
        [
            "predict", "sod", "--checkpoint", str(checkpoint),
            "--rgb", str(tmp_path / "photo.png"), "--aux", str(tmp_path / "photo_depth.png"),
            "--out", str(tmp_path / "out"), "--device", "cpu",
        ]
    )  # fmt: skip
    assert code == 0
    assert read_grey(tmp_path / "out" / "photo.png").shape == (40, 40)


def test_predict_cli_missing_partner_is_one_line(checkpoint, tmp_path):
    rng = np.random.default_rng(5)
    for name in ("x", "y", "z"):
        write_image(tmp_path / "rgb" / f"{name}.png", images(rng, 32, 32)[0])
    write_image(tmp_path / "aux" / "x.png", images(rng, 32, 32)[1])
    result = cmseg(
        "predict", "sod", "--checkpoint", str(checkpoint), "--rgb", str(tmp_path / "rgb"),
        "--aux", str(tmp_path / "aux"), "--out", str(tmp_path / "out"),
        cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: ")
    assert "2 image(s)" in result.stderr and "y.png" in result.stderr and "z.png" in result.stderr
    assert not (tmp_path / "out").exists()


def test_predict_cli_path_errors_are_one_line(checkpoint, tmp_path, capsys):
    assert main(["predict", "sod", "--checkpoint", str(checkpoint), "--rgb",
                 str(tmp_path / "nope.png"), "--aux", str(tmp_path), "--out", str(tmp_path / "o")]) == 2  # fmt: skip
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "nope.png: no such file or folder" in err
    rgb, depth = images(np.random.default_rng(6), 32, 32)
    write_image(tmp_path / "in" / "q.png", rgb)
    write_image(tmp_path / "d" / "q.png", depth)
    for out in ("in", "d"):  # maps would replace the image or the depth map
        assert main(["predict", "sod", "--checkpoint", str(checkpoint), "--rgb", str(tmp_path / "in"),
                     "--aux", str(tmp_path / "d"), "--out", str(tmp_path / out)]) == 2  # fmt: skip
        assert "would overwrite this input" in capsys.readouterr().err
    assert np.array_equal(read_grey(tmp_path / "d" / "q.png"), depth)


def test_predict_cli_chooses_the_array_of_npz_maps_and_expands_patterns(checkpoint, tmp_path):
    rng = np.random.default_rng(7)
    for name in ("p", "q"):
        rgb, depth = images(rng, 32, 40)
        write_image(tmp_path / "rgb" / f"{name}.png", rgb)
        (tmp_path / "aux").mkdir(exist_ok=True)
        np.savez(tmp_path / "aux" / f"{name}.npz", depth=depth, confidence=np.ones((32, 40)))
    args = ["predict", "sod", "--checkpoint", str(checkpoint), "--aux", str(tmp_path / "aux")]
    args += ["--device", "cpu", "--rgb", str(tmp_path / "rgb" / "*.png")]  # unexpanded pattern
    result = cmseg(*args, "--out", str(tmp_path / "o1"), cwd=tmp_path)
    assert result.returncode == 2
    assert "holds 2 arrays (confidence, depth)" in result.stderr and "--aux-key" in result.stderr
    assert main([*args, "--out", str(tmp_path / "o2"), "--aux-key", "depth"]) == 0
    assert sorted(p.name for p in (tmp_path / "o2").iterdir()) == ["p.png", "q.png"]
    # several paths after one --rgb, as a shell expands rgb/*.png
    shell = [str(tmp_path / "rgb" / "p.png"), str(tmp_path / "rgb" / "q.png")]
    assert (
        main([*args[:-2], "--rgb", *shell, "--out", str(tmp_path / "o3"), "--aux-key", "depth"])
        == 0
    )
    for name in ("p.png", "q.png"):
        assert np.array_equal(read_grey(tmp_path / "o3" / name), read_grey(tmp_path / "o2" / name))
    # a checkpoint trained with data.options.aux_key reads the same array without the flag
    keyed = make_checkpoint(tmp_path / "keyed", "data.options.aux_key=depth")
    assert (
        main(
            [*args[:-2], "--rgb", *shell, "--out", str(tmp_path / "o4")]
            + ["--checkpoint", str(keyed)]
        )
        == 0
    )
    assert sorted(p.name for p in (tmp_path / "o4").iterdir()) == ["p.png", "q.png"]
