"""XMSNet's training losses (models return logits; the losses live beside them, DESIGN §3).

XMSNet's objective (:func:`xmsnet_loss`) is deep supervision of seven side outputs with the
F3Net structure loss (:func:`structure_loss`) plus a cross-layer consistency term between
adjacent fine outputs (:func:`bernoulli_kl`). Two departures from the official ``train.py``,
both because the official code does not do what it says (``official=True`` restores it; in
a run, ``data.options.loss_official=true`` of the sod task):

* **Weighted BCE.** The official call passes ``reduce='none'``, a legacy argument that is
  truthy, so ``binary_cross_entropy_with_logits`` returns the scalar mean and the
  boundary weighting ``(w * bce).sum() / w.sum()`` collapses to plain mean BCE. cmseg weights
  each pixel's BCE as intended; ``official_bce=True`` gives the plain mean.
* **Cross-layer KL.** The official terms are ``KLDivLoss(log_softmax(S_a, dim=1),
  softmax(S_b, dim=1))`` on one-channel maps: the softmax over a single channel is 1, so both
  terms are exactly 0 with zero gradient. cmseg uses the symmetric KL between the per-pixel
  Bernoulli distributions ``sigmoid(S_a)`` and ``sigmoid(S_b)``, averaged over pixels (the
  official ``batchmean`` would sum over some 10^5 pixels and swamp the other terms).

:func:`deep_supervision_loss` is the loss of XMSNet's ablation baselines with another number
of side outputs (the FPN early-fusion baseline of :mod:`cmseg.models.xmsnet.baselines` has
four): the structure loss on every side output, weighted from coarse to fine.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

__all__ = [
    "structure_loss",
    "boundary_weight",
    "bernoulli_kl",
    "xmsnet_loss",
    "XMSNET_SIDE_WEIGHTS",
    "deep_supervision_loss",
]

XMSNET_SIDE_WEIGHTS: tuple[float, ...] = (0.2, 0.4, 0.6, 0.8, 0.3, 0.6, 0.9)
"""Weights of the side outputs S0..S6 in the total loss (official ``train.py``)."""


def structure_loss(
    logits: torch.Tensor, target: torch.Tensor, *, official_bce: bool = False
) -> torch.Tensor:
    """F3Net's structure loss: boundary-weighted BCE plus weighted IoU, averaged over the batch.

    The weight ``w = 1 + 5 |avgpool31(g) - g|`` (31x31 window, zero padding counted) is large
    near the object's boundary. Per image,
    ``wBCE = sum(w * bce) / sum(w)`` and
    ``wIoU = 1 - (sum(w p g) + 1) / (sum(w (p + g)) - sum(w p g) + 1)`` with ``p = sigmoid``.

    Args:
        logits: ``B x 1 x H x W`` logits.
        target: ``B x 1 x H x W`` ground truth in [0, 1] (soft values allowed).
        official_bce: reproduce the official code's BCE term, the plain mean BCE over all
            pixels (see the module docstring).

    Returns:
        Scalar loss.
    """
    if logits.shape != target.shape:
        raise ValueError(f"logits {tuple(logits.shape)} and target {tuple(target.shape)} differ")
    target = target.to(logits.dtype)
    return _structure_loss(logits, target, boundary_weight(target), official_bce)


def boundary_weight(target: torch.Tensor) -> torch.Tensor:
    """F3Net's pixel weight ``1 + 5 |avgpool31(g) - g|`` of a ``B x 1 x H x W`` target.

    The 31x31 mean with zero padding (padding counted, as ``F.avg_pool2d`` does by default) is
    computed as two 1-D passes, which is exact and ~15x faster than one 2-D window on CPU.
    """
    local = F.avg_pool2d(target, (1, 31), stride=1, padding=(0, 15))
    local = F.avg_pool2d(local, (31, 1), stride=1, padding=(15, 0))
    return 1 + 5 * (local - target).abs()


def _structure_loss(
    logits: torch.Tensor, target: torch.Tensor, weight: torch.Tensor, official_bce: bool
) -> torch.Tensor:
    if official_bce:
        wbce = F.binary_cross_entropy_with_logits(logits, target)
    else:
        bce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
        wbce = (weight * bce).sum(dim=(2, 3)) / weight.sum(dim=(2, 3))
    prob = logits.sigmoid()
    inter = (weight * prob * target).sum(dim=(2, 3))
    union = (weight * (prob + target)).sum(dim=(2, 3))
    wiou = 1 - (inter + 1) / (union - inter + 1)
    return (wbce + wiou).mean()


def bernoulli_kl(logits_a: torch.Tensor, logits_b: torch.Tensor) -> torch.Tensor:
    """Symmetric KL between the per-pixel Bernoulli maps ``sigmoid(a)`` and ``sigmoid(b)``.

    ``KL(p||q) + KL(q||p) = (p - q) (logit p - logit q)``, which on logits is simply
    ``(sigmoid(a) - sigmoid(b)) (a - b)``: exact, non-negative, zero only where the maps agree,
    and free of ``log 0``. Averaged over all pixels and the batch; both inputs get gradients.

    Args:
        logits_a, logits_b: logits of the same shape, e.g. ``B x 1 x H x W``.

    Returns:
        Scalar, >= 0.
    """
    if logits_a.shape != logits_b.shape:
        raise ValueError(f"shapes differ: {tuple(logits_a.shape)} vs {tuple(logits_b.shape)}")
    return ((logits_a.sigmoid() - logits_b.sigmoid()) * (logits_a - logits_b)).mean()


def _official_kl(logits_a: torch.Tensor, logits_b: torch.Tensor) -> torch.Tensor:
    """The official term, ``KL(b || a) + KL(a || b)`` with a softmax over the channel axis.

    On one-channel maps it is identically 0 (and so is its gradient); computed literally so
    that ``official=True`` is the official objective, not a constant stand-in.
    """
    kl = F.kl_div(F.log_softmax(logits_a, 1), F.softmax(logits_b, 1), reduction="batchmean")
    return kl + F.kl_div(F.log_softmax(logits_b, 1), F.softmax(logits_a, 1), reduction="batchmean")


def xmsnet_loss(
    outputs: list[torch.Tensor],
    target: torch.Tensor,
    *,
    kl_weight: float = 0.5,
    official: bool = False,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """XMSNet's training objective.

    ``sum_i w_i L(S_i) + kl_weight * (KL(S4, S5) + KL(S5, S6))`` with the side weights
    :data:`XMSNET_SIDE_WEIGHTS`, ``L`` = :func:`structure_loss` and KL = :func:`bernoulli_kl`.

    Args:
        outputs: the seven ``B x 1 x H x W`` logit maps of ``XMSNet.forward``.
        target: ``B x 1 x H x W`` ground truth in [0, 1].
        kl_weight: weight of each cross-layer term (0.5 officially).
        official: the official objective: plain-mean BCE and the official (zero) KL terms.

    Returns:
        ``(total, parts)``: the scalar loss to backpropagate and its detached parts,
        ``s0`` ... ``s6`` (unweighted structure losses), ``kl_s4_s5``, ``kl_s5_s6``.
    """
    if len(outputs) != len(XMSNET_SIDE_WEIGHTS):
        raise ValueError(f"expected {len(XMSNET_SIDE_WEIGHTS)} side outputs, got {len(outputs)}")
    parts: dict[str, torch.Tensor] = {}
    total = outputs[-1].new_zeros(())
    if any(side.shape != target.shape for side in outputs):
        raise ValueError(
            f"side outputs {[tuple(o.shape) for o in outputs]} vs target {tuple(target.shape)}"
        )
    target = target.to(outputs[-1].dtype)
    pixel_weight = boundary_weight(target)  # shared by the seven side outputs
    for i, (side, weight) in enumerate(zip(outputs, XMSNET_SIDE_WEIGHTS, strict=True)):
        loss = _structure_loss(side, target, pixel_weight, official)
        parts[f"s{i}"] = loss.detach()
        total = total + weight * loss
    kl = _official_kl if official else bernoulli_kl
    for name, a, b in (("kl_s4_s5", outputs[4], outputs[5]), ("kl_s5_s6", outputs[5], outputs[6])):
        term = kl(a, b)
        parts[name] = term.detach()
        total = total + kl_weight * term
    return total, parts


def deep_supervision_loss(
    outputs: Sequence[torch.Tensor], target: torch.Tensor
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Structure loss on every side output, weighted ``(i + 1) / n`` from coarse to fine.

    The loss of models with another number of side outputs than XMSNet's seven (the FPN
    early-fusion baseline has four); ``parts`` holds each unweighted term as ``s0`` ...

    Args:
        outputs: ``n`` logit maps, ``B x 1 x H x W`` each, coarse to fine (the last is the
            prediction).
        target: ``B x 1 x H x W`` ground truth in [0, 1].

    Returns:
        ``(total, parts)``: the scalar loss (>= 0) and its detached, unweighted parts
        ``s0`` ... ``s{n-1}``.
    """
    n = len(outputs)
    total = outputs[-1].new_zeros(())
    parts: dict[str, torch.Tensor] = {}
    for i, side in enumerate(outputs):
        loss = structure_loss(side, target)
        parts[f"s{i}"] = loss.detach()
        total = total + (i + 1) / n * loss
    return total, parts
