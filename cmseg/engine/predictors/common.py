"""What every predictor shares: the device, mixed precision and strict weight loading."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping
from typing import Any, Literal

import torch
from torch import nn

from cmseg.errors import ConfigError

__all__ = ["AmpMode", "resolve_device", "load_model_weights", "amp_dtype", "autocast"]

AmpMode = Literal["auto", "off", "bf16", "fp16"]


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


def autocast(device: torch.device, dtype: torch.dtype | None) -> contextlib.AbstractContextManager[Any]:
    """Autocast to ``dtype`` on ``device``, or nothing when ``dtype`` is None (float32)."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)
