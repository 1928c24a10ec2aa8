"""Pretrain a feature pyramid on dense labelling: one 1x1 classifier per label map.

Referring segmentation methods start from a backbone trained on semantic segmentation (CMPC:
DeepLab ResNet-101 trained on PASCAL VOC) and never train it further. Where no such weights
exist (the synthetic data of ``cmseg demo ris``, a laptop with no downloads), this is the
smallest faithful stand-in: the pyramid's levels, resized to the finest one and concatenated,
feed one linear (1x1) classifier per label map; the loss is the sum of the maps' per-pixel
cross-entropies on the logits resized bilinearly to the label size (the decoder-free recipe
of DeepLab's linear head). The classifiers are thrown away afterwards; save the pyramid with
:func:`cmseg.models.backbones.save_backbone_weights` and name the file as a model's
``backbone_weights``.

The loop is plain on purpose (nanoGPT's style): Adam, linear warm-up then poly decay
(power 0.9), random horizontal flips, batches drawn with replacement from tensors in memory.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from cmseg.data.transforms import IMAGENET_MEAN, IMAGENET_STD
from cmseg.engine.allocator import keep_freed_memory
from cmseg.engine.schedules import lr_factor
from cmseg.logs import progress
from cmseg.models.layers import resize_bilinear

__all__ = ["PretrainResult", "pretrain_backbone", "pixel_accuracy"]

log = logging.getLogger(__name__)


@dataclass
class PretrainResult:
    """What :func:`pretrain_backbone` reports.

    Attributes:
        steps: optimizer steps taken.
        seconds: wall time of the loop.
        losses: the summed cross-entropy of every step.
        heads: the trained 1x1 classifiers (one per label map), for :func:`pixel_accuracy`.
    """

    steps: int
    seconds: float
    losses: list[float] = field(default_factory=list)
    heads: nn.ModuleList | None = None


def _normalise(images: np.ndarray | torch.Tensor, device: torch.device) -> torch.Tensor:
    """``uint8 (N, H, W, 3)`` -> ``float (N, 3, H, W)`` with ImageNet normalisation."""
    x = torch.as_tensor(images, device=device).permute(0, 3, 1, 2).float().div_(255.0)
    mean = torch.tensor(IMAGENET_MEAN, device=device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=device).view(1, 3, 1, 1)
    return (x - mean) / std


def _features(backbone: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The pyramid's levels resized (bilinearly) to the finest one's size and concatenated."""
    levels = backbone(x)
    size = levels[0].shape[-2:]
    return torch.cat([resize_bilinear(f, size) for f in levels], dim=1)


def _logits(heads: nn.ModuleList, feats: torch.Tensor, size: Sequence[int]) -> list[torch.Tensor]:
    return [resize_bilinear(head(feats), size) for head in heads]


def pretrain_backbone(
    backbone: nn.Module,
    images: np.ndarray,
    labels: np.ndarray,
    num_classes: Sequence[int],
    *,
    steps: int,
    batch_size: int = 16,
    lr: float = 2e-3,
    warmup_steps: int = 20,
    seed: int = 0,
    device: str | torch.device = "cpu",
    flip: bool = True,
) -> PretrainResult:
    """Train ``backbone`` in place to label every pixel of ``images`` with each map of ``labels``.

    Args:
        backbone: a feature pyramid (``forward(x)`` -> list of ``B x C_i x h_i x w_i`` maps,
            ``feature_info.channels()`` their widths), e.g. from
            :func:`~cmseg.models.backbones.create_feature_pyramid`.
        images: ``uint8 (N, H, W, 3)`` RGB images.
        labels: integer ``(N, A, H, W)`` label maps, values in ``[0, num_classes[a])`` for
            map ``a`` (0 is usually the background; it is a class like the others).
        num_classes: the number of classes of each of the ``A`` maps.
        steps: optimizer steps (batches drawn with replacement).
        batch_size: images per step.
        lr: Adam's peak learning rate (linear warm-up, then poly 0.9 decay to 0).
        warmup_steps: length of the warm-up.
        seed: seeds the classifiers' initialisation, the batches and the flips.
        device: where to train.
        flip: random horizontal flips (p 0.5 per batch).

    Returns:
        :class:`PretrainResult`; the backbone is left in training mode, on ``device``.

    Raises:
        ValueError: shapes or label values that do not fit.
    """
    _check_inputs(images, labels, num_classes, steps=steps, batch_size=batch_size)
    device = torch.device(device)
    if device.type == "cpu":
        keep_freed_memory()
    generator = torch.Generator().manual_seed(seed)
    x_all = _normalise(images, torch.device("cpu"))
    y_all = torch.as_tensor(labels).long()
    heads = _seeded_heads(sum(backbone.feature_info.channels()), num_classes, seed, device)
    backbone.to(device).train()
    params = [p for p in backbone.parameters() if p.requires_grad] + list(heads.parameters())
    optimizer = torch.optim.Adam(params, lr=lr)

    result = PretrainResult(steps=steps, seconds=0.0, heads=heads)
    tick = time.perf_counter()
    for step in progress(range(steps), desc="pretraining the backbone", total=steps):
        warmup = min(warmup_steps, steps - 1)
        factor = lr_factor(step, name="poly", max_steps=steps, warmup_steps=warmup)
        for group in optimizer.param_groups:
            group["lr"] = lr * factor
        x, y = _draw_batch(x_all, y_all, batch_size, generator, flip=flip, device=device)
        result.losses.append(_optimizer_step(backbone, heads, optimizer, x, y))
        if (step + 1) % 100 == 0:
            log.info("pretraining step %d/%d  loss %.4f", step + 1, steps, result.losses[-1])
    result.seconds = time.perf_counter() - tick
    return result


