"""XMSNet, part 2: the All-round Attentive Fusion block (see :mod:`cmseg.models.xmsnet`).

Per stage, each modality's features split into a shared part (the global mean vector) and a
specific part (the residual at every pixel). *Proportion* weighs the modalities per sample from
the shared parts, *region* (spatial) and *pattern* (channel) gates come from the specific
parts, a per-pixel linear layer fuses the gated features, and stages 2-4 add the max-pooled
fused map of the stage above.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from cmseg.models.xmsnet.blocks import GCT, PixelLinear, channel_shuffle

__all__ = [
    "ProportionMode",
    "proportion_weights",
    "ModalityProportion",
    "RegionAttention",
    "PatternAttention",
    "AllRoundFusion",
]

ProportionMode = Literal["safe", "official"]


def proportion_weights(
    alpha: torch.Tensor, beta: torch.Tensor, *, mode: ProportionMode = "safe", eps: float = 1e-4
) -> tuple[torch.Tensor, torch.Tensor]:
    """Turn the two similarities into the two modality weights (see the module docstring).

    Args:
        alpha: ``B`` cosine similarities of the RGB embedding with the mixed one, in [-1, 1].
        beta: ``B`` the same for the aux embedding.
        mode: ``"safe"`` (clamped at 0, eps-smoothed, weights in [0, 1]) or ``"official"``
            (``alpha / (alpha + beta)`` with the denominator held at eps or more in size).
        eps: the smoothing term.

    Returns:
        ``(a_rgb, a_aux)``, each ``B``, finite for every input; they sum to 1.
    """
    if mode == "official":
        total = alpha + beta
        total = torch.where(total >= 0, total.clamp(min=eps), total.clamp(max=-eps))
        return alpha / total, beta / total
    if mode != "safe":
        raise ValueError(f"proportion mode must be 'safe' or 'official', not {mode!r}")
    a = alpha.clamp(min=0) + eps
    b = beta.clamp(min=0) + eps
    return a / (a + b), b / (a + b)


class ModalityProportion(nn.Module):
    """*Proportion*: one weight per modality and sample from the shared (global) components.

    Each global mean vector is embedded by two linear layers (``C -> C/2 -> C/4``, no
    non-linearity, as in the official code); their product is mixed by a third; the cosine
    similarity of each modality's embedding with the mix gives alpha and beta, and
    :func:`proportion_weights` turns them into weights: the modality that agrees less with
    the mix contributes less.

    Args:
        channels: width C of the fused features.
        mode: see :func:`proportion_weights`.
        eps: see :func:`proportion_weights`.
    """

    def __init__(self, channels: int, *, mode: ProportionMode = "safe", eps: float = 1e-4) -> None:
        super().__init__()
        self.embed_rgb = nn.Sequential(
            nn.Linear(channels, channels // 2), nn.Linear(channels // 2, channels // 4)
        )
        self.embed_aux = nn.Sequential(
            nn.Linear(channels, channels // 2), nn.Linear(channels // 2, channels // 4)
        )
        self.mix = nn.Linear(channels // 4, channels // 4)
        self.mode: ProportionMode = mode
        self.eps = eps

    def forward(
        self, shared_rgb: torch.Tensor, shared_aux: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``B x C`` global means of both modalities -> two ``B`` weights summing to 1."""
        v_rgb = self.embed_rgb(shared_rgb)
        v_aux = self.embed_aux(shared_aux)
        v_mix = self.mix(v_rgb * v_aux)
        alpha = F.cosine_similarity(v_rgb, v_mix, dim=1, eps=1e-6)
        beta = F.cosine_similarity(v_aux, v_mix, dim=1, eps=1e-6)
        return proportion_weights(alpha, beta, mode=self.mode, eps=self.eps)


