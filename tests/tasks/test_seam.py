"""The seam between the task-independent drivers and the tasks: a toy task that exists only in
the test suite (``toy_task.py``), added to ``TASKS`` by monkeypatching, trains, predicts,
evaluates and demos through the real CLI; nothing else knows it."""

from __future__ import annotations

import json

import numpy as np
import pytest
import toy_task
import yaml

from cmseg.cli import built_commands, main
from cmseg.config import RunConfig, load_config
from cmseg.errors import ConfigError
from cmseg.io import read_mask
from cmseg.models import MODELS
from cmseg.tasks import TASKS, get_task

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def test_a_toy_task_trains_predicts_evaluates_and_demos_through_the_cli(toy, tmp_path, capsys):
    data = tmp_path / "data"
    toy_task.write_toy_data(data, n=12, seed=0)
    config = tmp_path / "toy.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "task": "toy",
                "output_dir": str(tmp_path / "run"),
                "model": {"name": toy_task.MODEL},
                "data": {"root": str(data), "batch_size": 4, "num_workers": 0},
                "optim": {"name": "adam", "lr": 0.1},
                "train": {"max_steps": 60, "device": "cpu", "tensorboard": False},
            }
        )
    )
    assert main(["train", str(config)]) == 0
    assert (tmp_path / "run" / "last" / "model.safetensors").is_file()

    pred = tmp_path / "pred"
    argv = ["predict", "toy", "--checkpoint", str(tmp_path / "run" / "last")]
    assert main([*argv, "--input", str(data / "images"), "--out", str(pred)]) == 0
    assert sorted(p.name for p in pred.glob("*.png")) == [f"{i:03d}.png" for i in range(12)]
    assert read_mask(pred / "000.png").shape == (16, 16)
    # --skip-existing: nothing left to do, the model is not even loaded
    assert (
        main([*argv, "--input", str(data / "images"), "--out", str(pred), "--skip-existing"]) == 0
    )

    scores = tmp_path / "scores.json"
    argv = ["evaluate", "toy", "--pred", str(pred), "--gt", str(data / "masks"), "--workers", "1"]
    assert main([*argv, "--out", str(scores)]) == 0
    result = json.loads(scores.read_text())
    assert result["task"] == "toy" and result["num_items"] == 12
    assert result["metrics"]["mIoU"] > 0.9  # the bright square is learnable by one 1x1 conv
    assert "mIoU" in capsys.readouterr().out

    demo = tmp_path / "demo"
    assert main(["demo", "toy", "--out", str(demo), "--device", "cpu"]) == 0
    table = (demo / "table.md").read_text()
    assert "toy net" in table
    entry = json.loads((demo / "results.json").read_text())["methods"]["toy"]
    assert entry["steps"] == 100 and entry["results"]["metrics"]["mIoU"] > 0.9


def test_the_toy_task_is_listed_where_tasks_are_listed(toy, capsys):
    assert all("toy" in tasks for tasks in built_commands().values())
    assert main(["info"]) == 0
    assert "toy" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["predict", "toy", "--help"])
    assert "--input" in capsys.readouterr().out


def test_a_task_without_hooks_answers_not_built_yet(monkeypatch, tmp_path, capsys):
    bare = toy_task.make_task()
    import dataclasses

    monkeypatch.setitem(TASKS, "toy", dataclasses.replace(bare, predict=None, demo=None))
    assert "toy" not in built_commands()["demo"]
    assert main(["demo", "toy", "--out", str(tmp_path / "d")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not built yet" in err and "'toy'" in err
    argv = ["predict", "toy", "--checkpoint", "c", "--input", "i", "--out", "o"]
    assert main(argv) == 2
    assert "not built yet" in capsys.readouterr().err
    assert not (tmp_path / "d").exists()


def test_a_model_the_task_does_not_accept_is_refused_at_config_time(tmp_path):
    config = tmp_path / "wrong.yaml"
    config.write_text(yaml.safe_dump({"task": "sod", "model": {"name": "cmpc_tiny"}}))
    with pytest.raises(ConfigError) as err:
        load_config(RunConfig, config)
    message = str(err.value)
    assert "\n" not in message and str(config) in message and "cmpc_tiny" in message
    for accepted in get_task("sod").models:
        assert accepted in message
    with pytest.raises(ConfigError, match="unknown task 'nope'"):
        load_config(RunConfig, overrides=["task=nope"])
    with pytest.raises(ConfigError, match="accepts: cmpc_resnet101, cmpc_tiny"):
        load_config(RunConfig, overrides=["task=ris", "model.name=xmsnet_tiny"])


def test_the_cli_refuses_it_in_one_line_before_anything_runs(tmp_path, capsys):
    config = tmp_path / "wrong.yaml"
    out = tmp_path / "never"
    config.write_text(
        yaml.safe_dump({"task": "sod", "output_dir": str(out), "model": {"name": "cmpc_tiny"}})
    )
    assert main(["train", str(config)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "accepts: xmsnet_pvt_v2_b5" in err
    assert not out.exists()


def test_every_model_a_task_accepts_exists():
    for task in TASKS.values():
        assert set(task.models) <= set(MODELS), task.name


def test_every_hook_names_an_attribute_that_exists():
    for task in TASKS.values():
        hooks = [getattr(task, c) for c in ("train", "predict", "demo")]
        hooks += list(task.evaluations.values())
        for hook in hooks:
            if hook is not None:
                assert hook.load() is not None, hook.target
    assert np.all([task.name == name for name, task in TASKS.items()])