def _check_inputs(
    images: np.ndarray,
    labels: np.ndarray,
    num_classes: Sequence[int],
    *,
    steps: int,
    batch_size: int,
) -> None:
    """Refuse the arguments of :func:`pretrain_backbone` that do not fit, before any work.

    Raises:
        ValueError: images not ``(N, H, W, 3)``, labels not ``(N, A, H, W)`` with one class
            count per map and every value below it, ``steps < 0`` or ``batch_size < 1``.
    """
    if images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"images must be (N, H, W, 3), got {tuple(images.shape)}")
    if (
        labels.ndim != 4
        or labels.shape[0] != images.shape[0]
        or labels.shape[-2:] != images.shape[1:3]
    ):
        raise ValueError(
            f"labels must be (N, A, H, W) matching images {tuple(images.shape)}, "
            f"got {tuple(labels.shape)}"
        )
    if labels.shape[1] != len(num_classes):
        raise ValueError(f"{labels.shape[1]} label maps but {len(num_classes)} class counts")
    for a, n in enumerate(num_classes):
        top = int(labels[:, a].max())
        if top >= n:
            raise ValueError(f"label map {a} holds class {top}, but it has only {n} classes")
    if steps < 0 or batch_size < 1:
        raise ValueError(f"need steps >= 0 and batch_size >= 1, got {steps} and {batch_size}")


def _seeded_heads(
    width: int, num_classes: Sequence[int], seed: int, device: torch.device
) -> nn.ModuleList:
    """One 1x1 classifier (``width`` -> ``n`` channels) per label map, initialised from ``seed``.

    The global RNG is forked, so the caller's random stream is the same whatever the heads.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return nn.ModuleList(nn.Conv2d(width, n, 1) for n in num_classes).to(device)


def _draw_batch(
    x_all: torch.Tensor,
    y_all: torch.Tensor,
    batch_size: int,
    generator: torch.Generator,
    *,
    flip: bool,
    device: torch.device,
) -> tuple[torch.Tensor, torch.Tensor]:
    """A batch drawn with replacement, flipped horizontally with probability 0.5 if ``flip``.

    Args:
        x_all, y_all: ``float (N, 3, H, W)`` normalised images, ``long (N, A, H, W)`` labels.
        generator: the run's stream: the indices first, then (only if ``flip``) the coin;
            that order makes the batches, and so the run, a function of the seed.

    Returns:
        ``(x, y)`` on ``device``: ``(batch_size, 3, H, W)`` and ``(batch_size, A, H, W)``.
    """
    index = torch.randint(0, len(x_all), (batch_size,), generator=generator)
    x, y = x_all[index].to(device), y_all[index].to(device)
    if flip and bool(torch.rand((), generator=generator) < 0.5):
        x, y = x.flip(-1), y.flip(-1)
    return x, y


def _optimizer_step(
    backbone: nn.Module,
    heads: nn.ModuleList,
    optimizer: torch.optim.Optimizer,
    x: torch.Tensor,
    y: torch.Tensor,
) -> float:
    """One Adam step on the sum of the maps' per-pixel cross-entropies; returns that loss."""
    logits = _logits(heads, _features(backbone, x), y.shape[-2:])
    loss = sum(F.cross_entropy(lg, y[:, a]) for a, lg in enumerate(logits))
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return float(loss.detach())


@torch.no_grad()
def pixel_accuracy(
    backbone: nn.Module,
    heads: nn.ModuleList,
    images: np.ndarray,
    labels: np.ndarray,
    *,
    batch_size: int = 32,
    device: str | torch.device = "cpu",
) -> list[float]:
    """Accuracy of each label map on the pixels whose map-0 label is not 0 (the objects).

    Args:
        backbone, heads: a pyramid and the classifiers :func:`pretrain_backbone` trained.
        images, labels: as for :func:`pretrain_backbone` (held-out images, typically).

    Returns:
        One accuracy in [0, 1] per label map (NaN when no pixel is an object).
    """
    device = torch.device(device)
    was_training = backbone.training
    backbone.eval()
    correct = np.zeros(len(heads))
    total = 0
    for start in range(0, len(images), batch_size):
        x = _normalise(images[start : start + batch_size], device)
        y = torch.as_tensor(labels[start : start + batch_size], device=device).long()
        objects = y[:, 0] > 0
        total += int(objects.sum())
        for a, lg in enumerate(_logits(heads, _features(backbone, x), y.shape[-2:])):
            correct[a] += int((lg.argmax(1) == y[:, a])[objects].sum())
    backbone.train(was_training)
    return [float(c / total) if total else float("nan") for c in correct]
