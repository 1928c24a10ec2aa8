"""SIGTERM and SIGINT during training: the step finishes, a resumable checkpoint is written,
the run stops with 143 / 130, and resuming ends bitwise equal to an uninterrupted run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from engine_toy import TinyNet, bce_loss, make_trainer
from test_trainer import assert_bitwise_equal, csv_rows, weights

from cmseg.engine.checkpoint import load_resume_state
from cmseg.engine.signals import Interrupted, StopOnSignals, exit_code

REPO = Path(__file__).resolve().parents[2]

SETTINGS = dict(
    model=lambda: TinyNet(dropout=0.3, norm=True),
    max_steps=8,
    accumulate=2,
    ema_decay=0.8,
    checkpoint_every=0,  # the only checkpoint before the end is the one the signal writes
)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_stops_at_the_step_boundary_and_resume_is_bitwise_equal(tmp_path, signum):
    full = make_trainer(tmp_path / "full", **SETTINGS)
    full.fit()

    calls = {"n": 0}

    def signalled_loss(outputs, batch):
        calls["n"] += 1
        if calls["n"] == 7:  # the first micro-batch of step 4
            os.kill(os.getpid(), signum)
        return bce_loss(outputs, batch)

    cut = make_trainer(tmp_path / "cut", **SETTINGS, loss_fn=signalled_loss)
    with pytest.raises(Interrupted) as stopped:
        cut.fit()
    assert stopped.value.signum == signum and stopped.value.exit_code == 128 + signum
    assert stopped.value.step == 4 and stopped.value.checkpoint == tmp_path / "cut" / "last"
    assert calls["n"] == 8  # step 4 was finished (two micro-batches), no further step begun
    assert load_resume_state(tmp_path / "cut")["step"] == 4
    # the handlers are back: the default Ctrl-C behaviour again after the run
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler

    torch.manual_seed(99)
    resumed = make_trainer(tmp_path / "cut", **SETTINGS)
    resumed.fit(resume=tmp_path / "cut" / "last")
    assert resumed.step == 8
    assert_bitwise_equal(weights(resumed), weights(full))
    assert_bitwise_equal(resumed.ema.module.state_dict(), full.ema.module.state_dict())
    assert csv_rows(tmp_path / "cut" / "metrics.csv") == csv_rows(tmp_path / "full" / "metrics.csv")


def test_a_second_signal_is_not_caught():
    with StopOnSignals() as stop:
        os.kill(os.getpid(), signal.SIGTERM)
        assert stop.signum == signal.SIGTERM
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)  # the default handler again
    assert exit_code(signal.SIGTERM) == 143 and exit_code(signal.SIGINT) == 130


TRAIN_SCRIPT = """
import os, signal, sys
import cmseg.engine.trainer as trainer_module
from cmseg.cli import main

original = trainer_module.Trainer._train_step
def step(self, model, batches):
    if self.step == 2 and os.environ.get("SEND_SIGTERM"):
        os.kill(os.getpid(), signal.SIGTERM)
    return original(self, model, batches)
trainer_module.Trainer._train_step = step
sys.exit(main(sys.argv[1:]))
"""


def test_the_cli_exits_143_and_says_how_to_resume(tmp_path):
    from cmseg.data.synthetic import write_synthetic

    data = tmp_path / "data"
    write_synthetic("sod", data, n=8, size=64, seed=0)
    config = REPO / "configs" / "sod" / "xmsnet_tiny.yaml"
    args = [str(config), f"data.root={data}", f"output_dir={tmp_path / 'run'}", "model.image_size=64",
            "data.batch_size=2", "data.num_workers=0", "data.train_sets=[train]", "data.val_sets=[]",
            "train.max_steps=5", "train.device=cpu", "train.tensorboard=false"]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(REPO), "CMSEG_PROGRESS": "0", "OMP_NUM_THREADS": "1"}
    run = [sys.executable, "-c", TRAIN_SCRIPT, "train", *args]
    out = subprocess.run(
        run, env={**env, "SEND_SIGTERM": "1"}, capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 143, out.stderr[-2000:]
    last_line = out.stderr.strip().splitlines()[-1]
    assert last_line.startswith(
        "error: stopped by SIGTERM at step 3; a resumable checkpoint is in "
    )
    assert f"--resume {tmp_path / 'run' / 'last'}" in last_line
    assert "Traceback" not in out.stderr
    resume = [
        sys.executable,
        "-m",
        "cmseg",
        "train",
        *args,
        "--resume",
        str(tmp_path / "run" / "last"),
    ]
    again = subprocess.run(resume, env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr[-2000:]
    assert load_resume_state(tmp_path / "run")["step"] == 5
