"""Checkpoints (DESIGN §6): safetensors weights, JSON metadata, a weights-only resume state.

A checkpoint is a folder::

    <run>/last/                   the latest resumable state (replaced at every save)
        model.safetensors         the weights to predict with (the EMA copy when EMA is on)
        meta.json                 {"format", "cmseg_version", "model_name", "step", "metrics",
                                   "ema", "config", "extra", "files"}: the resolved run
                                   configuration, task data such as a word vocabulary, and
                                   {"<file>": {"bytes", "sha256"}} of the files beside it
        state.pt                  resume state: optimizer, scheduler, grad scaler, EMA, the
                                  raw (non-EMA) weights, RNG states, data position, best value
    <run>/best/                   the best validation result so far (weights + meta only)

``state.pt`` holds only tensors, containers and plain numbers, so it is read with
``torch.load(weights_only=True)``: opening a checkpoint never runs code (no pickle of objects).

Loading checks each file against the size and SHA-256 that ``meta.json`` records (a flipped
byte or a partial copy is an :class:`~cmseg.errors.InputError` naming the file; hashing costs
about 0.07 s per 100 MB with SHA-NI). Checkpoints saved before checksums existed load with a
debug note. A checkpoint folder without ``meta.json`` is refused as incomplete; a bare
``.safetensors`` file given on its own loads with empty metadata, for callers that need only
the tensors (predictors need the metadata and refuse it).

Saving is atomic at the folder level: everything is written (and fsynced) into a hidden
temporary folder beside the target, which then replaces the target by two renames. A process
killed at any moment leaves either the previous checkpoint or the new one, never a mix; if it
dies between the two renames, the previous folder survives as ``.<name>.old`` and is put back
by the next save or found by the loaders.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

import cmseg
from cmseg.errors import InputError
from cmseg.fs import check_readable, give_ordinary_mode, temp_dir
from cmseg.io import read_text, write_json

log = logging.getLogger(__name__)

__all__ = [
    "WEIGHTS_NAME",
    "META_NAME",
    "STATE_NAME",
    "save_checkpoint",
    "load_checkpoint",
    "load_checkpoint_meta",
    "load_resume_state",
    "file_digest",
    "verify_file",
    "resolve_checkpoint_dir",
]

WEIGHTS_NAME = "model.safetensors"
META_NAME = "meta.json"
STATE_NAME = "state.pt"
FORMAT_VERSION = 1


def save_checkpoint(
    directory: str | os.PathLike[str],
    state_dict: Mapping[str, torch.Tensor],
    *,
    step: int,
    model_name: str = "",
    config: Mapping[str, Any] | None = None,
    metrics: Mapping[str, float] | None = None,
    ema: bool = False,
    resume_state: Mapping[str, Any] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> Path:
    """Write a checkpoint folder atomically (replacing an existing one).

    Args:
        directory: the checkpoint folder, e.g. ``runs/x/last``.
        state_dict: the weights to predict with (copied to CPU, made contiguous; tensors that
            share storage, such as tied weights, are stored once each).
        step: optimizer steps done.
        model_name: key of ``cmseg.models.MODELS`` that builds the network.
        config: the resolved run configuration as a plain dict.
        metrics: validation metrics at this step.
        ema: whether ``state_dict`` is an exponential moving average of the trained weights.
        resume_state: what :func:`load_resume_state` gives back (tensors, containers and plain
            numbers only); omitted for weights-only checkpoints such as ``best/``.
        extra: JSON-able task data the model cannot be rebuilt without (e.g. the word
            vocabulary of a ris model), stored in ``meta.json`` under ``"extra"``.

    Returns:
        The checkpoint folder.
    """
    target = Path(directory)
    target.parent.mkdir(parents=True, exist_ok=True)
    old = _old_path(target)
    if not target.exists() and old.exists():  # an earlier save died between its two renames
        os.replace(old, target)
    for stale in target.parent.glob(f".{target.name}.tmp-*"):  # earlier saves that were killed
        shutil.rmtree(stale, ignore_errors=True)

    tmp = temp_dir(target.parent, f".{target.name}.tmp-")  # the umask's mode, not 0700
    try:
        tensors = {k: _plain_tensor(v) for k, v in state_dict.items()}
        weights = tmp / WEIGHTS_NAME
        save_file(tensors, str(weights), metadata={"format": "pt", "model_name": model_name})
        give_ordinary_mode(weights)  # safetensors writes 0600
        _fsync(weights)
        if resume_state is not None:
            torch.save(dict(resume_state), tmp / STATE_NAME)
            _fsync(tmp / STATE_NAME)
        meta = {
            "format": FORMAT_VERSION,
            "cmseg_version": cmseg.__version__,
            "model_name": model_name,
            "step": int(step),
            "ema": bool(ema),
            "metrics": dict(metrics or {}),
            "config": dict(config or {}),
            "extra": dict(extra or {}),
            # Read back from the page cache just written: what is on disk is what is checked.
            "files": {p.name: file_digest(p) for p in (weights, tmp / STATE_NAME) if p.exists()},
        }
        write_json(tmp / META_NAME, meta)
        _fsync(tmp)
        if target.exists():
            os.replace(target, old)
        os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    shutil.rmtree(old, ignore_errors=True)
    _fsync(target.parent)
    return target


def resolve_checkpoint_dir(path: str | os.PathLike[str]) -> Path:
    """The checkpoint folder meant by ``path``: a checkpoint folder, or a run folder (its
    ``last/``). Falls back to ``.<name>.old`` left by a save that died between its renames.

    Raises:
        InputError: nothing that looks like a checkpoint there.
    """
    path = Path(path)
    for candidate in (path, path / "last"):
        for folder in (candidate, _old_path(candidate)):
            if (folder / WEIGHTS_NAME).is_file():
                return folder
    if path.is_file():
        raise InputError(path, "expected a checkpoint folder (with model.safetensors), got a file")
    if not path.exists():
        raise InputError(path, "no such checkpoint folder")
    raise InputError(path, f"not a checkpoint: no {WEIGHTS_NAME} here or in last/")


def _checkpoint_files(path: str | os.PathLike[str]) -> tuple[Path, Path, bool]:
    """``(weights file, meta.json path, given as a bare file)`` of a checkpoint folder, run
    folder or weights file."""
    path = Path(path)
    if path.is_file() and path.suffix == ".safetensors":
        return path, path.with_name(META_NAME), True
    folder = resolve_checkpoint_dir(path)
    return folder / WEIGHTS_NAME, folder / META_NAME, False


def load_checkpoint_meta(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The metadata of a checkpoint without reading its weights. ``path`` as for
    :func:`load_checkpoint`; ``{}`` for a bare weights file with no ``meta.json`` beside it.

    Raises:
        InputError: no checkpoint there, a checkpoint folder without ``meta.json``, or a
            ``meta.json`` that is not a JSON object.
    """
    _, meta_path, bare = _checkpoint_files(path)
    if not meta_path.is_file():
        if bare:
            return {}
        raise InputError(
            meta_path,
            f"missing: a checkpoint folder holds {WEIGHTS_NAME} and {META_NAME} "
            "(model name, configuration, checksums); copy both",
        )
    text = read_text(meta_path, "JSON")  # permission denied and the like, in one line
    try:
        meta = json.loads(text)
    except json.JSONDecodeError as err:
        raise InputError(meta_path, f"invalid JSON ({_one_line(err)})") from None
    if not isinstance(meta, dict):
        raise InputError(meta_path, "expected a JSON object")
    return meta