class RegionAttention(nn.Module):
    """*Region*: one spatial gate per modality from the specific (residual) components.

    Each modality gets a 3x3 conv; a learned score map (conv, BN, ReLU, conv to 1, BN, ReLU)
    plus the channel max and mean of both modalities make six maps, which a 3x3 conv + BN
    turns into the two gates.

    Args:
        channels: width C.
        duplicate_rgb_mean: official input (RGB mean twice, aux mean missing).
        relu_before_gate: official ReLU before the sigmoid (gate in [0.5, 1)).
    """

    def __init__(
        self, channels: int, *, duplicate_rgb_mean: bool = False, relu_before_gate: bool = False
    ) -> None:
        super().__init__()
        self.conv_rgb = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv_aux = nn.Conv2d(channels, channels, 3, padding=1)
        self.score_rgb = self._score(channels)
        self.score_aux = self._score(channels)
        self.mix = nn.Sequential(nn.Conv2d(6, 2, 3, padding=1), nn.BatchNorm2d(2))
        self.duplicate_rgb_mean = duplicate_rgb_mean
        self.relu_before_gate = relu_before_gate

    @staticmethod
    def _score(channels: int) -> nn.Sequential:
        return nn.Sequential(
            nn.Conv2d(channels, channels // 2, 3, padding=1),
            nn.BatchNorm2d(channels // 2),
            nn.ReLU(inplace=True),
            nn.Conv2d(channels // 2, 1, 3, padding=1),
            nn.BatchNorm2d(1),
            nn.ReLU(inplace=True),
        )

    def forward(
        self, specific_rgb: torch.Tensor, specific_aux: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``B x C x H x W`` residuals -> two ``B x 1 x H x W`` gates in (0, 1)."""
        x_rgb = self.conv_rgb(specific_rgb)
        x_aux = self.conv_aux(specific_aux)
        mean_second = x_rgb if self.duplicate_rgb_mean else x_aux
        maps = torch.cat(
            [
                self.score_rgb(x_rgb),
                self.score_aux(x_aux),
                x_rgb.amax(dim=1, keepdim=True),
                x_aux.amax(dim=1, keepdim=True),
                x_rgb.mean(dim=1, keepdim=True),
                mean_second.mean(dim=1, keepdim=True),
            ],
            dim=1,
        )
        gates = self.mix(maps)
        if self.relu_before_gate:
            gates = F.relu(gates)
        gates = gates.sigmoid()
        return gates[:, :1], gates[:, 1:]


class PatternAttention(nn.Module):
    """*Pattern*: one channel gate per modality from the specific (residual) components.

    Each modality gets its own 3x3 conv; three descriptors per modality (a GCT gate shared by
    both modalities, global average, global max) are concatenated, channel-shuffled in six
    groups and mixed by a 1x1 conv + BN + ReLU into the two gates.

    Args:
        channels: width C.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv_rgb = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv_aux = nn.Conv2d(channels, channels, 3, padding=1)
        self.gct = GCT(channels)
        self.mix = nn.Sequential(
            nn.Conv2d(6 * channels, 2 * channels, 1),
            nn.BatchNorm2d(2 * channels),
            nn.ReLU(inplace=True),
        )

    def forward(
        self, specific_rgb: torch.Tensor, specific_aux: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``B x C x H x W`` residuals -> two ``B x C x 1 x 1`` non-negative gates."""
        x_rgb = self.conv_rgb(specific_rgb)
        x_aux = self.conv_aux(specific_aux)
        descriptors = torch.cat(
            [
                self.gct(x_rgb),
                self.gct(x_aux),
                x_rgb.mean(dim=(2, 3), keepdim=True),
                x_aux.mean(dim=(2, 3), keepdim=True),
                x_rgb.amax(dim=(2, 3), keepdim=True),
                x_aux.amax(dim=(2, 3), keepdim=True),
            ],
            dim=1,
        )
        gates = self.mix(channel_shuffle(descriptors, 6))
        return gates.chunk(2, dim=1)


class AllRoundFusion(nn.Module):
    """The All-round Attentive Fusion block of one stage.

    Args:
        in_channels: width of this stage's encoder features (both modalities).
        channels: width C of the fused map.
        link: whether the block takes the fused map of the stage above (stages 2-4).
        proportion: mode of :class:`ModalityProportion`.
        duplicate_rgb_mean, relu_before_gate: official quirks of :class:`RegionAttention`.
    """

    def __init__(
        self,
        in_channels: int,
        channels: int,
        *,
        link: bool,
        proportion: ProportionMode = "safe",
        duplicate_rgb_mean: bool = False,
        relu_before_gate: bool = False,
    ) -> None:
        super().__init__()
        self.proj_rgb = nn.Conv2d(in_channels, channels, 3, padding=1)
        self.proj_aux = nn.Conv2d(in_channels, channels, 3, padding=1)
        self.proportion = ModalityProportion(channels, mode=proportion)
        self.region = RegionAttention(
            channels, duplicate_rgb_mean=duplicate_rgb_mean, relu_before_gate=relu_before_gate
        )
        self.pattern = PatternAttention(channels)
        self.fuse = PixelLinear(2 * channels, channels)
        self.link = (
            nn.Sequential(
                nn.Conv2d(2 * channels, channels, 3, padding=1),
                nn.BatchNorm2d(channels),
                nn.ReLU(inplace=True),
            )
            if link
            else None
        )

    def forward(
        self, feat_rgb: torch.Tensor, feat_aux: torch.Tensor, previous: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Fuse one stage.

        Args:
            feat_rgb: ``B x C_in x h x w`` RGB encoder features.
            feat_aux: ``B x C_in x h x w`` aux encoder features.
            previous: ``B x C x 2h x 2w`` fused map of the stage above; required iff the
                block was built with ``link=True``.

        Returns:
            ``B x C x h x w`` fused map.
        """
        x_rgb = self.proj_rgb(feat_rgb)
        x_aux = self.proj_aux(feat_aux)
        # Shared part: the global mean vector; specific part: what is left at each pixel.
        shared_rgb = x_rgb.mean(dim=(2, 3), keepdim=True)
        shared_aux = x_aux.mean(dim=(2, 3), keepdim=True)
        specific_rgb = x_rgb - shared_rgb
        specific_aux = x_aux - shared_aux

        a_rgb, a_aux = self.proportion(shared_rgb.flatten(1), shared_aux.flatten(1))
        s_rgb, s_aux = self.region(specific_rgb, specific_aux)
        c_rgb, c_aux = self.pattern(specific_rgb, specific_aux)
        # The weights multiply the full projected features, not the residuals (official).
        weighted_rgb = x_rgb * (a_rgb[:, None, None, None] * s_rgb * c_rgb)
        weighted_aux = x_aux * (a_aux[:, None, None, None] * s_aux * c_aux)
        fused = self.fuse(torch.cat([weighted_rgb, weighted_aux], dim=1))

        if self.link is None:
            if previous is not None:
                raise ValueError("this fusion block has no top-down link; pass previous=None")
            return fused
        if previous is None:
            raise ValueError("this fusion block needs the fused map of the stage above")
        return self.link(torch.cat([fused, F.max_pool2d(previous, 2)], dim=1))
