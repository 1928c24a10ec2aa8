"""`cmseg demo coseg` (a shortened run) and its shipped configurations."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from cmseg.commands.demo import run_demo
from cmseg.config import load_config, to_dict
from cmseg.errors import InputError
from cmseg.tasks.coseg.demo import CONDITIONS, METHODS, TRAIN_CLASSES, UNSEEN, demo_config

ROOT = Path(__file__).resolve().parents[3]


@pytest.mark.parametrize("method", list(METHODS))
def test_shipped_configs_are_the_demo_recipe(method):
    """configs/coseg/demo_<method>.yaml trains exactly what the demo trains."""
    shipped = load_config(path=ROOT / "configs" / "coseg" / f"demo_{method}.yaml")
    expected = demo_config(method, root=shipped.data.root, output_dir=shipped.output_dir)
    assert to_dict(shipped) == to_dict(expected)


def test_the_methods_differ_only_in_the_modulators():
    configs = [to_dict(demo_config(m)) for m in METHODS]
    switches = [
        (c["model"]["options"].pop("spatial_modulator"),
         c["model"]["options"].pop("semantic_modulator"))
        for c in configs
    ]  # fmt: skip
    assert switches == [(True, True), (False, True), (True, False)]
    assert configs[0] == configs[1] == configs[2]
    assert configs[0]["data"]["options"]["classes"] == list(TRAIN_CLASSES)
    assert not set(TRAIN_CLASSES) & set(UNSEEN) and len(UNSEEN) == 3


def _rows(table: str) -> list[list[str]]:
    lines = [line for line in table.splitlines() if line.startswith("| ") and "---" not in line]
    return [[cell.strip() for cell in line.split("|")[1:-1]] for line in lines]


def test_demo_coseg_smoke_and_rerun(tmp_path, monkeypatch, capsys, one_thread):
    monkeypatch.setenv("CMSEG_DEMO_STEPS", "2")
    monkeypatch.setenv("CMSEG_DEMO_SCENES", "24")  # 2 groups per class: 1 train, 1 test
    monkeypatch.setenv("CMSEG_PROGRESS", "0")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    out = tmp_path / "demo"
    args = argparse.Namespace(task="coseg", out=str(out), device="cpu", seed=2)
    assert run_demo(args) == 0
    printed = capsys.readouterr().out

    results = json.loads((out / "results.json").read_text())
    assert list(results["methods"]) == list(METHODS)
    assert results["steps"] == 2 and results["seed"] == 2 and results["protocol"] == "native"
    counts = results["counts"]
    # the held-out set: the test group of each training class; unseen: both groups of each
    assert counts["train"]["groups"] == len(TRAIN_CLASSES)
    assert counts["heldout"] == {"groups": len(TRAIN_CLASSES), "images": 5 * len(TRAIN_CLASSES)}
    assert counts["unseen"] == {"groups": 2 * len(UNSEEN), "images": 10 * len(UNSEEN)}
    for key, entry in results["methods"].items():
        for condition in CONDITIONS:
            scored = entry["results"][condition]
            assert scored["num_items"] == counts[condition]["images"]
            assert 0.0 <= scored["metrics"]["P"] <= 1.0 and 0.0 <= scored["metrics"]["J"] <= 1.0
            pngs = list((out / "predictions" / key / condition).glob("*/*.png"))
            assert len(pngs) == counts[condition]["images"]
        assert (out / "runs" / key / "last" / "model.safetensors").is_file()
        meta = json.loads((out / "runs" / key / "last" / "meta.json").read_text())
        assert meta["extra"]["categories"] == sorted(TRAIN_CLASSES)  # the unseen never trained
    assert sorted(p.name for p in (out / "sets" / "unseen" / "image").iterdir()) == sorted(UNSEEN)

    # one table: 3 methods x 2 conditions, P and J
    rows = _rows((out / "table.md").read_text())
    assert rows[0] == ["method", "classes at test", "P", "J"]
    assert len(rows) == 1 + 2 * len(METHODS)
    for name, _, _ in METHODS.values():
        assert [r[1] for r in rows if r[0] == name] == list(CONDITIONS.values())
    assert "total wall time" in printed and "unseen classes" in printed

    # a re-run into the same folder replaces what the demo wrote (the same numbers: the run is
    # deterministic) and keeps what the user put there
    (out / "notes.txt").write_text("mine")
    (out / "predictions" / "stale").mkdir()
    assert run_demo(args) == 0
    again = json.loads((out / "results.json").read_text())
    assert (out / "notes.txt").read_text() == "mine"
    assert not (out / "predictions" / "stale").exists()
    for key in METHODS:
        assert again["methods"][key]["results"] == results["methods"][key]["results"]


def test_demo_coseg_refuses_a_foreign_folder(tmp_path):
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "keep.txt").write_text("mine")
    with pytest.raises(InputError, match="not empty"):
        run_demo(argparse.Namespace(task="coseg", out=str(foreign), device="cpu", seed=0))
    assert sorted(p.name for p in foreign.iterdir()) == ["keep.txt"]


def test_cmseg_demo_pins_the_kernels_before_torch_is_imported(tmp_path):
    """The training hook (which imports torch) loads after the CPU kernels are pinned: the
    demo prints no warning that they may not be (the table is then every x86-64 machine's)."""
    import os
    import subprocess
    import sys

    env = dict(os.environ, CMSEG_DEMO_STEPS="1", CMSEG_DEMO_SCENES="24", CMSEG_PROGRESS="0")
    env["PYTHONPATH"] = str(ROOT)
    out = subprocess.run(
        [sys.executable, "-m", "cmseg", "demo", "coseg", "--out", str(tmp_path / "d"),
         "--device", "cpu"],
        capture_output=True, text=True, env=env, timeout=300, check=False,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "torch is already imported" not in out.stderr
