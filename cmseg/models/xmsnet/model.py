"""XMSNet, part 4: the model assembled from built parts, and its builders.

See :mod:`cmseg.models.xmsnet` for the architecture and the official-code quirks.
"""

from __future__ import annotations

import os
from typing import Any

import torch
from torch import nn

from cmseg.models.backbones import create_feature_pyramid, load_backbone_weights, read_state_dict
from cmseg.models.xmsnet.decoder import CoarseDecoder, CoarseToFineDecoder, FineDecoder
from cmseg.models.xmsnet.fusion import AllRoundFusion, ProportionMode

__all__ = ["XMSNet", "build_xmsnet", "xmsnet_pvt_v2_b5", "xmsnet_tiny"]


# --------------------------------------------------------------------------------------------
# 1 and 4. Encoders and the model


class XMSNet(nn.Module):
    """XMSNet, assembled from built parts.

    Args:
        rgb_encoder: feature pyramid of the RGB image (e.g. from
            :func:`~cmseg.models.backbones.create_feature_pyramid`), levels at strides
            4, 8, 16, 32.
        aux_encoder: a separate pyramid of the same shape for the aux map.
        fusion: one :class:`AllRoundFusion` per level, finest first.
        decoder: the :class:`CoarseToFineDecoder`.
    """

    def __init__(
        self,
        rgb_encoder: nn.Module,
        aux_encoder: nn.Module,
        fusion: nn.ModuleList,
        decoder: CoarseToFineDecoder,
    ) -> None:
        super().__init__()
        self.rgb_encoder = rgb_encoder
        self.aux_stem = nn.Conv2d(1, 3, 1)  # learnable 1 -> 3 channels, no fixed replication
        self.aux_encoder = aux_encoder
        self.fusion = fusion
        self.decoder = decoder

    def encode(
        self, rgb: torch.Tensor, aux: torch.Tensor
    ) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Both pyramids, finest level first."""
        return list(self.rgb_encoder(rgb)), list(self.aux_encoder(self.aux_stem(aux)))

    def fuse(
        self, feats_rgb: list[torch.Tensor], feats_aux: list[torch.Tensor]
    ) -> list[torch.Tensor]:
        """All-round attentive fusion at every level, finest first, each fed the one above."""
        fused: list[torch.Tensor] = []
        for block, f_rgb, f_aux in zip(self.fusion, feats_rgb, feats_aux, strict=True):
            fused.append(block(f_rgb, f_aux, fused[-1] if fused else None))
        return fused

    def forward(self, rgb: torch.Tensor, aux: torch.Tensor) -> list[torch.Tensor]:
        """Segment.

        Args:
            rgb: ``B x 3 x H x W`` ImageNet-normalised image; H and W divisible by 32.
            aux: ``B x 1 x H x W`` depth or thermal map in [0, 1].

        Returns:
            Seven ``B x 1 x H x W`` logit maps ``[S0, ..., S6]``: the coarse decoder at
            strides 32, 16, 8, 4, then the fine decoder at strides 16, 8, 4, all resized to
            ``H x W``. ``S6`` is the prediction (sigmoid it for probabilities).
        """
        if rgb.shape[-2:] != aux.shape[-2:] or rgb.shape[0] != aux.shape[0]:
            raise ValueError(f"rgb {tuple(rgb.shape)} and aux {tuple(aux.shape)} differ in size")
        if rgb.shape[-2] % 32 or rgb.shape[-1] % 32:
            raise ValueError(f"input size {tuple(rgb.shape[-2:])} is not divisible by 32")
        feats_rgb, feats_aux = self.encode(rgb, aux)
        fused = self.fuse(feats_rgb, feats_aux)
        return self.decoder(feats_rgb, feats_aux, fused, (rgb.shape[-2], rgb.shape[-1]))


# --------------------------------------------------------------------------------------------
# 5. Builders


def build_xmsnet(
    backbone: str = "pvt_v2_b5",
    *,
    channels: int = 64,
    heads: int = 2,
    backbone_weights: str | os.PathLike[str] | None = None,
    drop_path_rate: float = 0.0,
    official: bool = False,
    proportion: ProportionMode | None = None,
    duplicate_rgb_mean: bool | None = None,
    relu_before_gate: bool | None = None,
) -> XMSNet:
    """Build XMSNet around any timm backbone.

    Args:
        backbone: timm model name used for both encoders.
        channels: width of the fusion blocks and decoders (64 in the paper).
        heads: attention heads of the specificity-aware querying (2 in the paper).
        backbone_weights: local file with the backbone's ImageNet weights in timm's layout
            (or the PVTv2 authors' layout), loaded into both encoders as the official code
            does. Never downloaded.
        drop_path_rate: stochastic depth of the encoders (effectively 0 in the official code).
        official: restore every official quirk (see the module docstring); the three
            arguments below override it one by one.
        proportion: ``"safe"`` or ``"official"``.
        duplicate_rgb_mean: official region-attention input.
        relu_before_gate: official ReLU before the region gate's sigmoid.
    """
    proportion = proportion or ("official" if official else "safe")
    duplicate_rgb_mean = official if duplicate_rgb_mean is None else duplicate_rgb_mean
    relu_before_gate = official if relu_before_gate is None else relu_before_gate

    timm_kwargs = {"drop_path_rate": drop_path_rate} if drop_path_rate else {}
    encoders = [create_feature_pyramid(backbone, **timm_kwargs) for _ in range(2)]
    if backbone_weights is not None:
        state = read_state_dict(backbone_weights)
        for encoder in encoders:
            load_backbone_weights(encoder, state, backbone, source=str(backbone_weights))
    in_channels = list(encoders[0].feature_info.channels())
    fusion = nn.ModuleList(
        AllRoundFusion(
            c,
            channels,
            link=i > 0,
            proportion=proportion,
            duplicate_rgb_mean=duplicate_rgb_mean,
            relu_before_gate=relu_before_gate,
        )
        for i, c in enumerate(in_channels)
    )
    decoder = CoarseToFineDecoder(
        CoarseDecoder(channels, len(in_channels)), FineDecoder(in_channels, channels, heads)
    )
    return XMSNet(encoders[0], encoders[1], fusion, decoder)


def xmsnet_pvt_v2_b5(*, backbone: str | None = None, **kwargs: Any) -> XMSNet:
    """The paper's configuration: two PVT-v2-b5 encoders, 64 channels (167.1 M parameters)."""
    return build_xmsnet(backbone or "pvt_v2_b5", **{"channels": 64, **kwargs})


def xmsnet_tiny(*, backbone: str | None = None, **kwargs: Any) -> XMSNet:
    """A small configuration for CPU tests and the demo: PVT-v2-b0 encoders, 32 channels."""
    return build_xmsnet(backbone or "pvt_v2_b0", **{"channels": 32, **kwargs})
