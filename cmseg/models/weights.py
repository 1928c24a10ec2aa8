"""Weights shared by every method: a strict load with one-line errors, and backbone converters.

* :func:`load_strict` loads with every key and shape checked and raises one line listing what
  is missing, unexpected or of the wrong shape (first few of each, with counts);
  :func:`describe_mismatch` writes that line and :class:`StateDictError` carries it.
* :func:`convert_pvt_v2_original` maps the PVTv2 authors' layout (``patch_embed1``,
  ``block1.0``, ``norm1``) onto timm's (``patch_embed``, ``stages.0.blocks.0``,
  ``stages.0.norm``); :func:`cmseg.models.backbones.load_backbone_weights` applies it to a PVT
  backbone file, and XMSNet's official-checkpoint converter to its two encoders.

Converters only rename; values are never modified, and keys they do not recognise pass
through unchanged so that :func:`load_strict` reports them. A method's official-checkpoint
converter lives in its own package (e.g. :func:`cmseg.models.xmsnet.convert_official_xmsnet`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

import torch
from torch import nn

from cmseg.errors import InputError

__all__ = [
    "StateDictError",
    "describe_mismatch",
    "load_strict",
    "convert_pvt_v2_original",
]


class StateDictError(InputError):
    """Weights that do not fit a model: ``"<source>: <what is missing/unexpected/...>"``."""


def _first(items: Sequence[str], n: int = 3) -> str:
    shown = ", ".join(items[:n])
    return f"{shown}, ... (+{len(items) - n} more)" if len(items) > n else shown


def describe_mismatch(
    missing: Sequence[str],
    unexpected: Sequence[str],
    wrong_shape: Sequence[str] = (),
    *,
    what: str = "the model",
) -> str:
    """One line: ``state dict does not match X: 2 missing [a, b]; 1 unexpected [c]``."""
    parts = []
    if missing:
        parts.append(f"{len(missing)} missing [{_first(sorted(missing))}]")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected [{_first(sorted(unexpected))}]")
    if wrong_shape:
        parts.append(f"{len(wrong_shape)} with the wrong shape [{_first(list(wrong_shape))}]")
    return f"state dict does not match {what}: " + "; ".join(parts)


def load_strict(
    model: nn.Module, state_dict: Mapping[str, torch.Tensor], *, source: str = "state dict"
) -> None:
    """``model.load_state_dict(state_dict, strict=True)`` with a one-line error.

    Raises:
        StateDictError: some key is missing or unexpected, or some shape differs; the message
            gives the counts and the first three keys of each kind.
    """
    target = model.state_dict()
    missing = [k for k in target if k not in state_dict]
    unexpected = [k for k in state_dict if k not in target]
    wrong_shape = [
        f"{k} {tuple(v.shape)} vs {tuple(target[k].shape)}"
        for k, v in state_dict.items()
        if k in target and tuple(v.shape) != tuple(target[k].shape)
    ]
    if missing or unexpected or wrong_shape:
        what = f"{type(model).__name__}"
        raise StateDictError(source, describe_mismatch(missing, unexpected, wrong_shape, what=what))
    model.load_state_dict(state_dict, strict=True)


# --------------------------------------------------------------------------------------------
# PVTv2: the authors' layout -> timm's layout

_PVT_RULES: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"^patch_embed1\."), "patch_embed."),
    (re.compile(r"^patch_embed(\d+)\."), "stages.{}.downsample."),
    (re.compile(r"^block(\d+)\.(\d+)\."), "stages.{}.blocks.{}."),
    (re.compile(r"^norm(\d+)\."), "stages.{}.norm."),
)


def convert_pvt_v2_original(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename a PVTv2 state dict from the authors' layout to timm's.

    ``patch_embed1`` -> ``patch_embed``; ``patch_embed{k}`` -> ``stages.{k-1}.downsample``
    (k >= 2); ``block{k}.{j}`` -> ``stages.{k-1}.blocks.{j}``; ``norm{k}`` ->
    ``stages.{k-1}.norm``; ``mlp.dwconv.dwconv`` -> ``mlp.dwconv``. Other keys (``head.*``)
    are kept.
    """
    out: dict[str, torch.Tensor] = {}
    for key, value in state_dict.items():
        new = key
        for pattern, template in _PVT_RULES:
            match = pattern.match(key)
            if match:
                stage_numbers = [int(g) for g in match.groups()]
                if stage_numbers:
                    stage_numbers[0] -= 1  # stages count from 0 in timm
                new = template.format(*stage_numbers) + key[match.end() :]
                break
        new = new.replace(".mlp.dwconv.dwconv.", ".mlp.dwconv.")
        if new in out:
            raise ValueError(f"two PVTv2 keys map onto {new!r}")
        out[new] = value
    return out
