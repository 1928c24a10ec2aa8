"""SSNM's semantic modulator: hierarchical second-order pooling (HSP), the group's semantic
vector and the multi-label co-category classifier (reference ssnm_coseg.md §2.3).

From the group's top-level lifted maps ``(B, N, C, h, w)``:

1. **Per image**: a 1x1 conv ``C -> c1`` + ReLU, then the Gram matrix of the ``c1`` channels
   over the ``h w`` positions, ``c1 x c1`` flattened (second-order pooling; as in the official
   code, no mean-centring and no ``1 / hw``).
2. **Per group**: the ``N`` per-image vectors of length ``c1^2`` are a ``c1^2``-channel map
   over ``N`` positions; a 1x1 conv ``c1^2 -> c2`` + ReLU and a second Gram over the ``N``
   images give ``c2^2`` numbers.
3. A linear layer ``c2^2 -> C`` + ReLU gives the **group semantic vector** gamma ``(B, C)``,
   the channel scale of every level; a linear layer ``C -> K`` gives the co-category logits.

Paper: 512 -> 64 -> 4096 -> 32 -> 1024 -> 512 -> 78 (c1 = 64, c2 = 32, K = 78).

**The official code's layout** (``hsp_layout="official"``): step 2 is written
``x.view(B, c1 * c1, N, 1)`` on the ``(B * N, c1 * c1)`` per-image vectors, without a permute,
so the "image" axis of the second pooling is not the image axis: position ``j`` collects the
Gram entries with flat index ``= j (mod N)`` of all images. The module's name and the figure
describe pooling per image then across the images, which ``hsp_layout="images"`` (default)
computes; ``"official"`` restores the released behaviour (and is what a converted official
checkpoint was trained with).
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["HSP_LAYOUTS", "SemanticModulator"]

HSP_LAYOUTS = ("images", "official")


def _gram(x: torch.Tensor, mean: bool = False) -> torch.Tensor:
    """``(B, c, n) -> (B, c * c)``: the flattened ``x x^T`` (``/ n`` when ``mean``)."""
    gram = torch.bmm(x, x.transpose(1, 2)).flatten(1)
    return gram / x.shape[-1] if mean else gram


class SemanticModulator(nn.Module):
    """HSP + group vector + co-category classifier (module docstring).

    Args:
        width: C, the width of the lifted maps (and of gamma).
        num_classes: K, the co-categories (78 on COCO).
        hsp_channels: ``(c1, c2)``.
        hsp_layout: ``images`` (the paper's pooling) or ``official`` (the released view).
        hsp_mean: divide each Gram matrix by the number of vectors it sums over (the ``h w``
            positions, then the ``N`` images). Not in the official code, whose sums grow as
            ``(h w)^2 N`` times the fourth power of the features: gamma starts in the
            thousands on real images, which a model trained from scratch at a large learning
            rate does not recover from (its units die in the first steps); with pretrained
            VGG weights and lr 1e-5 the official recipe copes. Default False.

    ``forward(x)``: ``x`` ``(B, N, C, h, w)`` -> ``(gamma (B, C) >= 0, logits (B, K))``.
    """

    def __init__(
        self,
        width: int,
        num_classes: int,
        hsp_channels: tuple[int, int] = (64, 32),
        hsp_layout: str = "images",
        hsp_mean: bool = False,
    ) -> None:
        super().__init__()
        if hsp_layout not in HSP_LAYOUTS:
            raise ValueError(f"hsp_layout must be one of {', '.join(HSP_LAYOUTS)}")
        c1, c2 = (int(c) for c in hsp_channels)
        self.hsp_layout = hsp_layout
        self.hsp_mean = bool(hsp_mean)
        self.image_pool = nn.Sequential(nn.Conv2d(width, c1, 1), nn.ReLU())
        self.group_pool = nn.Sequential(nn.Conv2d(c1 * c1, c2, 1), nn.ReLU())
        self.group_vector = nn.Sequential(nn.Linear(c2 * c2, width), nn.ReLU())
        self.classifier = nn.Linear(width, num_classes)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        b, n = x.shape[:2]
        per_image = self.image_pool(x.flatten(0, 1)).flatten(2)  # (B N, c1, hw)
        grams = _gram(per_image, self.hsp_mean)  # (B N, c1^2)
        if self.hsp_layout == "official":
            grid = grams.reshape(b, -1, n, 1)  # the released view(): no permute
        else:
            grid = grams.reshape(b, n, -1).transpose(1, 2).unsqueeze(-1)  # (B, c1^2, N, 1)
        pooled = self.group_pool(grid).flatten(2)  # (B, c2, N)
        gamma = self.group_vector(_gram(pooled, self.hsp_mean))
        return gamma, self.classifier(gamma)
