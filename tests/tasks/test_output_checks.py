"""Every command checks its outputs before its long work, names the path and the reason in one
line (exit 2), and a failed start leaves no run or output folder behind.

Run through the real CLI with the test-only toy task (``toy_task.py``), so what is proved holds
for every task that goes through the shared drivers. The suite runs as root, where chmod takes
no permission away: a folder is made read-only by monkeypatching ``os.access`` (the check that
the drivers use), and a file is made unreadable by monkeypatching ``open``.
"""

from __future__ import annotations

import dataclasses
import errno
import os
from pathlib import Path

import pytest
import toy_task
import yaml

from cmseg.cli import main

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


@pytest.fixture
def a_file(tmp_path) -> Path:
    """A plain file where a folder is expected."""
    path = tmp_path / "f"
    path.write_text("not a folder")
    return path


def one_error_line(capsys) -> str:
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, lines
    return lines[0]


def never(what: str):
    def fail(*args, **kwargs):
        raise AssertionError(f"{what} ran before the output check")

    return fail


# --------------------------------------------------------------------------------------------
# train


def toy_config(tmp_path: Path, output_dir: Path, root: Path | None = None) -> Path:
    config = tmp_path / "toy.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "task": "toy",
                "output_dir": str(output_dir),
                "model": {"name": toy_task.MODEL},
                "data": {
                    "root": str(root or tmp_path / "no-data"),
                    "batch_size": 4,
                    "num_workers": 0,
                },
                "optim": {"name": "adam", "lr": 0.1},
                "train": {"max_steps": 2, "device": "cpu", "tensorboard": False},
            }
        )  # fmt: skip
    )
    return config


def test_train_checks_output_dir_before_indexing_data(
    deny_writes_in, toy, tmp_path, a_file, capsys, monkeypatch
):
    monkeypatch.setattr(toy_task, "build_training", never("indexing the data"))
    assert main(["train", str(toy_config(tmp_path, a_file / "run"))]) == 2
    assert one_error_line(capsys) == f"error: {a_file / 'run'}: {a_file} is a file, not a folder"

    locked = tmp_path / "locked"
    locked.mkdir()
    deny_writes_in(locked)
    assert main(["train", str(toy_config(tmp_path, locked / "run"))]) == 2
    line = one_error_line(capsys)
    assert line.startswith(f"error: {locked / 'run'}: permission denied: cannot write in {locked}")


def test_a_failed_training_start_leaves_no_run_folder(toy, tmp_path, capsys):
    run = tmp_path / "runs" / "first"
    assert main(["train", str(toy_config(tmp_path, run))]) == 2  # no data there
    assert "no-data" in one_error_line(capsys)
    assert not (tmp_path / "runs").exists()


def test_a_started_training_keeps_its_folder(toy, tmp_path, capsys):
    data = tmp_path / "data"
    toy_task.write_toy_data(data, n=4, seed=0)
    run = tmp_path / "run"
    assert main(["train", str(toy_config(tmp_path, run, data))]) == 0
    assert (run / "last" / "meta.json").is_file() and (run / "config.yaml").is_file()


# --------------------------------------------------------------------------------------------
# predict


def toy_checkpoint(tmp_path: Path) -> Path:
    import torch

    from cmseg.engine.checkpoint import save_checkpoint

    net = toy_task.build_toy_net()
    with torch.no_grad():
        net.weight.fill_(1.0)
        net.bias.fill_(-0.5)
    config = {"task": "toy", "model": {"name": toy_task.MODEL}}
    return save_checkpoint(
        tmp_path / "ckpt", net.state_dict(), step=1, model_name=toy_task.MODEL, config=config
    )


def test_predict_checks_out_before_loading_the_model(
    deny_writes_in, toy, tmp_path, a_file, capsys, monkeypatch
):
    data = tmp_path / "data"
    toy_task.write_toy_data(data, n=2, seed=0)
    monkeypatch.setattr(toy_task, "ToyPredictor", never("loading the model"))
    argv = [
        "predict",
        "toy",
        "--checkpoint",
        str(tmp_path / "ckpt"),
        "--input",
        str(data / "images"),
    ]
    assert main([*argv, "--out", str(a_file / "sub")]) == 2
    assert one_error_line(capsys) == f"error: {a_file / 'sub'}: {a_file} is a file, not a folder"
    deny_writes_in(tmp_path)
    assert main([*argv, "--out", str(tmp_path / "pred")]) == 2
    assert "permission denied" in one_error_line(capsys)


def test_predict_with_an_unreadable_checkpoint_says_permission_denied(
    deny_reads_of, toy, tmp_path, capsys, monkeypatch
):
    data = tmp_path / "data"
    toy_task.write_toy_data(data, n=2, seed=0)
    ckpt = toy_checkpoint(tmp_path)
    deny_reads_of(ckpt / "model.safetensors")
    argv = ["predict", "toy", "--checkpoint", str(ckpt), "--input", str(data / "images")]
    assert main([*argv, "--out", str(tmp_path / "pred")]) == 2
    assert one_error_line(capsys) == f"error: {ckpt / 'model.safetensors'}: permission denied"
    assert not (tmp_path / "pred").exists()


