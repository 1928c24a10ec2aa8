"""CMPC's training loss (models return logits; the losses live beside them, DESIGN §3).

CMPC's objective (:func:`cmpc_loss`) is sigmoid BCE on the final and the three per-level
logit maps, resized to the mask, weighted 0.7 and 0.1 each. The ris task may add the shared
soft Dice term (:func:`cmseg.models.losses.dice_loss`, not part of CMPC).
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F

from cmseg.models.cmpc.model import CMPCOutput
from cmseg.models.layers import resize_bilinear

__all__ = ["cmpc_loss"]


def cmpc_loss(
    output: CMPCOutput,
    target: torch.Tensor,
    *,
    final_weight: float = 0.7,
    level_weight: float = 0.1,
    reduction: Literal["mean", "sum"] = "mean",
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """CMPC's training objective: ``0.7 L(final) + 0.1 sum_l L(level_l)``.

    ``L`` is sigmoid binary cross-entropy on the logits resized bilinearly
    (``align_corners=False``) to the target's size, as the official code computes it on the
    logits upsampled to 320 x 320.

    Args:
        output: :class:`~cmseg.models.cmpc.CMPCOutput` (``final`` and ``levels``,
            ``B x 1 x h x w`` logits each).
        target: ``B x 1 x H x W`` mask in [0, 1].
        final_weight: weight of the final map (0.7).
        level_weight: weight of each level's map (0.1).
        reduction: ``"mean"`` (default): BCE averaged over pixels and the batch, so the
            loss's scale, and with it the right learning rate and the balance against
            weight decay, does not depend on the image size. ``"sum"``: the official
            ``weighed_logistic_loss``, summed over the pixels of each image and averaged over
            the batch (about ``H W`` = 1e5 times larger at 320 x 320).

    Returns:
        ``(total, parts)``: the scalar loss and its detached, unweighted parts ``final`` and
        ``c3``, ``c4``, ``c5`` (one per level, finest first).
    """
    if reduction not in ("mean", "sum"):
        raise ValueError(f"reduction must be 'mean' or 'sum', not {reduction!r}")
    final = output.final
    if target.ndim != 4 or target.shape[1] != 1 or target.shape[0] != final.shape[0]:
        raise ValueError(f"target {tuple(target.shape)} does not match logits {tuple(final.shape)}")
    target = target.to(final.dtype)

    def bce(logits: torch.Tensor) -> torch.Tensor:
        logits = resize_bilinear(logits, target.shape[-2:])  # a no-op at the target's size
        loss = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
        return loss.mean() if reduction == "mean" else loss.sum(dim=(1, 2, 3)).mean()

    parts = {"final": bce(final)}
    total = final_weight * parts["final"]
    for i, logits in enumerate(output.levels):
        parts[f"c{i + 3}"] = bce(logits)
        total = total + level_weight * parts[f"c{i + 3}"]
    return total, {name: value.detach() for name, value in parts.items()}
