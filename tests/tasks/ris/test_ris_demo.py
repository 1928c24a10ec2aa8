"""`cmseg demo ris` (a shortened run) and its shipped configurations."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from cmseg.commands.demo import run_demo
from cmseg.config import load_config, to_dict
from cmseg.models.cmpc import cmpc_backbone
from cmseg.tasks.ris.demo import BACKBONE, HELD_OUT, METHODS, demo_config

ROOT = Path(__file__).resolve().parents[3]


@pytest.mark.parametrize("method", list(METHODS))
def test_shipped_configs_are_the_demo_recipe(method):
    """configs/ris/demo_<method>.yaml trains exactly what the demo trains."""
    shipped = load_config(path=ROOT / "configs" / "ris" / f"demo_{method}.yaml")
    expected = demo_config(method, root=shipped.data.root, output_dir=shipped.output_dir)
    assert to_dict(shipped) == to_dict(expected)


def test_the_two_methods_differ_only_in_relation_reasoning():
    a, b = (to_dict(demo_config(m)) for m in METHODS)
    assert a["model"]["options"] == {"relation_reasoning": True, "freeze_backbone_bn": True}
    assert b["model"]["options"] == {"relation_reasoning": False, "freeze_backbone_bn": True}
    a["model"]["options"] = b["model"]["options"] = {}
    assert a == b


def test_demo_ris_smoke(tmp_path, monkeypatch, capsys, one_thread):
    monkeypatch.setenv("CMSEG_DEMO_STEPS", "2")
    monkeypatch.setenv("CMSEG_DEMO_SCENES", "30")
    monkeypatch.setenv("CMSEG_PROGRESS", "0")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    out = tmp_path / "demo"
    assert run_demo(argparse.Namespace(task="ris", out=str(out), device="cpu", seed=1)) == 0
    printed = capsys.readouterr().out

    results = json.loads((out / "results.json").read_text())
    assert list(results["methods"]) == list(METHODS) and results["steps"] == 2
    counts = results["counts"]
    assert counts["all"] == counts["relation_only"] + counts["other"] > 0
    for key, entry in results["methods"].items():
        scores = entry["results"]["all"]
        assert scores["num_items"] == counts["all"]
        assert 0.0 <= scores["oIoU"] <= 1.0 and 0.0 <= scores["mIoU"] <= 1.0
        assert (out / "runs" / key / "last" / "meta.json").is_file()
        if counts["relation_only"]:
            examples = json.loads((out / "examples" / key / "sentences.json").read_text())
            assert examples and all(
                (out / "examples" / key / f"{e['name']}.png").is_file() for e in examples
            )
    assert results["held_out"] == list(HELD_OUT)
    pretraining = results["pretraining"]
    assert pretraining["steps"] == 2 and set(pretraining["val_pixel_accuracy"]) == {
        "shape",
        "colour",
        "size",
    }

    # Both models start from the pretrained file and never change it (frozen, BN included).
    backbone = cmpc_backbone(BACKBONE, weights=out / "backbone.safetensors").state_dict()
    for key in METHODS:
        trained = load_file(str(out / "runs" / key / "last" / "model.safetensors"))
        for name, value in backbone.items():
            torch.testing.assert_close(trained[f"backbone.{name}"], value, rtol=0, atol=0)
    table = (out / "table.md").read_text()
    rows = [line for line in table.splitlines() if line.startswith("| ") and "---" not in line]
    assert len(rows) == 1 + len(METHODS) and "oIoU rel-only" in rows[0]
    assert "total wall time" in printed and "CMPC without RAR" in printed