def load_checkpoint(
    path: str | os.PathLike[str], *, device: str | torch.device = "cpu", verify: bool = True
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read weights and metadata, checking the weights against the recorded SHA-256.

    Args:
        path: a checkpoint folder, a run folder (its ``last/``), or a ``.safetensors`` file
            (metadata from a ``meta.json`` beside it when there is one, else ``{}``: enough
            for callers that need only the tensors).
        device: where to put the tensors.
        verify: check the size and SHA-256 recorded in ``meta.json`` (about 0.07 s per 100 MB).

    Returns:
        ``(state_dict, meta)``.

    Raises:
        InputError: missing or unreadable files, a checkpoint folder without ``meta.json``,
            or weights whose size or SHA-256 differ from the recorded ones.
    """
    weights, _, _ = _checkpoint_files(path)
    meta = load_checkpoint_meta(path)
    check_readable(weights)  # safetensors calls a permission error "No such file or directory"
    if verify:
        verify_file(weights, meta)
    try:
        state_dict = load_file(str(weights), device=str(device))
    except (SafetensorError, OSError, ValueError) as err:
        raise InputError(weights, f"not a readable safetensors file ({_one_line(err)})") from None
    return state_dict, meta


def load_resume_state(path: str | os.PathLike[str], *, verify: bool = True) -> dict[str, Any]:
    """Read ``state.pt`` of a checkpoint folder (or of a run folder's ``last/``), checked
    against the SHA-256 in ``meta.json`` (``verify``).

    Loaded with ``weights_only=True``: only tensors, containers and plain numbers come back.

    Raises:
        InputError: no resume state there (``best/`` holds weights only), no ``meta.json``, a
            checksum that differs, or an unreadable file.
    """
    folder = resolve_checkpoint_dir(path)
    state_path = folder / STATE_NAME
    if not state_path.is_file():
        raise InputError(
            folder, f"no {STATE_NAME}: not a resumable checkpoint (resume from the run's last/)"
        )
    meta = load_checkpoint_meta(folder)
    check_readable(state_path)  # permission denied, not "unreadable resume state"
    if verify:
        verify_file(state_path, meta)
    try:
        state = torch.load(state_path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises UnpicklingError, RuntimeError, EOFError...
        raise InputError(state_path, f"unreadable resume state ({_one_line(err)})") from None
    if not isinstance(state, dict):
        raise InputError(state_path, "resume state is not a dictionary")
    return state


def file_digest(path: Path) -> dict[str, Any]:
    """``{"bytes": size, "sha256": hex digest}`` of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    return {"bytes": path.stat().st_size, "sha256": digest.hexdigest()}


def verify_file(path: Path, meta: Mapping[str, Any]) -> None:
    """Check ``path`` against ``meta["files"][path.name]`` (size first: cheap and clear).

    Files that ``meta.json`` records nothing for (checkpoints of the first releases, a bare
    weights file without metadata, one renamed) are loaded unchecked, with a debug note.

    Raises:
        InputError: a size or SHA-256 that differs from the recorded one.
    """
    recorded = (meta.get("files") or {}).get(path.name)
    if not isinstance(recorded, Mapping) or "sha256" not in recorded:
        log.debug("%s: no checksum in %s (an older checkpoint): not verified", path, META_NAME)
        return
    size = path.stat().st_size
    if "bytes" in recorded and size != recorded["bytes"]:
        raise InputError(
            path, f"{size} bytes where {META_NAME} records {recorded['bytes']}: an incomplete copy?"
        )
    if file_digest(path)["sha256"] != recorded["sha256"]:
        raise InputError(
            path,
            f"SHA-256 differs from the one {META_NAME} records: the file is corrupt or was "
            "changed after it was saved",
        )


# --------------------------------------------------------------------------------------------
# Internals


def _old_path(target: Path) -> Path:
    return target.with_name(f".{target.name}.old")


def _plain_tensor(t: torch.Tensor) -> torch.Tensor:
    """A contiguous CPU copy: safetensors refuses shared or strided storage."""
    return t.detach().to("cpu").clone(memory_format=torch.contiguous_format)


def _fsync(path: Path) -> None:
    """Flush a file (or a folder entry) to disk so a rename never exposes unwritten data."""
    flags = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) if path.is_dir() else os.O_RDONLY
    with contextlib.suppress(OSError):  # folders cannot be opened on Windows
        fd = os.open(path, flags)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _one_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0] if text else type(err).__name__
