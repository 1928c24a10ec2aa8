"""Checkpoints carry the SHA-256 of their files; loading checks it, and a missing meta.json is
named as missing."""

from __future__ import annotations

import hashlib
import json
import logging
import struct
from pathlib import Path

import pytest
import torch

from cmseg.engine.checkpoint import (
    load_checkpoint,
    load_checkpoint_meta,
    load_resume_state,
    save_checkpoint,
)
from cmseg.engine.inference import load_task_checkpoint
from cmseg.errors import InputError

WEIGHTS = {"conv.weight": torch.arange(64.0).reshape(4, 4, 2, 2), "conv.bias": torch.ones(4)}
CONFIG = {"task": "sod", "model": {"name": "xmsnet_tiny"}}


def saved(tmp_path: Path, **kwargs) -> Path:
    return save_checkpoint(
        tmp_path / "last", WEIGHTS, step=3, model_name="xmsnet_tiny", config=CONFIG, **kwargs
    )


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def flip_a_tensor_byte(path: Path) -> None:
    """Change one byte of the tensor data, after the JSON header (which stays valid)."""
    data = bytearray(path.read_bytes())
    (header,) = struct.unpack("<Q", data[:8])
    data[8 + header + 5] ^= 0xFF
    path.write_bytes(bytes(data))


def test_meta_records_the_sha256_and_size_of_each_file(tmp_path):
    folder = saved(tmp_path, resume_state={"step": 3})
    files = json.loads((folder / "meta.json").read_text())["files"]
    assert files == {
        name: {"bytes": (folder / name).stat().st_size, "sha256": sha256(folder / name)}
        for name in ("model.safetensors", "state.pt")
    }


def test_flipped_bytes_in_the_tensor_data_are_refused(tmp_path):
    folder = saved(tmp_path)
    flip_a_tensor_byte(folder / "model.safetensors")
    for path in (folder, tmp_path, folder / "model.safetensors"):  # folder, run, file
        with pytest.raises(InputError) as caught:
            load_checkpoint(path)
        assert str(caught.value).startswith(f"{folder / 'model.safetensors'}: SHA-256 differs")
    with pytest.raises(InputError, match="SHA-256 differs"):  # every predictor loads so
        load_task_checkpoint(folder, "sod")
    assert load_checkpoint(folder, verify=False)[0].keys() == WEIGHTS.keys()


def test_a_corrupt_resume_state_is_refused(tmp_path):
    folder = saved(tmp_path, resume_state={"step": 3, "t": torch.zeros(100)})
    data = bytearray((folder / "state.pt").read_bytes())
    data[-40] ^= 0xFF
    (folder / "state.pt").write_bytes(bytes(data))
    with pytest.raises(InputError, match=r"state.pt: SHA-256 differs"):
        load_resume_state(folder)


def test_a_partial_copy_is_named_by_its_size(tmp_path):
    folder = saved(tmp_path)
    weights = folder / "model.safetensors"
    size = weights.stat().st_size
    weights.write_bytes(weights.read_bytes()[:-8])
    with pytest.raises(InputError) as caught:
        load_checkpoint(folder)
    assert str(caught.value) == (
        f"{weights}: {size - 8} bytes where meta.json records {size}: an incomplete copy?"
    )


def test_a_missing_meta_json_is_named(tmp_path):
    folder = saved(tmp_path, resume_state={"step": 3})
    (folder / "meta.json").unlink()
    message = (
        f"{folder / 'meta.json'}: missing: a checkpoint folder holds model.safetensors and "
        "meta.json (model name, configuration, checksums); copy both"
    )
    for load in (load_checkpoint, load_checkpoint_meta, load_resume_state):
        with pytest.raises(InputError) as caught:
            load(folder)
        assert str(caught.value) == message
    with pytest.raises(InputError) as caught:
        load_task_checkpoint(tmp_path, "sod")  # the run folder, as `--checkpoint runs/x`
    assert str(caught.value) == message


def test_a_bare_weights_file_loads_where_no_metadata_is_needed(tmp_path):
    folder = saved(tmp_path)
    bare = tmp_path / "elsewhere" / "weights.safetensors"
    bare.parent.mkdir()
    bare.write_bytes((folder / "model.safetensors").read_bytes())
    state_dict, meta = load_checkpoint(bare)
    assert meta == {} and state_dict.keys() == WEIGHTS.keys()
    with pytest.raises(InputError) as caught:  # a predictor needs the model it was trained as
        load_task_checkpoint(bare, "sod", assume_task="sod")
    assert str(caught.value) == (
        f"{bare}: no meta.json beside this weights file; a predictor needs the model name and "
        "configuration stored there: give the checkpoint folder"
    )


def test_checkpoints_saved_without_checksums_still_load(tmp_path, caplog):
    folder = saved(tmp_path, resume_state={"step": 3})
    meta = json.loads((folder / "meta.json").read_text())
    del meta["files"]  # as the first releases wrote it
    (folder / "meta.json").write_text(json.dumps(meta))
    with caplog.at_level(logging.DEBUG, logger="cmseg.engine.checkpoint"):
        state_dict, _ = load_checkpoint(folder)
        assert load_resume_state(folder)["step"] == 3
    assert state_dict.keys() == WEIGHTS.keys()
    notes = [r for r in caplog.records if "no checksum" in r.getMessage()]
    assert notes and all(r.levelno == logging.DEBUG for r in notes)
