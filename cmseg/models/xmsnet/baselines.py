"""XMSNet's ablation baselines: early fusion (RGB + aux into one encoder), trained by the demo.

:class:`EarlyFusionNet` is the naive way to use a second signal: concatenate it to the RGB
image as a fourth input channel and run **one** encoder (timm's ``in_chans=4``), then decode
with a light top-down (FPN-style) decoder. It has no modality-specific path, no attentive
fusion and no cross-modal querying, which is exactly what XMSNet adds; comparing the two on
clean and on corrupted aux maps shows what those parts buy. :class:`EarlyFusionC2F` is the
controlled ablation: the same single encoder in front of XMSNet's own coarse-to-fine decoder.

The output convention is XMSNet's: ``model(rgb, aux)`` returns a list of logit maps at the
input resolution, coarse to fine, the last one is the prediction, so the same training loss
(deep supervision over the list: :func:`~cmseg.models.xmsnet.xmsnet_loss` for the seven
outputs of :class:`EarlyFusionC2F`, :func:`~cmseg.models.xmsnet.deep_supervision_loss` for the
four of :class:`EarlyFusionNet`) and the same predictor serve both.
"""

from __future__ import annotations

import os
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from cmseg.models.backbones import create_feature_pyramid, load_backbone_weights, read_state_dict
from cmseg.models.xmsnet.blocks import BasicConv2d
from cmseg.models.xmsnet.decoder import CoarseDecoder, CoarseToFineDecoder, FineDecoder

__all__ = [
    "EarlyFusionNet",
    "TopDownDecoder",
    "EarlyFusionC2F",
    "build_early_fusion",
    "build_early_fusion_c2f",
    "early_fusion_tiny",
    "early_fusion_c2f_tiny",
]


