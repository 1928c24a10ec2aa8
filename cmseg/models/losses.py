"""Losses shared by several methods (method-independent; each method's own objective lives in
``cmseg/models/<method>/loss.py``, e.g. :func:`cmseg.models.xmsnet.xmsnet_loss` and
:func:`cmseg.models.cmpc.cmpc_loss`).

:func:`dice_loss` is the soft Dice loss on logits. The ris task adds it to CMPC's objective;
the referring-video methods SOC and CMA (``models/soc/``, ``models/cma/``) use Dice too, which
is why it lives here and not beside one method. This module imports no method's model.
"""

from __future__ import annotations

import torch

from cmseg.models.layers import resize_bilinear

__all__ = ["dice_loss"]


def dice_loss(logits: torch.Tensor, target: torch.Tensor, *, smooth: float = 1.0) -> torch.Tensor:
    """Soft Dice loss ``1 - (2 sum p t + smooth) / (sum p + sum t + smooth)`` per sample,
    averaged over the batch; ``p = sigmoid(logits)`` resized bilinearly to the target.

    Not part of CMPC: an optional extra term (``data.options.loss_dice_weight`` of the ris
    task) that counters the background's share of the pixels when an object covers a few
    percent of the image, so that foreground predictions appear early in short runs.

    Args:
        logits: ``B x 1 x h x w``.
        target: ``B x 1 x H x W`` in [0, 1].
        smooth: added to both sides (an empty target and an empty prediction give 0 loss).

    Returns:
        Scalar in [0, 1).
    """
    p = resize_bilinear(logits, target.shape[-2:]).sigmoid().flatten(1)
    t = target.to(p.dtype).flatten(1)
    overlap = (p * t).sum(dim=1)
    return (1 - (2 * overlap + smooth) / (p.sum(dim=1) + t.sum(dim=1) + smooth)).mean()
