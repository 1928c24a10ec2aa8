"""Official SSNM checkpoints (github.com/cj4L/SSNM-Coseg, ``model.py``) -> cmseg's names.

The official ``Model``'s state dict (``SSNM-Coseg_best.pth`` / ``_last.pth``) names:

=========================================  ================================================
official                                   cmseg
=========================================  ================================================
``base.<i>.*`` (44 VGG16-BN modules)       ``backbone.features.<i>.*``
``incr_channel1.<k>.*``                    ``lifting.<k>.expand.*``
``incr_channel2.<k>.*`` (k < 4)            ``lifting.<k>.refine.*``
``sp1.0.*`` / ``sp2.0.*``                  ``semantic.image_pool.0.*`` / ``group_pool.0.*``
``cls_m.0.*`` / ``cls.0.*``                ``semantic.group_vector.0.*`` / ``classifier.*``
``concat4|3|2.<0|2|4>.*`` (one module)     ``decoder.coarse.0.<reduce|mix|up>.*``
``concat1.<0|2>.*``                        ``decoder.finest.<reduce|mix>.*``
``mask.0.*`` / ``mask.1.*``                ``head.score.*`` / ``head.up.*``
=========================================  ================================================

``concat4``, ``concat3`` and ``concat2`` wrap the same layers, so their entries hold the same
tensors; the converter keeps one copy and refuses a checkpoint where they differ. With the
official options (``hsp_layout="official"``, ``spatial_solver="adam"``, groups of 5 at 224 px)
the converted weights compute the official network's function
(:func:`official_options` lists them).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import torch

from cmseg.models.weights import StateDictError

__all__ = ["convert_official_ssnm", "official_options"]

_RULES: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"^base\.(\d+)\."), "backbone.features.{0}."),
    (re.compile(r"^incr_channel1\.(\d+)\."), "lifting.{0}.expand."),
    (re.compile(r"^incr_channel2\.([0-3])\."), "lifting.{0}.refine."),
    (re.compile(r"^sp1\.0\."), "semantic.image_pool.0."),
    (re.compile(r"^sp2\.0\."), "semantic.group_pool.0."),
    (re.compile(r"^cls_m\.0\."), "semantic.group_vector.0."),
    (re.compile(r"^cls\.0\."), "semantic.classifier."),
    (re.compile(r"^concat[234]\.0\."), "decoder.coarse.0.reduce."),
    (re.compile(r"^concat[234]\.2\."), "decoder.coarse.0.mix."),
    (re.compile(r"^concat[234]\.4\."), "decoder.coarse.0.up."),
    (re.compile(r"^concat1\.0\."), "decoder.finest.reduce."),
    (re.compile(r"^concat1\.2\."), "decoder.finest.mix."),
    (re.compile(r"^mask\.0\."), "head.score."),
    (re.compile(r"^mask\.1\."), "head.up."),
)


def official_options() -> dict[str, Any]:
    """The ``ssnm_vgg16`` options under which a converted checkpoint is the official net."""
    return {"num_classes": 78, "hsp_layout": "official", "spatial_solver": "adam"}


def _rename(key: str) -> str | None:
    for pattern, template in _RULES:
        match = pattern.match(key)
        if match:
            return template.format(*match.groups()) + key[match.end() :]
    return None


def convert_official_ssnm(
    state_dict: Mapping[str, torch.Tensor], *, source: str = "state dict"
) -> dict[str, torch.Tensor]:
    """Rename an official SSNM state dict to :class:`~cmseg.models.ssnm.model.SSNM`'s.

    Load the result with :func:`cmseg.models.weights.load_strict` (or
    ``model.load_state_dict(strict=True)``) into ``ssnm_vgg16(**official_options())``:
    missing and unexpected keys are listed in one line.

    Args:
        state_dict: the official ``Model.state_dict()`` (a ``module.`` prefix is removed).

    Raises:
        StateDictError: a key the official model does not have, or shared decoder entries
            that differ.
    """
    state = dict(state_dict)
    if state and all(k.startswith("module.") for k in state):
        state = {k[len("module.") :]: v for k, v in state.items()}
    out: dict[str, torch.Tensor] = {}
    unknown = []
    for key, value in state.items():
        new = _rename(key)
        if new is None:
            unknown.append(key)
            continue
        if new in out:
            if out[new].shape != value.shape or not torch.equal(out[new], value):
                raise StateDictError(
                    source, f"{key} differs from the decoder stage it shares weights with"
                )
            continue
        out[new] = value
    if unknown:
        shown = ", ".join(sorted(unknown)[:3]) + (" ..." if len(unknown) > 3 else "")
        raise StateDictError(source, f"{len(unknown)} key(s) not of the official SSNM: {shown}")
    return out
