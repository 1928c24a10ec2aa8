"""The CLI through a real subprocess: help texts, exit codes and one-line errors."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from cmseg.cli import build_parser, built_commands

REPO = Path(__file__).resolve().parents[1]


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(REPO), CMSEG_PROGRESS="0")
    return subprocess.run(
        [sys.executable, "-m", "cmseg", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd or REPO,
        timeout=120,
    )


def test_help_lists_every_subcommand():
    out = run("--help")
    assert out.returncode == 0
    for name in ("demo", "data", "train", "predict", "evaluate", "info"):
        assert f"    {name} " in out.stdout


def _options_of(parser) -> dict[str, list]:
    """Every (sub)command's argparse actions, keyed by its command path."""
    found = {}
    stack = [((), parser)]
    while stack:
        path, p = stack.pop()
        found[" ".join(path)] = p._actions
        for action in p._actions:
            if action.__class__.__name__ == "_SubParsersAction":
                for name, sub in action.choices.items():
                    stack.append(((*path, name), sub))
    return found


@pytest.mark.parametrize(
    "command",
    [
        "demo",
        "data synth",
        "data check",
        "train",
        "predict",
        "predict sod",
        "predict ris",
        "evaluate",
        "info",
    ],
)
def test_every_option_is_documented_in_help(command):
    actions = _options_of(build_parser())[command]
    out = run(*command.split(), "--help")
    assert out.returncode == 0, out.stderr
    for action in actions:
        if action.help == "==SUPPRESS==":
            continue
        assert action.help, f"{command}: {action.dest} has no help text"
        for flag in action.option_strings:
            assert flag in out.stdout, f"{command}: {flag} missing from --help"


def test_info_prints_versions_and_cuda():
    out = run("info")
    assert out.returncode == 0, out.stderr
    for key in (
        "python",
        "torch",
        "torchvision",
        "timm",
        "transformers",
        "cuda available",
        "models",
        "configs",
    ):
        assert key in out.stdout


@pytest.mark.parametrize(
    "argv",
    [
        ["demo", "rvos"],
        ["predict", "rvos", "--checkpoint", "c", "--input", "i", "--out", "o"],
        ["predict", "fsrvos", "--checkpoint", "c", "--input", "i", "--out", "o"],
    ],
)
def test_commands_not_built_yet_say_so_in_one_line(argv):
    command, task = argv[:2]
    assert task not in built_commands()[command]
    out = run(*argv)
    assert out.returncode == 2
    assert out.stderr.count("\n") == 1 and out.stderr.startswith("error: ")
    assert "not built yet" in out.stderr and "Traceback" not in out.stderr


def test_train_config_errors_are_one_line(tmp_path):
    out = run("train", str(tmp_path / "missing.yaml"))
    assert out.returncode == 2
    assert out.stderr == f"error: {tmp_path / 'missing.yaml'}: no such file\n"

    cfg = tmp_path / "c.yaml"
    cfg.write_text("optim:\n  lrr: 1\n")
    out = run("train", str(cfg))
    assert out.returncode == 2
    # a mistake in the file names the file (issue 15); one in an override does not
    assert out.stderr == f"error: {cfg}: unknown config key 'optim.lrr'; did you mean 'optim.lr'?\n"

    cfg.write_text("task: sod\n")
    out = run("train", str(cfg), "train.max_steps=abc")
    assert out.returncode == 2
    assert out.stderr == "error: train.max_steps: expected an integer, got 'abc'\n"


def test_debug_flag_shows_the_traceback(tmp_path):
    out = run("--debug", "train", str(tmp_path / "missing.yaml"))
    assert out.returncode == 2
    assert "Traceback" in out.stderr and out.stderr.rstrip().endswith("no such file")
    out = run("train", str(tmp_path / "missing.yaml"), "--debug")  # after the subcommand too
    assert "Traceback" in out.stderr


def test_usage_errors_exit_2():
    assert run("frobnicate").returncode == 2
    assert run("evaluate", "nosuchtask", "--pred", "a", "--gt", "b").returncode == 2
    assert run().returncode == 2


def test_console_script_is_installed():
    script = Path(sys.executable).with_name("cmseg")
    if not script.exists():
        pytest.skip("cmseg is not installed in this interpreter's environment")
    out = subprocess.run([str(script), "--version"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.startswith("cmseg ")


def test_light_commands_do_not_import_torch():
    code = (
        "import sys, cmseg.cli, cmseg.io, cmseg.config, cmseg.metrics;"
        "heavy = [m for m in ('torch', 'timm', 'transformers') if m in sys.modules];"
        "print(heavy); sys.exit(1 if heavy else 0)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=dict(os.environ, PYTHONPATH=str(REPO)),
        timeout=60,
    )
    assert out.returncode == 0, out.stdout + out.stderr


def test_data_synth_into_a_full_folder_names_the_flag(tmp_path):
    (tmp_path / "mine.txt").write_text("x")
    out = run("data", "synth", "sod", "--out", str(tmp_path), "--n", "2", "--size", "32")
    assert out.returncode == 2 and out.stderr.count("\n") == 1
    assert "--overwrite" in out.stderr and "(or overwrite=True)" not in out.stderr


def test_help_shows_no_empty_defaults_and_says_what_folders_hold():
    from cmseg.tasks import TASKS

    for command in (["data", "check"], ["data", "synth"], ["evaluate"], ["demo"], ["train"],
                    ["predict", "sod"], ["predict", "ris"]):  # fmt: skip
        out = run(*command, "--help")
        assert out.returncode == 0 and "(default: None)" not in out.stdout, command
        assert "(default: False)" not in out.stdout, command
    check = " ".join(run("data", "check", "--help").stdout.split())
    evaluate = " ".join(run("evaluate", "--help").stdout.split())
    for name, task in TASKS.items():
        assert " ".join(task.data_layout.split()) in check, name
    assert "<name>.png saliency maps" in evaluate and "COCO-format JSON" in evaluate
