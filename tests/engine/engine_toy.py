"""A tiny segmentation problem for the engine tests (also imported by the DDP worker script)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from cmseg.config import OptimConfig, ScheduleConfig, TrainConfig
from cmseg.engine.trainer import Trainer


class TinyNet(nn.Module):
    """conv -> (BatchNorm) -> ReLU -> (Dropout) -> 1x1 conv: one logit channel."""

    def __init__(self, width: int = 8, dropout: float = 0.0, norm: bool = False) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, width, 3, padding=1)
        self.norm = nn.BatchNorm2d(width) if norm else nn.Identity()
        self.drop = nn.Dropout2d(dropout) if dropout > 0 else nn.Identity()
        self.head = nn.Conv2d(width, 1, 1)

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.head(self.drop(F.relu(self.norm(self.stem(batch["image"])))))


def bce_loss(
    outputs: torch.Tensor, batch: dict[str, torch.Tensor]
) -> tuple[torch.Tensor, dict[str, Any]]:
    loss = F.binary_cross_entropy_with_logits(outputs, batch["mask"])
    return loss, {"bce": loss.detach(), "const": 1.0}


class RandomSet:
    """``n`` samples of a 3xSxS float image and a 1xSxS binary mask (numpy, like readers)."""

    def __init__(self, n: int = 24, size: int = 12, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        self.images = rng.normal(size=(n, 3, size, size)).astype(np.float32)
        self.masks = (self.images[:, :1] + 0.3 * self.images[:, 1:2] > 0).astype(np.float32)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return {"image": self.images[index], "mask": self.masks[index], "index": index}


def augment(sample: dict[str, Any], rng: np.random.Generator) -> dict[str, Any]:
    """Random flip and noise: the data's own randomness, drawn from the rng it is given."""
    image, mask = sample["image"], sample["mask"]
    if rng.random() < 0.5:
        image, mask = image[:, :, ::-1], mask[:, :, ::-1]
    image = image + rng.normal(scale=0.1, size=image.shape).astype(np.float32)
    return {**sample, "image": np.ascontiguousarray(image), "mask": np.ascontiguousarray(mask)}


def make_trainer(
    out: Path,
    *,
    model: Callable[[], nn.Module] = TinyNet,
    dataset: Any = None,
    batch_size: int = 4,
    num_workers: int = 0,
    transform: Any = augment,
    loss_fn: Any = bce_loss,
    validate: Any = None,
    best_metric: str | None = None,
    higher_is_better: bool = True,
    optim: OptimConfig | None = None,
    schedule: ScheduleConfig | None = None,
    **train: Any,
) -> Trainer:
    """A CPU trainer on the toy problem; ``train`` overrides TrainConfig fields.

    ``model`` is a factory, called after seeding so that every trainer starts from the same
    weights.
    """
    torch.manual_seed(0)
    settings = {"max_steps": 6, "device": "cpu", "log_every": 2, "tensorboard": False, **train}
    return Trainer(
        model(),
        loss_fn,
        dataset if dataset is not None else RandomSet(),
        output_dir=out,
        train=TrainConfig(**settings),
        optim=optim or OptimConfig(name="adamw", lr=1e-2, weight_decay=0.01),
        schedule=schedule or ScheduleConfig(name="cosine", warmup_steps=2),
        batch_size=batch_size,
        num_workers=num_workers,
        transform=transform,
        validate=validate,
        best_metric=("score" if validate is not None else "")
        if best_metric is None
        else best_metric,
        higher_is_better=higher_is_better,
        model_name="tiny",
        config={"task": "toy"},
    )
