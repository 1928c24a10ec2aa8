"""`cmseg demo sod` (a shortened run) and the early-fusion baseline it compares against."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest
import torch

from cmseg.commands.demo import run_demo
from cmseg.config import load_config, to_dict
from cmseg.errors import InputError
from cmseg.models import build_model
from cmseg.tasks.sod.demo import METHODS, demo_config

ROOT = Path(__file__).resolve().parents[3]


# --------------------------------------------------------------------------------------------
# The early-fusion baseline


def test_early_fusion_shapes_and_gradient(one_thread):
    torch.manual_seed(0)
    model = build_model("early_fusion_tiny", channels=8)
    rgb = torch.randn(2, 3, 64, 96)
    aux = torch.rand(2, 1, 64, 96)
    outputs = model(rgb, aux)
    assert isinstance(outputs, list) and len(outputs) == 4
    assert all(o.shape == (2, 1, 64, 96) for o in outputs)
    sum(o.mean() for o in outputs).backward()
    stem = next(p for p in model.encoder.parameters() if p.ndim == 4)
    assert stem.shape[1] == 4  # RGB + aux in one encoder
    assert stem.grad is not None and stem.grad[:, 3].abs().sum() > 0  # the aux channel learns
    assert all(p.grad is not None for p in model.decoder.parameters())


def test_early_fusion_with_the_xmsnet_decoder(one_thread):
    from cmseg.models.xmsnet.loss import xmsnet_loss

    torch.manual_seed(0)
    model = build_model("early_fusion_c2f_tiny", channels=8)
    xmsnet = build_model("xmsnet_tiny", backbone="regnetx_002", channels=8)
    # the same decoder, parameter for parameter; only the encoders and the fusion differ
    assert [p.shape for p in model.decoder.parameters()] == [
        p.shape for p in xmsnet.decoder.parameters()
    ]
    rgb, aux = torch.randn(2, 3, 64, 96), torch.rand(2, 1, 64, 96)
    outputs = model(rgb, aux)
    assert len(outputs) == 7 and all(o.shape == (2, 1, 64, 96) for o in outputs)
    loss, _ = xmsnet_loss(outputs, (torch.rand(2, 1, 64, 96) > 0.5).float())
    loss.backward()
    stem = next(p for p in model.encoder.parameters() if p.ndim == 4)
    assert stem.shape[1] == 4 and stem.grad[:, 3].abs().sum() > 0
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert missing == [], missing
    with pytest.raises(ValueError, match="differ"):
        model(rgb, aux[:, :, :32])


def test_early_fusion_rejects_bad_inputs(one_thread):
    model = build_model("early_fusion_tiny", channels=8).eval()
    with pytest.raises(ValueError, match="divisible by 32"):
        model(torch.randn(1, 3, 50, 64), torch.rand(1, 1, 50, 64))
    with pytest.raises(ValueError, match="differ"):
        model(torch.randn(1, 3, 64, 64), torch.rand(1, 1, 32, 64))
    with pytest.raises(TypeError):
        build_model("early_fusion_tiny", no_such_option=1)


def test_early_fusion_local_weights_get_a_fourth_stem_channel(tmp_path, one_thread):
    import timm
    from safetensors.torch import save_file

    plain = timm.create_model("regnetx_002", pretrained=False)
    save_file(plain.state_dict(), str(tmp_path / "w.safetensors"))
    model = build_model("early_fusion_tiny", backbone_weights=tmp_path / "w.safetensors")
    stem = model.encoder.state_dict()["stem.conv.weight"]
    rgb = plain.state_dict()["stem.conv.weight"]
    assert stem.shape[1] == 4
    torch.testing.assert_close(stem[:, :3], rgb * 0.75)
    torch.testing.assert_close(stem[:, 3], rgb.mean(dim=1) * 0.75)


# --------------------------------------------------------------------------------------------
# The demo's configurations


@pytest.mark.parametrize("method", list(METHODS))
def test_shipped_configs_are_the_demo_recipe(method):
    """configs/sod/demo_<method>.yaml trains exactly what the demo trains."""
    shipped = load_config(path=ROOT / "configs" / "sod" / f"demo_{method}.yaml")
    expected = demo_config(method, root=shipped.data.root, output_dir=shipped.output_dir)
    assert to_dict(shipped) == to_dict(expected)


# --------------------------------------------------------------------------------------------
# A shortened demo


def test_demo_smoke(tmp_path, monkeypatch, capsys, one_thread):
    monkeypatch.setenv("CMSEG_DEMO_STEPS", "2")
    monkeypatch.setenv("CMSEG_DEMO_SCENES", "22")  # 18 train (one batch of 16), 4 held out
    monkeypatch.setenv("CMSEG_PROGRESS", "0")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    out = tmp_path / "demo"
    args = argparse.Namespace(task="sod", out=str(out), device="cpu", seed=3)
    assert run_demo(args) == 0
    printed = capsys.readouterr().out

    results = json.loads((out / "results.json").read_text())
    assert list(results["methods"]) == list(METHODS)
    assert results["steps"] == 2 and results["seed"] == 3
    assert results["scenes"] == {"train": 18, "test": 4, "size": 128}
    for key, entry in results["methods"].items():
        for condition in ("clean", "corrupted"):
            metrics = entry["results"][condition]["metrics"]
            assert 0.0 <= metrics["sm"] <= 1.0 and 0.0 <= metrics["mae"] <= 1.0
            assert entry["results"][condition]["num_items"] == 4
            assert len(list((out / "predictions" / key / condition).glob("*.png"))) == 4
        assert (out / "runs" / key / "last" / "model.safetensors").is_file()
    # RGB-only ignores the depth map: corrupting it changes nothing
    rgb_only = results["methods"]["rgb_only"]["results"]
    assert rgb_only["clean"]["metrics"] == rgb_only["corrupted"]["metrics"]

    # one table: 3 methods x 2 conditions, the four columns, the wall time
    table = (out / "table.md").read_text()
    rows = [line for line in table.splitlines() if line.startswith("| ") and "---" not in line]
    assert rows[0].split("|")[1:-1] == [
        " method ",
        " depth at test ",
        " S ",
        " maxF ",
        " meanE ",
        " MAE ",
    ]
    assert len(rows) == 1 + 6
    for name, _, _ in METHODS.values():
        assert sum(f"| {name} |" in row for row in rows) == 2
    assert "total wall time" in printed and printed.count("clean") >= 3

    # the corrupted copy really differs from the clean depth
    clean = (out / "data" / "test" / "depth").iterdir()
    first = next(iter(sorted(clean)))
    assert (
        first.read_bytes() != (out / "data_corrupted" / "test" / "depth" / first.name).read_bytes()
    )

    # the folder is marked as the demo's: a re-run may replace what the demo wrote there
    assert (out / "cmseg_demo.json").is_file()


def test_demo_output_folder_rules(tmp_path):
    from cmseg.engine.demo import prepare_out
    from cmseg.tasks.sod.demo import OWNED

    def _prepare_out(out):
        prepare_out(out, OWNED, "sod")

    earlier = tmp_path / "earlier"
    _prepare_out(earlier)
    (earlier / "runs" / "xmsnet").mkdir(parents=True)
    (earlier / "results.json").write_text("{}")
    (earlier / "notes.txt").write_text("mine")
    _prepare_out(earlier)  # an earlier demo: its own entries go, the rest stays
    assert not (earlier / "runs").exists() and not (earlier / "results.json").exists()
    assert (earlier / "notes.txt").read_text() == "mine"

    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "keep.txt").write_text("mine")
    with pytest.raises(InputError, match="not empty"):
        run_demo(argparse.Namespace(task="sod", out=str(foreign), device="cpu", seed=0))
    assert sorted(p.name for p in foreign.iterdir()) == ["keep.txt"]
