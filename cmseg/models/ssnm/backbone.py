"""SSNM's image encoder: a VGG16-BN pyramid, any timm pyramid, and the HRNet figure's fusion.

The official model (reference ssnm_coseg.md §2.1) runs the 44 modules of torchvision's
``vgg16_bn().features`` and taps the outputs of **pool2, pool3, pool4 and pool5** (module
indices 13, 23, 33 and 43: strides 4, 8, 16 and 32; 128, 256, 512 and 512 channels); conv1
and pool1 feed only the next level. :class:`VGGPyramid` keeps torchvision's module indices so
that the official weights file (``vgg16_bn_feat.pth``: the ``features`` state dict, keys
``0.weight``, ``1.running_mean``...) loads as it is (:func:`load_vgg_weights`).

Any timm ``features_only`` backbone can replace it (:func:`build_pyramid` with a timm name),
with its levels at strides 4, 8, 16 and 32. The paper's better variant uses HRNet and draws a
"Fusion" block that merges every resolution into the lowest before the spatial modulator
(:class:`LevelFusion`); the released VGG16 code has no such block.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

import torch
from torch import nn
from torch.nn import functional as F

from cmseg.models.weights import StateDictError, describe_mismatch

__all__ = [
    "VGG16_BN_LAYOUT",
    "VGG16_TAPS",
    "VGGPyramid",
    "load_vgg_weights",
    "build_pyramid",
    "pyramid_channels",
    "LevelFusion",
]

#: torchvision's VGG16 configuration "D": output channels of each 3x3 conv, ``M`` a 2x2 max pool.
VGG16_BN_LAYOUT: tuple[int | str, ...] = (
    64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M",
)  # fmt: skip
#: Indices of pool2 .. pool5 in the 44-module ``features`` list (conv, BN, ReLU per unit).
VGG16_TAPS = (13, 23, 33, 43)
#: The output strides every SSNM pyramid provides, finest first.
STRIDES = (4, 8, 16, 32)


class VGGPyramid(nn.Module):
    """VGG16-BN's convolutional part returning the maps after pool2..pool5.

    Args:
        width_divisor: divide every conv's width by this (1 = the paper's VGG16-BN; 8 gives
            the CPU-sized encoder of ``ssnm_tiny``).

    ``forward(x)``: ``x`` float ``(B, 3, H, W)`` -> 4 maps ``(B, C_k, H / s_k, W / s_k)`` for
    ``s_k`` = 4, 8, 16, 32 (H and W multiples of 32).
    """

    def __init__(self, width_divisor: int = 1) -> None:
        super().__init__()
        if width_divisor < 1:
            raise ValueError(f"width_divisor must be >= 1, got {width_divisor}")
        layers: list[nn.Module] = []
        channels, in_ch = [], 3
        for entry in VGG16_BN_LAYOUT:
            if entry == "M":
                layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
                channels.append(in_ch)
                continue
            out_ch = max(1, int(entry) // width_divisor)
            layers += [nn.Conv2d(in_ch, out_ch, 3, padding=1), nn.BatchNorm2d(out_ch), nn.ReLU()]
            in_ch = out_ch
        self.features = nn.Sequential(*layers)
        # pool1 .. pool5 widths; the pyramid keeps pool2 .. pool5.
        self.channels = tuple(channels[1:])

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        taps = []
        for index, layer in enumerate(self.features):
            x = layer(x)
            if index in VGG16_TAPS:
                taps.append(x)
        return taps


def load_vgg_weights(
    pyramid: VGGPyramid, state_dict: Mapping[str, torch.Tensor], *, source: str = "weights"
) -> None:
    """Load torchvision VGG16-BN weights into ``pyramid``, strictly.

    Accepts the ``features`` state dict (the official ``vgg16_bn_feat.pth``: ``0.weight`` ...)
    and the whole model's (``features.0.weight`` ..., whose ``classifier.*`` keys are dropped,
    as the official code deletes the FC layers).

    Raises:
        StateDictError: a missing, unexpected or mis-shaped key (one line naming them).
    """
    state = {k: v for k, v in state_dict.items() if not k.startswith("classifier.")}
    if state and all(k.startswith("features.") for k in state):
        state = {k[len("features.") :]: v for k, v in state.items()}
    target = pyramid.features.state_dict()
    missing = [k for k in target if k not in state]
    unexpected = [k for k in state if k not in target]
    wrong = [
        f"{k} {tuple(v.shape)} vs {tuple(target[k].shape)}"
        for k, v in state.items()
        if k in target and v.shape != target[k].shape
    ]
    if missing or unexpected or wrong:
        raise StateDictError(
            source, describe_mismatch(missing, unexpected, wrong, what="VGG16-BN features")
        )
    pyramid.features.load_state_dict(state)


def build_pyramid(
    name: str, *, weights: str | os.PathLike[str] | None = None, width_divisor: int = 1
) -> nn.Module:
    """The encoder ``name``: ``vgg16_bn`` (:class:`VGGPyramid`) or a timm model name.

    Args:
        weights: a local weights file: torchvision's VGG16-BN layout for ``vgg16_bn``, timm's
            layout otherwise (never a download).
        width_divisor: ``vgg16_bn`` only (see :class:`VGGPyramid`).

    Raises:
        ConfigError: an unknown timm name or one without levels at strides 4..32.
        InputError: an unreadable or non-matching weights file.
    """
    from cmseg.models.backbones import create_feature_pyramid, read_state_dict

    if name == "vgg16_bn":
        pyramid = VGGPyramid(width_divisor)
        if weights is not None:
            load_vgg_weights(pyramid, read_state_dict(weights), source=str(weights))
        return pyramid
    if width_divisor != 1:
        raise ValueError("width_divisor applies to the vgg16_bn backbone only")
    return create_feature_pyramid(name, strides=STRIDES, weights=weights)


def pyramid_channels(pyramid: nn.Module) -> tuple[int, ...]:
    """The widths of the 4 levels of a pyramid from :func:`build_pyramid`."""
    if isinstance(pyramid, VGGPyramid):
        return pyramid.channels
    return tuple(int(c) for c in pyramid.feature_info.channels())  # type: ignore[union-attr]


class LevelFusion(nn.Module):
    """The "Fusion" of the paper's HRNet figure: every level into the coarsest one.

    Each finer level goes through a 1x1 conv and is brought down to the coarsest resolution
    (average pooling over the stride ratio); the results are summed with the coarsest level
    and passed through a ReLU, so the map stays non-negative, as the spatial modulator's
    cosine similarities assume. The paper's text is not available to these notes: the exact
    block (strided convs, normalisation) may differ; the released VGG16 code has none.

    ``forward(levels)``: 4 maps ``(B, C, H_k, W_k)`` of one width -> ``(B, C, H_4, W_4)``.
    """

    def __init__(self, width: int, levels: int = 4) -> None:
        super().__init__()
        self.project = nn.ModuleList(nn.Conv2d(width, width, 1) for _ in range(levels - 1))

    def forward(self, levels: Sequence[torch.Tensor]) -> torch.Tensor:
        coarsest = levels[-1]
        fused = coarsest
        for conv, level in zip(self.project, levels[:-1], strict=True):
            fused = fused + F.adaptive_avg_pool2d(conv(level), coarsest.shape[-2:])
        return F.relu(fused)
