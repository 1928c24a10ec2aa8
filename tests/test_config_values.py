"""Settings that cannot run are refused when the config is loaded, in one line naming the key
(before any folder is made, data indexed or model built)."""

from __future__ import annotations

import pytest

from cmseg.config import RunConfig, load_config
from cmseg.errors import ConfigError

BAD = [
    ("train.max_steps=0", "train.max_steps must be >= 1, got 0"),
    ("train.max_steps=-5", "train.max_steps must be >= 1, got -5"),
    ("train.accumulate=0", "train.accumulate must be >= 1, got 0"),
    ("train.log_every=0", "train.log_every must be >= 1, got 0"),
    ("train.eval_every=-1", "train.eval_every must be >= 0, got -1"),
    ("train.checkpoint_every=-1", "train.checkpoint_every must be >= 0, got -1"),
    ("train.grad_clip=0", "train.grad_clip must be > 0 or null, got 0.0"),
    ("train.ema_decay=1", "train.ema_decay must lie in (0, 1) or be null, got 1.0"),
    ("data.batch_size=0", "data.batch_size must be >= 1, got 0"),
    ("data.num_workers=-1", "data.num_workers must be >= 0, got -1"),
    ("model.image_size=0", "model.image_size must be >= 1, got 0"),
    ("optim.lr=0", "optim.lr must be > 0, got 0.0"),
    ("optim.lr=-1e-4", "optim.lr must be > 0, got -0.0001"),
    ("optim.weight_decay=-0.1", "optim.weight_decay must be >= 0, got -0.1"),
    ("optim.momentum=-0.5", "optim.momentum must be >= 0, got -0.5"),
    ("optim.betas=[0.9,1.0]", "optim.betas must lie in [0, 1) each, got [0.9, 1.0]"),
    ("schedule.warmup_steps=-1", "schedule.warmup_steps must be >= 0, got -1"),
    ("schedule.step_size=-1", "schedule.step_size must be >= 0, got -1"),
    ("schedule.gamma=0", "schedule.gamma must be > 0, got 0.0"),
    ("schedule.power=-1", "schedule.power must be >= 0, got -1.0"),
    ("schedule.min_lr=-1", "schedule.min_lr must be >= 0, got -1.0"),
    ("schedule.decay_steps=-2", "schedule.decay_steps must be >= 0, got -2"),
]


@pytest.mark.parametrize(("override", "message"), BAD, ids=[o for o, _ in BAD])
def test_impossible_values_are_refused_at_config_time(override, message):
    with pytest.raises(ConfigError) as caught:
        load_config(RunConfig, None, [override])
    assert str(caught.value) == message


def test_the_message_names_the_config_file(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("train:\n  max_steps: 0\n")
    with pytest.raises(ConfigError) as caught:
        load_config(RunConfig, path)
    assert str(caught.value) == f"{path}: train.max_steps must be >= 1, got 0"


def test_the_limits_themselves_are_accepted():
    cfg = load_config(
        RunConfig,
        None,
        [
            "train.max_steps=1", "train.accumulate=1", "train.log_every=1", "train.eval_every=0",
            "train.checkpoint_every=0", "train.grad_clip=null", "train.ema_decay=0.999",
            "data.batch_size=1", "data.num_workers=0", "optim.lr=1e-9", "optim.betas=[0,0.999]",
            "schedule.gamma=1", "schedule.power=0",
        ],
    )  # fmt: skip
    assert cfg.train.max_steps == 1 and cfg.data.num_workers == 0


def test_the_cli_refuses_them_before_making_the_run_folder(tmp_path, capsys):
    from cmseg.cli import main

    path = tmp_path / "c.yaml"
    path.write_text(f"output_dir: {tmp_path / 'run'}\n")
    assert main(["train", str(path), "data.batch_size=0"]) == 2
    assert capsys.readouterr().err.strip() == "error: data.batch_size must be >= 1, got 0"
    assert not (tmp_path / "run").exists()
