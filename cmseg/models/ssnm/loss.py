"""SSNM's training objective (reference ssnm_coseg.md §3; the official ``loss.py``).

``total = w1 * wbce + w2 * cls + w3 * smooth_l1``, weights 1 / 1 / 1:

* **wbce**: binary cross-entropy of the foreground probability, each pixel weighted. With
  ``foreground_weight="official"`` (default, for reproduction) a foreground pixel weighs ``p``
  and a background pixel ``1 - p``, where ``p`` is the foreground fraction of the whole batch:
  the *majority* class weighs more, the reverse of the usual class balancing (HED-style,
  ``"balanced"``: foreground ``1 - p``, background ``p``). Averaged over all pixels of the
  batch, as ``F.binary_cross_entropy(..., weight=w)`` does.
* **cls**: multi-label BCE of the co-category probabilities against the multi-hot labels
  (left out when the model has no semantic modulator).
* **smooth_l1**: ``F.smooth_l1_loss`` (beta 1) between the foreground probability and the mask.

The cross-entropy is computed from the head's scores: the softmax's channel 0 is
``sigmoid(l0 - l1)``, so BCE on the probability equals BCE-with-logits on ``l0 - l1`` (the
same function, without the official ``log`` clamp at -100 and safe under autocast).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch.nn import functional as F

__all__ = ["FOREGROUND_WEIGHTS", "ssnm_loss", "pixel_weights"]

FOREGROUND_WEIGHTS = ("official", "balanced")


def pixel_weights(masks: torch.Tensor, foreground_weight: str = "official") -> torch.Tensor:
    """Per-pixel weights of the wbce term for ``masks`` (any shape, values in {0, 1})."""
    if foreground_weight not in FOREGROUND_WEIGHTS:
        raise ValueError(
            f"foreground_weight must be one of {', '.join(FOREGROUND_WEIGHTS)}, "
            f"got {foreground_weight!r}"
        )
    fg = masks > 0.5
    p = fg.float().mean()
    fg_w, bg_w = (p, 1 - p) if foreground_weight == "official" else (1 - p, p)
    return torch.where(fg, fg_w, bg_w)


def ssnm_loss(
    output: Any,
    masks: torch.Tensor,
    labels: torch.Tensor | None = None,
    *,
    foreground_weight: str = "official",
    weights: Sequence[float] = (1.0, 1.0, 1.0),
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The SSNM loss (module docstring).

    Args:
        output: an :class:`~cmseg.models.ssnm.model.SSNMOutput` (``logits`` (B, N, 2, H, W),
            ``mask`` (B, N, H, W), ``cls`` (B, K) or None).
        masks: float ``(B, N, H, W)`` in {0, 1}.
        labels: float ``(B, K)`` multi-hot co-categories (needed when ``output.cls`` is set).
        foreground_weight: ``official`` or ``balanced``.
        weights: of wbce, cls and smooth_l1.

    Returns:
        ``(total, {"wbce", "cls", "smooth_l1"})``, the parts detached (cls absent without a
        classifier).
    """
    w_bce, w_cls, w_sl1 = (float(w) for w in weights)
    target = masks.float()
    logits = output.logits.float()
    margin = logits[:, :, 0] - logits[:, :, 1]  # sigmoid(margin) = softmax channel 0
    wbce = F.binary_cross_entropy_with_logits(
        margin, target, weight=pixel_weights(target, foreground_weight)
    )
    sl1 = F.smooth_l1_loss(output.mask.float(), target)
    total = w_bce * wbce + w_sl1 * sl1
    parts = {"wbce": wbce.detach(), "smooth_l1": sl1.detach()}
    if output.cls_logits is not None:
        if labels is None:
            raise ValueError("ssnm_loss: the model predicts co-categories; pass labels (B, K)")
        cls = F.binary_cross_entropy_with_logits(output.cls_logits.float(), labels.float())
        total = total + w_cls * cls
        parts["cls"] = cls.detach()
    return total, parts
