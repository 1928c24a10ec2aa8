"""The sod task: configs, options, pre/postprocessing, the TrainingSetup, and `cmseg train`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from cmseg.config import RunConfig, load_config
from cmseg.data.synthetic import write_synthetic
from cmseg.errors import ConfigError
from cmseg.tasks.sod.options import SODOptions
from cmseg.tasks.sod.process import as_aux, postprocess, preprocess
from cmseg.tasks.sod.train import build_training as build_sod_training
from cmseg.tasks.sod.validate import METRIC_NAMES, SODValidator

ROOT = Path(__file__).resolve().parents[3]
CONFIGS = sorted((ROOT / "configs" / "sod").glob("*.yaml"))
TINY = ROOT / "configs" / "sod" / "xmsnet_tiny.yaml"


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


@pytest.fixture(scope="module")
def synth(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("synth_sod")
    write_synthetic("sod", root, n=24, size=64, seed=0)
    return root


def tiny_config(root: Path, out: Path, *extra: str) -> RunConfig:
    return load_config(
        RunConfig,
        TINY,
        [
            f"data.root={root}",
            f"output_dir={out}",
            "model.image_size=64",
            "data.batch_size=4",
            "data.num_workers=0",
            "train.device=cpu",
            "train.max_steps=3",
            "train.tensorboard=false",
            *extra,
        ],
    )


# --------------------------------------------------------------------------------------------
# Configs and options


def test_configs_exist_and_load():
    names = {p.name for p in CONFIGS}
    assert {
        "xmsnet_pvt_v2_b5_rgbd.yaml",
        "xmsnet_pvt_v2_b5_rgbt.yaml",
        "xmsnet_pvt_v2_b5_cod.yaml",
        "xmsnet_tiny.yaml",
    } <= names
    for path in CONFIGS:
        cfg = load_config(RunConfig, path)
        assert cfg.task == "sod"
        SODOptions.from_config(cfg.data.options)  # every task option is known
        assert cfg.model.image_size % 32 == 0 and cfg.data.batch_size >= 2
        if cfg.model.name == "xmsnet_pvt_v2_b5":  # the paper's settings
            assert (cfg.model.image_size, cfg.data.batch_size) == (384, 10)
            assert (cfg.optim.name, cfg.optim.lr, cfg.optim.weight_decay) == ("adam", 1e-4, 0.0)
            assert (cfg.schedule.name, cfg.schedule.gamma) == ("step", 0.1)
            assert (cfg.train.grad_clip, cfg.train.grad_clip_mode) == (0.5, "value")
            # 199 epochs; decay every 60 epochs (steps per epoch = eval_every, one epoch)
            epoch = cfg.train.eval_every
            assert cfg.train.max_steps == 199 * epoch
            assert cfg.schedule.step_size == 60 * epoch


def test_task_options_are_checked():
    assert SODOptions.from_config({}) == SODOptions()
    assert SODOptions.from_config({"zero_aux": True}).zero_aux
    with pytest.raises(ConfigError, match="data.options.zero_auxx.*zero_aux"):
        SODOptions.from_config({"zero_auxx": True})
    with pytest.raises(ConfigError, match="data.options.zero_aux"):
        SODOptions.from_config({"zero_aux": "yes"})


def test_bad_model_options_and_sizes_are_config_errors(synth, tmp_path):
    with pytest.raises(ConfigError, match="data.options"):  # a task option in model.options
        build_sod_training(tiny_config(synth, tmp_path, "model.options.zero_aux=true"))
    with pytest.raises(ConfigError, match="multiple of 32"):
        build_sod_training(tiny_config(synth, tmp_path, "model.image_size=100"))
    with pytest.raises(ConfigError, match="batch_size"):
        build_sod_training(tiny_config(synth, tmp_path, "data.batch_size=1"))


def test_registered_lazily_without_importing_torch():
    code = (
        "import sys; from cmseg.tasks import TASKS; "
        "assert TASKS['sod'].built('train'); assert 'torch' not in sys.modules, 'torch imported'"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr


# --------------------------------------------------------------------------------------------
# Pre- and postprocessing


def test_preprocess_shapes_normalisation_and_holes():
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (50, 70, 3), dtype=np.uint8)
    depth = rng.uniform(2.0, 9.0, (25, 35)).astype(np.float32)  # raw metres, another size
    depth[3:6, 4:9] = np.nan
    depth[0, 0] = np.inf
    image, aux = preprocess(rgb, depth, 64)
    assert image.shape == (3, 64, 64) and aux.shape == (1, 64, 64)
    assert image.dtype == aux.dtype == torch.float32
    assert torch.isfinite(aux).all() and aux.min() >= 0 and aux.max() <= 1
    # ImageNet normalisation of a constant image
    grey = np.full((32, 32, 3), 255, np.uint8)
    image, zeros = preprocess(grey, None, 32)
    expected = (1 - torch.tensor([0.485, 0.456, 0.406])) / torch.tensor([0.229, 0.224, 0.225])
    assert torch.allclose(image[:, 0, 0], expected, atol=1e-5)
    assert not zeros.any()
    # a map as read_aux leaves it is unchanged; NaN/inf -> 0 and the rest stretched to [0, 1]
    normalised = as_aux(depth)
    assert np.array_equal(as_aux(normalised), normalised)
    assert normalised[4, 5] == 0 and normalised[0, 0] == 0
    assert np.nanmax(normalised) == 1


def test_postprocess_is_the_official_test_protocol():
    logits = torch.randn(1, 1, 32, 32) * 3
    out = postprocess(logits, (45, 60))
    assert out.dtype == np.uint8 and out.shape == (45, 60)
    assert out.min() == 0 and out.max() == 255
    p = F.interpolate(logits, (45, 60), mode="bilinear", align_corners=False).sigmoid()[0, 0]
    p = (p - p.min()) / (p.max() - p.min() + 1e-8)
    assert np.abs(out.astype(int) - np.rint(p.numpy() * 255).astype(int)).max() <= 1
    assert np.array_equal(postprocess(logits[0, 0], (45, 60)), out)  # (h, w) accepted too


# --------------------------------------------------------------------------------------------
# The TrainingSetup


def test_training_setup_from_the_tiny_config(synth, tmp_path):
    cfg = tiny_config(synth, tmp_path)
    setup = build_sod_training(cfg)
    assert setup.model_name == "xmsnet_tiny" and setup.best_metric == "sm"
    assert setup.higher_is_better and len(setup.train_dataset) == 19
    samples = [setup.train_transform(setup.train_dataset[i], rng=i) for i in range(2)]
    batch = torch.utils.data.default_collate(samples)
    assert batch["image"].shape == (2, 3, 64, 64) and batch["mask"].shape == (2, 1, 64, 64)
    outputs = setup.forward_fn(setup.model, batch)
    loss, parts = setup.loss_fn(outputs, batch)
    assert loss.ndim == 0 and torch.isfinite(loss) and {"s6", "kl_s5_s6"} <= set(parts)

    setup.model.eval()
    with torch.no_grad():
        metrics = setup.validate(setup.model)
    assert set(METRIC_NAMES) <= set(metrics)
    assert all(np.isfinite(v) for v in metrics.values())
    assert 0 <= metrics["mae"] <= 1 and 0 <= metrics["sm"] <= 1


def test_models_with_other_side_outputs_get_deep_supervision(synth, tmp_path):
    """The FPN early-fusion baseline (4 side outputs) trains through the same task."""
    from cmseg.models.xmsnet.loss import structure_loss

    cfg = tiny_config(synth, tmp_path, "model.name=early_fusion_tiny", "model.backbone=regnetx_002")
    setup = build_sod_training(cfg)
    samples = [setup.train_transform(setup.train_dataset[i], rng=i) for i in range(2)]
    batch = torch.utils.data.default_collate(samples)
    outputs = setup.forward_fn(setup.model, batch)
    loss, parts = setup.loss_fn(outputs, batch)
    assert len(outputs) == 4 and set(parts) == {"s0", "s1", "s2", "s3"}
    expected = sum((i + 1) / 4 * structure_loss(o, batch["mask"]) for i, o in enumerate(outputs))
    assert torch.allclose(loss, expected)


def test_zero_aux_feeds_zeros(synth, tmp_path):
    setup = build_sod_training(tiny_config(synth, tmp_path, "data.options.zero_aux=true"))
    seen = []

    def model(image, aux):
        seen.append(aux)
        return [image[:, :1]] * 7

    batch = {"image": torch.ones(2, 3, 64, 64), "aux": torch.ones(2, 1, 64, 64)}
    setup.forward_fn(model, batch)
    assert not seen[-1].any()
    assert setup.validate.zero_aux


def test_validator_reports_each_set_and_their_mean(synth):
    from cmseg.data.formats.sod_folders import SODFolders
    from cmseg.models import build_model

    torch.manual_seed(0)
    model = build_model("xmsnet_tiny").eval()
    validator = SODValidator(SODFolders(synth, sets=["train", "test"]), 64, batch_size=8)
    with torch.no_grad():
        metrics = validator(model)
    assert {"train/sm", "test/sm", "test/maxF", "sm"} <= set(metrics)
    assert metrics["sm"] == pytest.approx((metrics["train/sm"] + metrics["test/sm"]) / 2)


# --------------------------------------------------------------------------------------------
# cmseg train, end to end


def test_cmseg_train_writes_a_run(synth, tmp_path):
    run = tmp_path / "run"
    env = {**os.environ, "CMSEG_PROGRESS": "0", "OMP_NUM_THREADS": "1"}
    command = [
        sys.executable,
        "-m",
        "cmseg",
        "train",
        str(TINY),
        f"data.root={synth}",
        f"output_dir={run}",
        "model.image_size=64",
        "data.batch_size=2",
        "data.num_workers=2",  # validation must not hang next to live training workers
        "train.device=cpu",
        "train.max_steps=3",
        "train.eval_every=1",
        "train.log_every=1",
        "train.tensorboard=false",
    ]
    out = subprocess.run(
        command, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300
    )
    assert out.returncode == 0, out.stderr
    assert out.stderr.count("validation: sm") == 3
    for folder in ("last", "best"):
        assert (run / folder / "model.safetensors").is_file()
        assert (run / folder / "meta.json").is_file()
    assert (run / "last" / "state.pt").is_file()
    saved = load_config(RunConfig, run / "config.yaml")
    assert saved.model.image_size == 64 and saved.train.max_steps == 3
    meta = json.loads((run / "last" / "meta.json").read_text())
    assert meta["step"] == 3 and meta["model_name"] == "xmsnet_tiny"
    assert meta["config"]["model"]["image_size"] == 64 and "sm" in meta["metrics"]


@pytest.mark.parametrize("workers", [0, 2])
def test_a_bad_training_file_read_by_a_worker_is_one_line_exit_2(tmp_path, workers):
    """The same error with or without DataLoader worker processes (the shipped configs use 2)."""
    data = tmp_path / "data"
    write_synthetic("sod", data, n=8, size=64, seed=0)
    victim = sorted((data / "train" / "RGB").iterdir())[0]
    victim.write_bytes(victim.read_bytes()[:40])  # truncated
    env = {**os.environ, "CMSEG_PROGRESS": "0", "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "cmseg", "train", str(TINY), f"data.root={data}",
               f"output_dir={tmp_path / 'run'}", "model.image_size=64", "data.batch_size=2",
               f"data.num_workers={workers}", "data.train_sets=[train]", "data.val_sets=[]",
               "train.device=cpu", "train.max_steps=20", "train.tensorboard=false"]  # fmt: skip
    out = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 2, out.stderr[-3000:]
    last = out.stderr.strip().splitlines()[-1]
    assert last.startswith(f"error: {victim}: ") and "internal error" not in out.stderr
    assert "Traceback" not in out.stderr and "worker" not in last
