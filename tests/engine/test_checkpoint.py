import json

import numpy as np
import pytest
import torch
from engine_toy import TinyNet

import cmseg
from cmseg.engine import checkpoint as ckpt
from cmseg.engine.checkpoint import (
    load_checkpoint,
    load_resume_state,
    resolve_checkpoint_dir,
    save_checkpoint,
)
from cmseg.errors import InputError


def test_round_trip_weights_and_meta(tmp_path):
    model = TinyNet(norm=True)
    sd = model.state_dict()
    folder = save_checkpoint(
        tmp_path / "last",
        sd,
        step=12,
        model_name="tiny",
        config={"optim": {"lr": 0.1}},
        metrics={"sm": 0.9, "bad": float("nan")},
    )
    assert sorted(p.name for p in folder.iterdir()) == ["meta.json", "model.safetensors"]
    loaded, meta = load_checkpoint(folder)
    assert loaded.keys() == sd.keys()
    assert all(torch.equal(loaded[k], sd[k]) and loaded[k].dtype == sd[k].dtype for k in sd)
    assert meta["step"] == 12 and meta["model_name"] == "tiny" and meta["ema"] is False
    assert meta["cmseg_version"] == cmseg.__version__
    assert meta["config"] == {"optim": {"lr": 0.1}}
    assert meta["metrics"] == {"sm": 0.9, "bad": None}  # strict JSON: NaN becomes null
    json.loads((folder / "meta.json").read_text())
    # the .safetensors file alone, the run folder, and a strict load into a fresh model
    alone, meta2 = load_checkpoint(folder / "model.safetensors")
    assert meta2 == meta and alone.keys() == sd.keys()
    assert load_checkpoint(tmp_path)[1]["step"] == 12
    TinyNet(norm=True).load_state_dict(loaded, strict=True)


def test_shared_and_strided_tensors_are_saved(tmp_path):
    base = torch.arange(12.0).reshape(3, 4)
    sd = {
        "a": base,
        "tied": base,
        "t": base.t(),
        "cl": torch.randn(2, 3, 4, 5).to(memory_format=torch.channels_last),
    }
    save_checkpoint(tmp_path / "c", sd, step=0)
    loaded, _ = load_checkpoint(tmp_path / "c")
    assert all(torch.equal(loaded[k], sd[k]) for k in sd)


def test_resume_state_loads_with_weights_only(tmp_path, monkeypatch):
    model = TinyNet()
    opt = torch.optim.Adam(model.parameters(), lr=0.1)
    model(dict(image=torch.randn(2, 3, 8, 8))).mean().backward()
    opt.step()
    state = {
        "step": 3,
        "optimizer": opt.state_dict(),
        "rng": [{"torch": torch.get_rng_state(), "numpy": [1, 2, 3], "python": [3, [1, 2], None]}],
        "data": {"epoch": 1, "batch": 2},
    }
    save_checkpoint(tmp_path / "last", model.state_dict(), step=3, resume_state=state)
    calls = []
    real_load = torch.load

    def spy(*args, **kwargs):
        calls.append(kwargs.get("weights_only"))
        return real_load(*args, **kwargs)

    monkeypatch.setattr(torch, "load", spy)
    back = load_resume_state(tmp_path)  # the run folder works too
    assert calls == [True]
    assert back["step"] == 3 and back["data"] == {"epoch": 1, "batch": 2}
    assert torch.equal(back["rng"][0]["torch"], state["rng"][0]["torch"])
    fresh = torch.optim.Adam(TinyNet().parameters(), lr=0.1)
    fresh.load_state_dict(back["optimizer"])


def test_resume_state_refuses_pickled_objects(tmp_path):
    save_checkpoint(tmp_path / "last", {"w": torch.zeros(1)}, step=0, resume_state={"step": 0})
    # a state.pt carrying an arbitrary object (numpy arrays need pickle's global lookup)
    torch.save({"step": 0, "evil": np.zeros(2)}, tmp_path / "last" / "state.pt")
    with pytest.raises(InputError, match="an incomplete copy|SHA-256 differs"):
        load_resume_state(tmp_path / "last")  # the checksum refuses the swapped file first
    with pytest.raises(InputError, match="unreadable resume state"):  # and so does torch.load
        load_resume_state(tmp_path / "last", verify=False)


def test_weights_only_checkpoint_is_not_resumable(tmp_path):
    save_checkpoint(tmp_path / "best", {"w": torch.zeros(1)}, step=0)
    with pytest.raises(InputError, match="not a resumable checkpoint"):
        load_resume_state(tmp_path / "best")


def test_a_failing_save_leaves_the_previous_checkpoint_intact(tmp_path, monkeypatch):
    target = tmp_path / "last"
    save_checkpoint(target, {"w": torch.ones(3)}, step=1, resume_state={"step": 1})
    before = {p.name: p.read_bytes() for p in target.iterdir()}

    def explode(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(ckpt.torch, "save", explode)  # fails after the weights were written
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(target, {"w": torch.zeros(3)}, step=2, resume_state={"step": 2})
    assert {p.name: p.read_bytes() for p in target.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last"]  # no temporary folder left
    # a value that cannot be serialised fails the same way
    monkeypatch.undo()
    with pytest.raises(TypeError):
        save_checkpoint(target, {"w": torch.zeros(3)}, step=2, metrics={"m": object()})
    assert {p.name: p.read_bytes() for p in target.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last"]


def test_recovers_from_a_kill_between_the_two_renames(tmp_path):
    target = tmp_path / "last"
    save_checkpoint(target, {"w": torch.ones(2)}, step=1)
    # simulate: the old folder was moved aside, then the process died before the new one moved in
    target.rename(tmp_path / ".last.old")
    (tmp_path / ".last.tmp-dead").mkdir()  # and a torn temporary folder of a killed save
    assert resolve_checkpoint_dir(tmp_path) == tmp_path / ".last.old"
    assert load_checkpoint(target)[1]["step"] == 1
    save_checkpoint(target, {"w": torch.zeros(2)}, step=2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last"]
    assert load_checkpoint(target)[1]["step"] == 2


def test_clear_errors_for_missing_or_broken_checkpoints(tmp_path):
    with pytest.raises(InputError, match="no such checkpoint"):
        load_checkpoint(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="not a checkpoint"):
        load_checkpoint(tmp_path / "empty")
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"garbage")
    with pytest.raises(InputError, match="not a readable safetensors"):
        load_checkpoint(bad)