def _conv_bn_relu(in_channels: int, out_channels: int, kernel_size: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


class TopDownDecoder(nn.Module):
    """A light FPN-style decoder with one logit head per level.

    Each level is projected to ``channels`` (1x1 conv + BN + ReLU); from the coarsest level
    down, the running map is upsampled, added to the next level's projection and smoothed by a
    3x3 conv + BN + ReLU; a 1x1 conv after every level gives that level's logits.

    Args:
        in_channels: widths of the encoder levels, finest first.
        channels: width of the decoder.
    """

    def __init__(self, in_channels: list[int], channels: int) -> None:
        super().__init__()
        self.lateral = nn.ModuleList(_conv_bn_relu(c, channels, 1) for c in in_channels)
        self.smooth = nn.ModuleList(_conv_bn_relu(channels, channels, 3) for _ in in_channels)
        self.heads = nn.ModuleList(nn.Conv2d(channels, 1, 1) for _ in in_channels)

    def forward(self, feats: list[torch.Tensor]) -> list[torch.Tensor]:
        """Encoder levels (finest first) -> logits per level, coarsest first, at each level's
        size."""
        x: torch.Tensor | None = None
        logits = []
        for i in reversed(range(len(feats))):
            lateral = self.lateral[i](feats[i])
            if x is not None:
                lateral = lateral + F.interpolate(
                    x, size=lateral.shape[-2:], mode="bilinear", align_corners=False
                )
            x = self.smooth[i](lateral)
            logits.append(self.heads[i](x))
        return logits


class EarlyFusionNet(nn.Module):
    """Naive early fusion: RGB and aux concatenated into one 4-channel encoder.

    Args:
        encoder: a feature pyramid that takes ``B x 4 x H x W`` (e.g.
            ``create_feature_pyramid(name, in_chans=4)``), levels at strides 4, 8, 16, 32.
        decoder: the :class:`TopDownDecoder` sized to the encoder's widths.
    """

    def __init__(self, encoder: nn.Module, decoder: TopDownDecoder) -> None:
        super().__init__()
        self.encoder = encoder
        self.decoder = decoder

    def forward(self, rgb: torch.Tensor, aux: torch.Tensor) -> list[torch.Tensor]:
        """Segment.

        Args:
            rgb: ``B x 3 x H x W`` ImageNet-normalised image; H and W divisible by 32.
            aux: ``B x 1 x H x W`` depth or thermal map in [0, 1].

        Returns:
            One ``B x 1 x H x W`` logit map per encoder level, coarsest first (4 maps for
            strides 32, 16, 8, 4); the last is the prediction.
        """
        if rgb.shape[-2:] != aux.shape[-2:] or rgb.shape[0] != aux.shape[0]:
            raise ValueError(f"rgb {tuple(rgb.shape)} and aux {tuple(aux.shape)} differ in size")
        if rgb.shape[-2] % 32 or rgb.shape[-1] % 32:
            raise ValueError(f"input size {tuple(rgb.shape[-2:])} is not divisible by 32")
        feats = list(self.encoder(torch.cat([rgb, aux.to(rgb.dtype)], dim=1)))
        size = rgb.shape[-2:]
        return [
            F.interpolate(m, size=size, mode="bilinear", align_corners=False)
            for m in self.decoder(feats)
        ]


def build_early_fusion(
    backbone: str = "resnet18",
    *,
    channels: int = 64,
    backbone_weights: str | os.PathLike[str] | None = None,
    drop_path_rate: float = 0.0,
) -> EarlyFusionNet:
    """Build the early-fusion baseline around any timm backbone.

    Args:
        backbone: timm model name; built with ``in_chans=4``.
        channels: decoder width.
        backbone_weights: optional local file with 3-channel ImageNet weights in timm's
            layout; the stem's weights are extended to the fourth channel with the mean of
            the three RGB filters (as timm adapts pretrained stems). Never downloaded.
        drop_path_rate: stochastic depth of the encoder.
    """
    timm_kwargs = {"drop_path_rate": drop_path_rate} if drop_path_rate else {}
    encoder = create_feature_pyramid(backbone, in_chans=4, **timm_kwargs)
    if backbone_weights is not None:
        state = _extend_stem(read_state_dict(backbone_weights), encoder, backbone)
        load_backbone_weights(encoder, state, backbone, source=str(backbone_weights))
    decoder = TopDownDecoder(list(encoder.feature_info.channels()), channels)
    return EarlyFusionNet(encoder, decoder)


def _extend_stem(
    state: dict[str, torch.Tensor], encoder: nn.Module, backbone: str
) -> dict[str, torch.Tensor]:
    """Give 3-input-channel conv weights of ``state`` a fourth channel (the mean filter).

    Only the weights whose shape differs from the 4-channel model's in the input dimension
    alone (``3`` in the file, ``4`` in the model) are touched: that is the stem.
    """
    import timm

    with torch.device("meta"):
        plain = timm.create_model(backbone, pretrained=False, in_chans=4)
    shapes = {k: tuple(v.shape) for k, v in plain.state_dict().items()}
    del plain
    out = dict(state)
    for key, value in state.items():
        want = shapes.get(key)
        if (
            want is not None
            and value.ndim == 4
            and value.shape[1] == 3
            and want[1] == 4
            and tuple(value.shape[:1] + value.shape[2:]) == want[:1] + want[2:]
        ):
            out[key] = torch.cat([value, value.mean(dim=1, keepdim=True)], dim=1) * 0.75
    return out


def early_fusion_tiny(*, backbone: str | None = None, **kwargs: Any) -> EarlyFusionNet:
    """The demo's configuration: a small timm backbone (default ``regnetx_002``), 32 channels."""
    return build_early_fusion(backbone or "regnetx_002", **{"channels": 32, **kwargs})


# --------------------------------------------------------------------------------------------
# Early fusion with XMSNet's own decoder: the controlled ablation


class EarlyFusionC2F(nn.Module):
    """Early fusion in front of XMSNet's coarse-to-fine decoder.

    RGB and aux are concatenated into **one** 4-channel encoder; each level is projected to
    ``C`` channels by conv3x3 + BN (XMSNet's "BasicConv2d") and handed to the same
    :class:`~cmseg.models.xmsnet.CoarseToFineDecoder` that XMSNet uses, in both of its
    modality slots. Everything XMSNet adds on top of plain early fusion -- a separate encoder
    per modality and the all-round attentive fusion -- is missing; everything else (decoder,
    seven side outputs, loss) is the same, so comparing the two measures just that.

    Args:
        encoder: a feature pyramid taking ``B x 4 x H x W``, levels at strides 4, 8, 16, 32.
        projections: one ``C_i -> C`` projection per level, finest first.
        decoder: the coarse-to-fine decoder (``CoarseDecoder(C)`` + ``FineDecoder(C_i, C)``).
    """

    def __init__(self, encoder: nn.Module, projections: nn.ModuleList, decoder: nn.Module) -> None:
        super().__init__()
        self.encoder = encoder
        self.projections = projections
        self.decoder = decoder

    def forward(self, rgb: torch.Tensor, aux: torch.Tensor) -> list[torch.Tensor]:
        """Segment; inputs as :meth:`EarlyFusionNet.forward`.

        Returns:
            Seven ``B x 1 x H x W`` logit maps in XMSNet's order (coarse strides 32..4, fine
            strides 16, 8, 4); the last is the prediction.
        """
        if rgb.shape[-2:] != aux.shape[-2:] or rgb.shape[0] != aux.shape[0]:
            raise ValueError(f"rgb {tuple(rgb.shape)} and aux {tuple(aux.shape)} differ in size")
        if rgb.shape[-2] % 32 or rgb.shape[-1] % 32:
            raise ValueError(f"input size {tuple(rgb.shape[-2:])} is not divisible by 32")
        feats = list(self.encoder(torch.cat([rgb, aux.to(rgb.dtype)], dim=1)))
        fused = [project(f) for project, f in zip(self.projections, feats, strict=True)]
        return self.decoder(feats, feats, fused, (rgb.shape[-2], rgb.shape[-1]))


def build_early_fusion_c2f(
    backbone: str = "resnet18",
    *,
    channels: int = 64,
    heads: int = 2,
    backbone_weights: str | os.PathLike[str] | None = None,
    drop_path_rate: float = 0.0,
) -> EarlyFusionC2F:
    """Build :class:`EarlyFusionC2F` around any timm backbone (arguments as
    :func:`build_early_fusion`; ``channels`` and ``heads`` as XMSNet's)."""
    timm_kwargs = {"drop_path_rate": drop_path_rate} if drop_path_rate else {}
    encoder = create_feature_pyramid(backbone, in_chans=4, **timm_kwargs)
    if backbone_weights is not None:
        state = _extend_stem(read_state_dict(backbone_weights), encoder, backbone)
        load_backbone_weights(encoder, state, backbone, source=str(backbone_weights))
    in_channels = list(encoder.feature_info.channels())
    projections = nn.ModuleList(BasicConv2d(c, channels, 3) for c in in_channels)
    decoder = CoarseToFineDecoder(
        CoarseDecoder(channels, len(in_channels)), FineDecoder(in_channels, channels, heads)
    )
    return EarlyFusionC2F(encoder, projections, decoder)


def early_fusion_c2f_tiny(*, backbone: str | None = None, **kwargs: Any) -> EarlyFusionC2F:
    """The size of :func:`~cmseg.models.xmsnet.xmsnet_tiny` (32 channels), one encoder."""
    return build_early_fusion_c2f(backbone or "regnetx_002", **{"channels": 32, **kwargs})
