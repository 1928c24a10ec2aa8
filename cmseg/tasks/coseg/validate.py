"""Validation of a ``coseg`` run: predict fixed groups, score them with SSNM's P and J.

Every ``train.eval_every`` steps and at the end, each validation set is predicted group by
group and its kept images scored with :class:`~cmseg.metrics.masks.CosegEvaluator` (adaptive
threshold ``min(mean + std, 0.8)``, P = pixel accuracy, J = foreground IoU, means over the
images of the set, as SSNM's ``val.py``), with the conventions of ``cmseg evaluate coseg``
(:func:`~cmseg.tasks.coseg.process.scoring_pair`; protocol ``ssnm``: at 224 x 224).

The sets: ``heldout`` (held-out training images, :mod:`cmseg.tasks.coseg.data`) and every
processed test set of ``data.val_sets``. Each set's metrics are named ``<set>/<metric>``
(``heldout/J``, ``PASCAL_VOC/P``; also ``P_classes`` / ``J_classes``, the means over classes),
whatever the number of sets, so that ``train.best_metric`` names one set's score. Under
``torchrun`` each rank predicts every ``world_size``-th group of each set and the evaluators
are merged (:func:`cmseg.engine.validation.validate_sets`), so every rank returns the scores of
the whole set.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from cmseg.engine.prefetch import threaded_batches
from cmseg.engine.validation import shard, validate_sets
from cmseg.metrics.masks import CosegEvaluator
from cmseg.tasks.coseg.data import FixedGroups
from cmseg.tasks.coseg.process import (
    check_image_size,
    group_probabilities,
    preprocess_group,
    same_size_runs,
    scoring_pair,
)

__all__ = ["METRIC_NAMES", "CosegValidator"]

#: The metrics of each set, reported as ``<set>/<name>``.
METRIC_NAMES = ("P", "J", "P_classes", "J_classes")


class _ValGroups:
    """This rank's groups of a set, preprocessed: ``(images (N, 3, S, S), group dict)``."""

    def __init__(self, groups: FixedGroups, indices: Sequence[int], size: int) -> None:
        self.groups, self.indices, self.size = groups, list(indices), size

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, dict[str, Any]]:
        group = self.groups[self.indices[i]]
        return preprocess_group(group["images"], self.size), group


def _metrics(evaluator: CosegEvaluator) -> dict[str, float]:
    result = evaluator.compute()
    return {name: float(result[name]) for name in METRIC_NAMES}


@dataclass
class CosegValidator:
    """``validate(model) -> metrics`` over coseg sets (module docstring).

    Attributes:
        sets: ``{set name: FixedGroups}``.
        image_size: the model's input side.
        batch_size: groups read ahead, and groups of one size per forward pass.
        num_workers: threads reading and preprocessing the groups (0: the calling thread).
        protocol: ``ssnm`` or ``native`` (:func:`~cmseg.tasks.coseg.process.scoring_pair`).
    """

    sets: dict[str, FixedGroups]
    image_size: int
    batch_size: int = 4
    num_workers: int = 0
    protocol: str = "ssnm"

    def __post_init__(self) -> None:
        self.sets = dict(self.sets)
        self.image_size = check_image_size(self.image_size)
        self.batch_size, self.num_workers = max(1, self.batch_size), max(0, self.num_workers)

    def _score_shard(self, model: nn.Module, groups: FixedGroups, evaluator: Any) -> None:
        device = next(model.parameters()).device
        items = _ValGroups(groups, shard(range(len(groups))), self.image_size)
        for batch in threaded_batches(items, self.batch_size, self.num_workers, list):
            for run in same_size_runs([x.shape[0] for x, _ in batch]):
                images = torch.stack([batch[i][0] for i in run]).to(device)
                probabilities = group_probabilities(model, images)
                for prob, i in zip(probabilities, run, strict=True):
                    self._update(evaluator, prob, batch[i][1])

    def _update(self, evaluator: Any, probabilities: torch.Tensor, group: dict[str, Any]) -> None:
        for prob, gt, name, keep in zip(
            probabilities, group["gts"], group["names"], group["keep"], strict=True
        ):
            if keep:
                pred, target = scoring_pair(prob, gt, self.protocol)
                evaluator.update(pred, target, cls=group["class"], name=name)

    def __call__(self, model: nn.Module) -> dict[str, float]:
        metrics: dict[str, float] = {}
        for name, groups in self.sets.items():
            scores = validate_sets(
                {name: groups},
                new_evaluator=CosegEvaluator,
                score_shard=lambda g, ev: self._score_shard(model, g, ev),
                summarise=_metrics,
            )
            metrics.update({f"{name}/{key}": value for key, value in scores.items()})
        return metrics
