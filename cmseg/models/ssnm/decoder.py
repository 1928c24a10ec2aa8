"""SSNM's channel lifting, top-down decoder and two-way softmax head (reference
ssnm_coseg.md §2.1, §2.5).

* **Channel lifting** per level (the official ``incr_channel1[k]``, ``incr_channel2[k]`` and
  the shared ReLU ``incr_channel2[4]``): 3x3 conv ``C_k -> W``, 3x3 conv ``W -> W``, ReLU; no
  normalisation and no activation between the two convs. The lifted maps are >= 0.
* **Top-down decoder**: a stage is 1x1 conv + ReLU, (+ the deeper stage's output), 3x3 conv +
  ReLU, and, except at the finest level, a transposed conv (kernel 4, stride 2, padding 1)
  that doubles the resolution. The stages of levels 4, 3 and 2 are **one module** in the
  official code (``concat4``, ``concat3`` and ``concat2`` wrap the same layers), so they share
  their weights; level 1 has its own.
* **Head**: 3x3 conv ``W -> 2``, transposed conv (kernel 8, stride 4, padding 2) to the input
  resolution, softmax over the two channels; channel 0 is the foreground.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

__all__ = ["ChannelLifting", "TopDownStage", "TopDownDecoder", "MaskHead"]


class ChannelLifting(nn.Module):
    """``(B, C_in, h, w) -> (B, W, h, w)``, values >= 0 (module docstring)."""

    def __init__(self, in_channels: int, width: int) -> None:
        super().__init__()
        self.expand = nn.Conv2d(in_channels, width, 3, padding=1)
        self.refine = nn.Conv2d(width, width, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.refine(self.expand(x)))


class TopDownStage(nn.Module):
    """One decoder stage: ``(x (B, W, h, w), deeper (B, W, h, w) | None) -> (B, W, h', w')``
    with ``h' = 2 h`` when ``upsample`` (module docstring)."""

    def __init__(self, width: int, *, upsample: bool) -> None:
        super().__init__()
        self.reduce = nn.Conv2d(width, width, 1)
        self.mix = nn.Conv2d(width, width, 3, padding=1)
        self.up = nn.ConvTranspose2d(width, width, 4, stride=2, padding=1) if upsample else None

    def forward(self, x: torch.Tensor, deeper: torch.Tensor | None = None) -> torch.Tensor:
        x = torch.relu(self.reduce(x))
        if deeper is not None:
            x = x + deeper
        x = torch.relu(self.mix(x))
        return self.up(x) if self.up is not None else x


class TopDownDecoder(nn.Module):
    """Levels 4 -> 1: ``forward([y1, y2, y3, y4])`` (finest first, each ``(B, W, h_k, w_k)``
    with ``h_k = 2 h_{k+1}``) -> ``(B, W, h_1, w_1)``.

    Args:
        width: W.
        shared: one stage for levels 4, 3 and 2 (the official weight sharing); False gives
            each its own weights.
    """

    def __init__(self, width: int, *, shared: bool = True) -> None:
        super().__init__()
        self.coarse = nn.ModuleList(
            [TopDownStage(width, upsample=True)]
            if shared
            else [TopDownStage(width, upsample=True) for _ in range(3)]
        )
        self.finest = TopDownStage(width, upsample=False)

    def stage(self, level: int) -> TopDownStage:
        """The stage of level 2, 3 or 4 (the same module when shared)."""
        return self.coarse[0] if len(self.coarse) == 1 else self.coarse[4 - level]

    def forward(self, levels: Sequence[torch.Tensor]) -> torch.Tensor:
        y1, y2, y3, y4 = levels
        x = self.stage(4)(y4)
        x = self.stage(3)(y3, x)
        x = self.stage(2)(y2, x)
        return self.finest(y1, x)


class MaskHead(nn.Module):
    """``(B, W, h, w) -> (B, 2, 4 h, 4 w)`` scores; softmax channel 0 is the foreground."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.score = nn.Conv2d(width, 2, 3, padding=1)
        self.up = nn.ConvTranspose2d(2, 2, 8, stride=4, padding=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.up(self.score(x))
