"""What every task's predictor shares: the device, mixed precision, eval mode, and loading a
checkpoint of the right task.

A predictor (``tasks/<task>/predictor.py``) calls :func:`load_task_checkpoint` to read a
checkpoint and check that it was trained for its task, builds the network from the stored
configuration, loads the weights with :func:`load_model_weights`, and hands the model to
:class:`InferenceRuntime`, which puts it in eval mode on the device and says how to autocast.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import nn

from cmseg.errors import ConfigError, InputError

__all__ = [
    "AmpMode",
    "PathLike",
    "DeviceLike",
    "resolve_device",
    "load_model_weights",
    "amp_dtype",
    "autocast",
    "TaskCheckpoint",
    "load_task_checkpoint",
    "InferenceRuntime",
]

AmpMode = Literal["auto", "off", "bf16", "fp16"]
#: A checkpoint folder, run folder or ``model.safetensors`` file (see :func:`load_task_checkpoint`).
PathLike = str | os.PathLike[str]
#: ``auto`` (CUDA when present), ``cpu``, ``cuda``, ``cuda:N`` or a ``torch.device``.
DeviceLike = str | torch.device


def resolve_device(spec: str | torch.device = "auto") -> torch.device:
    """``auto`` (CUDA when present), ``cpu``, ``cuda``, ``cuda:N`` or a device -> a device.

    Raises:
        ConfigError: an unknown spec, or CUDA asked for where there is none.
    """
    if isinstance(spec, torch.device):
        return spec
    text = str(spec).strip().lower()
    if text == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if text == "cpu":
        return torch.device("cpu")
    if text == "cuda" or text.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise ConfigError(f"device {spec!r}: CUDA is not available (use cpu or auto)")
        try:
            device = torch.device(text)
        except RuntimeError:
            raise ConfigError(f"device: cannot parse {spec!r} (expected cuda:N)") from None
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ConfigError(
                f"device {spec!r}: only {torch.cuda.device_count()} CUDA device(s) exist"
            )
        return device
    raise ConfigError(f"device: expected auto, cpu, cuda or cuda:N, got {spec!r}")


def load_model_weights(
    model: nn.Module, state_dict: Mapping[str, torch.Tensor], source: str | os.PathLike[str]
) -> None:
    """Strictly load ``state_dict`` into ``model``.

    Raises:
        InputError: missing or unexpected keys, or shapes that differ (counts and the first
            few keys of each kind, in one line naming ``source``).
    """
    from cmseg.models.weights import load_strict

    load_strict(model, state_dict, source=str(source))


def amp_dtype(amp: str, device: torch.device) -> torch.dtype | None:
    if amp not in ("auto", "off", "bf16", "fp16"):
        raise ConfigError(f"amp: expected auto, off, bf16 or fp16, got {amp!r}")
    if device.type != "cuda" or amp == "off":
        return None
    if amp == "fp16":
        return torch.float16
    if amp == "bf16" or torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return None


def autocast(
    device: torch.device, dtype: torch.dtype | None
) -> contextlib.AbstractContextManager[Any]:
    """Autocast to ``dtype`` on ``device``, or nothing when ``dtype`` is None (float32)."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


@dataclass(frozen=True)
class TaskCheckpoint:
    """A checkpoint read for a predictor.

    Attributes:
        state_dict: the weights.
        meta: the whole ``meta.json``.
        config: its resolved training configuration (``meta["config"]``, a plain dict).
        model_name: the ``cmseg.models.MODELS`` key it was trained as.
    """

    state_dict: dict[str, torch.Tensor]
    meta: dict[str, Any]
    config: dict[str, Any]
    model_name: str

    @property
    def model_section(self) -> dict[str, Any]:
        """``config["model"]`` with ``name`` set to :attr:`model_name`."""
        return {**(self.config.get("model") or {}), "name": self.model_name}

    @property
    def data_options(self) -> dict[str, Any]:
        """``config["data"]["options"]`` (the task options it was trained with)."""
        return dict((self.config.get("data") or {}).get("options") or {})


def load_task_checkpoint(
    path: str | os.PathLike[str], task: str, *, assume_task: str | None = None
) -> TaskCheckpoint:
    """Read the checkpoint at ``path`` and check that it was trained for ``task``.

    Args:
        path: a checkpoint folder (``runs/x/best``), a run folder (its ``last/``) or a
            ``model.safetensors`` file with its ``meta.json`` beside it.
        task: the task the caller predicts.
        assume_task: the task of a checkpoint whose configuration names none (checkpoints of
            the first sod releases), or None to refuse those.

    Raises:
        InputError: no checkpoint there, files whose SHA-256 differs from the recorded one, no
            ``meta.json`` (a bare weights file is not enough: the network is rebuilt from
            the stored configuration), a checkpoint of another task, or metadata that names
            no model.
    """
    from cmseg.engine.checkpoint import META_NAME, load_checkpoint

    state_dict, meta = load_checkpoint(path)  # checks the SHA-256 recorded in meta.json
    if os.path.isfile(path) and not os.path.isfile(os.path.join(os.path.dirname(path), META_NAME)):
        raise InputError(
            path,
            f"no {META_NAME} beside this weights file; a predictor needs the model name and "
            "configuration stored there: give the checkpoint folder",
        )
    config = meta.get("config") or {}
    found = config.get("task") or assume_task or ""
    if found != task:
        raise InputError(path, f"a '{found or 'unknown'}' checkpoint, not a '{task}' one")
    name = meta.get("model_name") or (config.get("model") or {}).get("name")
    if not name:
        raise InputError(path, "meta.json names no model (no model_name or config.model.name)")
    return TaskCheckpoint(state_dict, meta, config, str(name))


class InferenceRuntime:
    """Where and how a predictor runs its network.

    Puts ``model`` in eval mode without gradients on the device (``channels_last``), and
    gives the autocast context: bfloat16 on CUDA when supported (``amp="auto"``), float32 on
    the CPU or with ``amp="off"``.

    Args:
        model: the network.
        device: ``auto`` (CUDA when present), ``cpu``, ``cuda``, ``cuda:N`` or a device.
        amp: ``auto``, ``off``, ``bf16`` or ``fp16`` (CUDA only; ignored on the CPU).

    Raises:
        ConfigError: a bad device or amp mode.
    """

    def __init__(
        self, model: nn.Module, device: str | torch.device = "auto", amp: AmpMode = "auto"
    ) -> None:
        self.device = resolve_device(device)
        self.amp_dtype = amp_dtype(amp, self.device)
        self.model = model.eval().requires_grad_(False)
        self.model.to(self.device, memory_format=torch.channels_last)

    def autocast(self) -> contextlib.AbstractContextManager[Any]:
        """The mixed-precision context of a forward pass (nothing in float32)."""
        return autocast(self.device, self.amp_dtype)

    def to_device(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` on the device, images as ``channels_last`` (non-blocking on CUDA)."""
        x = x.to(self.device, non_blocking=self.device.type == "cuda")
        return x.contiguous(memory_format=torch.channels_last) if x.ndim == 4 else x