def test_a_prediction_that_fails_at_once_leaves_no_out_folder(toy, tmp_path, capsys, monkeypatch):
    data = tmp_path / "data"
    toy_task.write_toy_data(data, n=3, seed=0)
    ckpt = toy_checkpoint(tmp_path)

    def broken(predictor, items, args):
        raise OSError(errno.ENOSPC, "No space left on device")
        yield  # a generator, as a task's predict is

    monkeypatch.setattr(toy_task, "PREDICT", dataclasses.replace(toy_task.PREDICT, predict=broken))
    out = tmp_path / "new" / "pred"
    argv = ["predict", "toy", "--checkpoint", str(ckpt), "--input", str(data / "images")]
    assert main([*argv, "--out", str(out)]) == 2
    assert one_error_line(capsys) == "error: no space left on device"
    assert not (tmp_path / "new").exists()


# --------------------------------------------------------------------------------------------
# evaluate


@pytest.mark.parametrize(
    ("flag", "value"),
    [("--out", "sub/r.json"), ("--csv", "t.csv"), ("--markdown", "t.md"), ("--plots", "plots")],
)
def test_evaluate_checks_its_outputs_before_scoring(
    toy, tmp_path, a_file, capsys, monkeypatch, flag, value
):
    import cmseg.commands.evaluate as evaluate

    monkeypatch.setattr(evaluate, "evaluate_folders", never("scoring"))
    target = a_file / value
    argv = ["evaluate", "toy", "--pred", str(tmp_path), "--gt", str(tmp_path), flag, str(target)]
    assert main(argv) == 2
    assert one_error_line(capsys) == f"error: {target}: {a_file} is a file, not a folder"


def test_evaluate_out_into_a_read_only_folder(deny_writes_in, toy, tmp_path, capsys, monkeypatch):
    import cmseg.commands.evaluate as evaluate

    monkeypatch.setattr(evaluate, "evaluate_folders", never("scoring"))
    locked = tmp_path / "locked"
    locked.mkdir()
    deny_writes_in(locked)
    argv = ["evaluate", "toy", "--pred", str(tmp_path), "--gt", str(tmp_path)]
    assert main([*argv, "--out", str(locked / "r.json")]) == 2
    line = one_error_line(capsys)
    assert line == f"error: {locked / 'r.json'}: permission denied: cannot write in {locked}"


# --------------------------------------------------------------------------------------------
# data synth and demo


def test_data_synth_checks_out_and_cleans_up_a_failed_run(tmp_path, a_file, capsys, monkeypatch):
    from cmseg.data import synthetic

    assert main(["data", "synth", "coseg", "--out", str(a_file / "sub"), "--n", "2"]) == 2
    assert one_error_line(capsys) == f"error: {a_file / 'sub'}: {a_file} is a file, not a folder"

    def full_disk(out, *args, **kwargs):
        (Path(out) / "Images").mkdir()
        (Path(out) / "Images" / "0.jpg").write_bytes(b"half")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setitem(synthetic.SYNTH_WRITERS, "coseg", full_disk)
    out = tmp_path / "synth"
    assert main(["data", "synth", "coseg", "--out", str(out), "--n", "2"]) == 2
    assert one_error_line(capsys) == "error: no space left on device"
    assert not out.exists()


def test_demo_checks_out_and_cleans_up_a_failed_start(toy, tmp_path, a_file, capsys, monkeypatch):
    assert main(["demo", "toy", "--out", str(a_file / "demo"), "--device", "cpu"]) == 2
    assert one_error_line(capsys) == f"error: {a_file / 'demo'}: {a_file} is a file, not a folder"

    def no_data(run):
        (run.out / "data").mkdir()
        raise PermissionError(errno.EACCES, "Permission denied", str(run.out / "data" / "x"))

    monkeypatch.setattr(toy_task, "RECIPE", dataclasses.replace(toy_task.RECIPE, prepare=no_data))
    out = tmp_path / "demo"
    assert main(["demo", "toy", "--out", str(out), "--device", "cpu"]) == 2
    assert one_error_line(capsys) == f"error: {out / 'data' / 'x'}: permission denied"
    assert not out.exists()


# --------------------------------------------------------------------------------------------
# File modes, end to end


@pytest.mark.skipif(os.name != "posix", reason="POSIX file modes")
def test_every_file_of_train_predict_evaluate_and_demo_has_the_umask_mode(toy, tmp_path):
    import stat

    data = tmp_path / "data"
    toy_task.write_toy_data(data, n=4, seed=0)
    old = os.umask(0o027)
    try:
        run = tmp_path / "run"
        assert main(["train", str(toy_config(tmp_path, run, data))]) == 0
        pred, reports = tmp_path / "pred", tmp_path / "reports"
        argv = ["predict", "toy", "--checkpoint", str(run), "--input", str(data / "images")]
        assert main([*argv, "--out", str(pred)]) == 0
        argv = ["evaluate", "toy", "--pred", str(pred), "--gt", str(data / "masks")]
        assert main([*argv, "--workers", "1", "--out", str(reports / "r.json"),
                     "--csv", str(reports / "t.csv"), "--markdown", str(reports / "t.md")]) == 0  # fmt: skip
        os.environ["CMSEG_DEMO_STEPS"] = "2"
        try:
            assert main(["demo", "toy", "--out", str(tmp_path / "demo"), "--device", "cpu"]) == 0
        finally:
            del os.environ["CMSEG_DEMO_STEPS"]
    finally:
        os.umask(old)
    wrong = []
    for top in (run, pred, reports, tmp_path / "demo"):
        for path in [top, *top.rglob("*")]:
            want = 0o750 if path.is_dir() else 0o640
            if stat.S_IMODE(path.stat().st_mode) != want:
                wrong.append(f"{path.relative_to(tmp_path)} {stat.S_IMODE(path.stat().st_mode):o}")
    assert wrong == []
    assert (run / "last" / "model.safetensors").is_file() and (reports / "t.md").is_file()
