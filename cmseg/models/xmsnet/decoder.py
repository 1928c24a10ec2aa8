"""XMSNet, part 3: the Coarse-to-Fine Decoder (see :mod:`cmseg.models.xmsnet`).

A shared coarse decoder runs top-down over the fused maps (multi-scale pooling blocks, a mask
per stage). Then *specificity-aware querying*: at every stage each modality's own encoder
features query the mask-weighted decoded features through transposed (channel) attention, and
a fine path merges the results top-down, with a mask after each merge.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from cmseg.models.xmsnet.blocks import (
    BasicConv2d,
    PixelLayerNorm,
    PixelLinear,
    transposed_attention,
)

__all__ = [
    "MultiScalePooling",
    "MaskHead",
    "CoarseDecoder",
    "QueryAttention",
    "SpecificityQuery",
    "FineDecoder",
    "CoarseToFineDecoder",
]


def _resize_to(x: torch.Tensor, size: tuple[int, int] | torch.Size) -> torch.Tensor:
    """Bilinear resize with ``align_corners=True``, the official code's upsampling."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=True)


class MultiScalePooling(nn.Module):
    """The multi-scale pooling block of the coarse decoder (``LGB`` in the official code).

    A 1x1 conv widens C to 4C; the four C-channel groups are max-pooled with windows 1, 3, 5
    and 7 (stride 1, same size); a depthwise 3x3 conv + BN mixes them, a 1x1 conv maps back
    to C.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.expand = nn.Conv2d(channels, 4 * channels, 1)
        self.mix = nn.Sequential(
            nn.Conv2d(4 * channels, 4 * channels, 3, padding=1, groups=4 * channels, bias=False),
            nn.BatchNorm2d(4 * channels),
        )
        self.reduce = nn.Conv2d(4 * channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``B x C x H x W -> B x C x H x W``."""
        groups = self.expand(x).chunk(4, dim=1)
        pooled = [groups[0]] + [
            F.max_pool2d(g, k, stride=1, padding=k // 2)
            for g, k in zip(groups[1:], (3, 5, 7), strict=True)
        ]
        return self.reduce(self.mix(torch.cat(pooled, dim=1)))


class MaskHead(nn.Sequential):
    """conv3x3 (C -> C/2) + BN, then conv1x1 to one logit channel."""

    def __init__(self, channels: int) -> None:
        super().__init__(BasicConv2d(channels, channels // 2, 3), nn.Conv2d(channels // 2, 1, 1))


class CoarseDecoder(nn.Module):
    """Shared (coarse) decoding, top-down over the four fused maps.

    ``dec_4 = Linear(MSP_4(f_4) * AvgPool3x3(f_4))`` and
    ``dec_i = Linear(MSP_i(f_i) * Up(dec_{i+1}))`` for i = 3, 2, 1, with a per-pixel linear
    layer and a mask head per stage.

    Args:
        channels: width C of the fused maps.
        num_stages: number of pyramid levels (4).
    """

    def __init__(self, channels: int, num_stages: int = 4) -> None:
        super().__init__()
        self.pools = nn.ModuleList(MultiScalePooling(channels) for _ in range(num_stages))
        self.linears = nn.ModuleList(PixelLinear(channels, channels) for _ in range(num_stages))
        self.heads = nn.ModuleList(MaskHead(channels) for _ in range(num_stages))

    def forward(self, fused: list[torch.Tensor]) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Decode.

        Args:
            fused: the fused maps, finest first, each ``B x C x H / s_i x W / s_i``.

        Returns:
            ``(decoded, masks)``: per stage (finest first) the ``B x C x h x w`` decoded map
            and its ``B x 1 x h x w`` mask logits.
        """
        decoded: list[torch.Tensor] = [fused[0]] * len(fused)
        masks: list[torch.Tensor] = [fused[0]] * len(fused)
        above: torch.Tensor | None = None
        for i in reversed(range(len(fused))):
            if above is None:
                context = F.avg_pool2d(fused[i], 3, stride=1, padding=1)
            else:
                context = _resize_to(above, fused[i].shape[-2:])
            above = self.linears[i](self.pools[i](fused[i]) * context)
            decoded[i] = above
            masks[i] = self.heads[i](above)
        return decoded, masks


class QueryAttention(nn.Module):
    """The specific features query the mask-weighted decoded features, across channels.

    Queries: 1x1 convs of the RGB and the aux features (C/2 channels each), concatenated and
    mixed by a 1x1 conv; keys and values: 1x1 convs of the mask-weighted decoded map.
    :func:`~cmseg.models.layers.transposed_attention` with a per-head temperature, an output
    1x1 conv and a residual to the decoded map (``Merge_Attention`` in the official code).

    Args:
        channels: width C.
        heads: number of attention heads.
    """

    def __init__(self, channels: int, heads: int = 2) -> None:
        super().__init__()
        self.heads = heads
        self.temperature = nn.Parameter(torch.ones(heads, 1, 1))
        self.q_rgb = nn.Conv2d(channels, channels // 2, 1, bias=False)
        self.q_aux = nn.Conv2d(channels, channels // 2, 1, bias=False)
        self.q_mix = nn.Conv2d(channels, channels, 1, bias=False)
        self.k = nn.Conv2d(channels, channels, 1, bias=False)
        self.v = nn.Conv2d(channels, channels, 1, bias=False)
        self.proj = nn.Conv2d(channels, channels, 1, bias=False)

    def forward(self, x_rgb: torch.Tensor, x_aux: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """Three ``B x C x h x w`` maps -> ``B x C x h x w``."""
        q = self.q_mix(torch.cat([self.q_rgb(x_rgb), self.q_aux(x_aux)], dim=1))
        out = transposed_attention(q, self.k(z), self.v(z), self.heads, self.temperature)
        return self.proj(out) + z


class SpecificityQuery(nn.Module):
    """Specificity-aware querying at one stage: :class:`QueryAttention`, then a pre-norm FFN.

    The official FFN is a single ``Linear(C, C)`` on the LayerNorm-ed tokens with a residual
    (``ffn_expansion_factor=2`` halves back to C; no activation); kept as is.
    """

    def __init__(self, channels: int, heads: int = 2) -> None:
        super().__init__()
        self.attn = QueryAttention(channels, heads)
        self.norm = PixelLayerNorm(channels)
        self.ffn = PixelLinear(channels, channels)

    def forward(self, x_rgb: torch.Tensor, x_aux: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """Three ``B x C x h x w`` maps -> ``B x C x h x w``."""
        y = self.attn(x_rgb, x_aux, z)
        return y + self.ffn(self.norm(y))


class FineDecoder(nn.Module):
    """Specificity-aware querying at every stage, then the fine fusion path.

    At stage i the raw encoder features of each modality (projected to C by conv3x3 + BN)
    query ``dec_i * sigmoid(mask_i)``. The results are merged top-down
    (``conv3x3 + BN`` of ``[Up(x), q_i]``) from stage 4 to 1, with a mask head after each
    merge (stage 4 has none of its own).

    Args:
        in_channels: widths of the encoder levels, finest first.
        channels: width C.
        heads: attention heads.
    """

    def __init__(self, in_channels: list[int], channels: int, heads: int = 2) -> None:
        super().__init__()
        n = len(in_channels)
        self.proj_rgb = nn.ModuleList(BasicConv2d(c, channels, 3) for c in in_channels)
        self.proj_aux = nn.ModuleList(BasicConv2d(c, channels, 3) for c in in_channels)
        self.queries = nn.ModuleList(SpecificityQuery(channels, heads) for _ in range(n))
        self.merges = nn.ModuleList(BasicConv2d(2 * channels, channels, 3) for _ in range(n - 1))
        self.heads = nn.ModuleList(MaskHead(channels) for _ in range(n - 1))

    def forward(
        self,
        feats_rgb: list[torch.Tensor],
        feats_aux: list[torch.Tensor],
        decoded: list[torch.Tensor],
        masks: list[torch.Tensor],
    ) -> list[torch.Tensor]:
        """Decode.

        Args:
            feats_rgb, feats_aux: encoder levels, finest first, ``B x C_i x h_i x w_i``.
            decoded, masks: the coarse decoder's outputs (finest first).

        Returns:
            Mask logits of the merges from coarse to fine: strides 16, 8, 4 (for 4 levels),
            each ``B x 1 x h_i x w_i``.
        """
        queried = [
            query(p_rgb(f_rgb), p_aux(f_aux), dec * mask.sigmoid())
            for query, p_rgb, p_aux, f_rgb, f_aux, dec, mask in zip(
                self.queries,
                self.proj_rgb,
                self.proj_aux,
                feats_rgb,
                feats_aux,
                decoded,
                masks,
                strict=True,
            )
        ]
        x = queried[-1]
        logits = []
        for i in reversed(range(len(queried) - 1)):
            x = self.merges[i](torch.cat([_resize_to(x, queried[i].shape[-2:]), queried[i]], 1))
            logits.append(self.heads[i](x))
        return logits


class CoarseToFineDecoder(nn.Module):
    """The Coarse-to-Fine Decoder: :class:`CoarseDecoder` then :class:`FineDecoder`."""

    def __init__(self, coarse: CoarseDecoder, fine: FineDecoder) -> None:
        super().__init__()
        self.coarse = coarse
        self.fine = fine

    def forward(
        self,
        feats_rgb: list[torch.Tensor],
        feats_aux: list[torch.Tensor],
        fused: list[torch.Tensor],
        size: tuple[int, int],
    ) -> list[torch.Tensor]:
        """Decode to side outputs at ``size``.

        Returns:
            ``2 n - 1`` logit maps ``B x 1 x H x W``: the coarse masks from the coarsest level
            to the finest, then the fine masks from coarse to fine; the last is the
            prediction.
        """
        decoded, masks = self.coarse(fused)
        fine = self.fine(feats_rgb, feats_aux, decoded, masks)
        return [_resize_to(m, size) for m in [*reversed(masks), *fine]]
