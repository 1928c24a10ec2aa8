"""Validation of a ``sod`` run: predict the validation sets, score them like the official
evaluation.

Every ``train.eval_every`` steps and at the end, each image of ``data.val_sets`` is predicted at
``model.image_size``, brought to its GT's size with :func:`~cmseg.tasks.sod.process.postprocess`
and scored with :class:`~cmseg.metrics.sod.SODEvaluator` (PySODMetrics conventions). Metrics:
``sm``, ``mae``, ``wfm``, ``maxF``, ``meanF``, ``adpF``, ``maxE``, ``meanE``, ``adpE``; with
several validation sets the plain names are the means over the sets and ``<set>/<metric>`` are
added. Validation images are read by ``data.num_workers`` threads (not processes; see
:mod:`cmseg.engine.prefetch`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from cmseg.data.formats.sod_folders import SODFolders
from cmseg.engine.prefetch import threaded_batches
from cmseg.engine.validation import shard, validate_sets
from cmseg.metrics.sod import SODEvaluator
from cmseg.tasks.sod.process import check_image_size, final_logits, postprocess, preprocess

__all__ = ["METRIC_NAMES", "SODValidator"]

#: Validation metrics, in the order they are reported.
METRIC_NAMES = ("sm", "mae", "wfm", "maxF", "meanF", "adpF", "maxE", "meanE", "adpE")


class _ValItems:
    """Preprocessed validation samples: ``(image, aux, gt uint8, name)``."""

    def __init__(self, reader: SODFolders, indices: Sequence[int], size: int) -> None:
        self.reader, self.indices, self.size = reader, list(indices), size
        # The reader has normalised the map already; preprocess then leaves it as it is.
        self.aux_normalisation = reader.aux_normalisation

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> tuple[Any, ...]:
        sample = self.reader[self.indices[i]]
        image, aux = preprocess(
            sample["image"], sample["aux"], self.size, aux_normalisation=self.aux_normalisation
        )
        gt = sample["mask"].astype(np.uint8) * np.uint8(255)
        return image, aux, gt, sample["name"]


def _collate(items: list[tuple[Any, ...]]) -> tuple[Any, ...]:
    images, auxes, gts, names = zip(*items, strict=True)
    return torch.stack(images), torch.stack(auxes), list(gts), list(names)


def flat_metrics(evaluator: SODEvaluator) -> dict[str, float]:
    """The evaluator's dataset scores under the names of :data:`METRIC_NAMES`."""
    result = evaluator.compute()
    return {
        "sm": result["sm"],
        "mae": result["mae"],
        "wfm": result["wfm"],
        "maxF": result["fm"]["max"],
        "meanF": result["fm"]["mean"],
        "adpF": result["fm"]["adp"],
        "maxE": result["em"]["max"],
        "meanE": result["em"]["mean"],
        "adpE": result["em"]["adp"],
    }


class SODValidator:
    """``validate(model) -> metrics`` over SOD sets (module docstring).

    Under ``torchrun`` each rank predicts every ``world_size``-th image of each set and the
    evaluators are merged, so every rank returns the metrics of the whole set.

    Args:
        dataset: the validation sets (no transform), read with the run's ``aux_normalisation``
            (``SODFolders(aux_normalisation=...)``), which the predictor then repeats.
        image_size: the model's input side.
        batch_size: images per forward pass.
        num_workers: threads reading and preprocessing the images (0: in the calling thread).
        zero_aux: feed all-zero aux maps (the RGB-only baseline).
    """

    def __init__(
        self,
        dataset: SODFolders,
        image_size: int,
        *,
        batch_size: int = 8,
        num_workers: int = 0,
        zero_aux: bool = False,
    ) -> None:
        self.dataset = dataset
        self.image_size = check_image_size(image_size)
        self.batch_size = max(1, int(batch_size))
        self.num_workers = max(0, int(num_workers))
        self.zero_aux = zero_aux

    def _sets(self) -> dict[str, list[int]]:
        """``{set: sample indices}`` of the dataset, in sample order."""
        sets: dict[str, list[int]] = {name: [] for name in self.dataset.sets}
        for index, sample in enumerate(self.dataset.samples):
            sets[sample.set].append(index)
        return sets

    def __call__(self, model: nn.Module) -> dict[str, float]:
        device = next(model.parameters()).device

        def score_shard(indices: Sequence[int], evaluator: SODEvaluator) -> None:
            items = _ValItems(self.dataset, shard(indices), self.image_size)
            for images, auxes, gts, names in threaded_batches(
                items, self.batch_size, self.num_workers, _collate
            ):
                if self.zero_aux:
                    auxes.zero_()
                logits = final_logits(model, images.to(device), auxes.to(device))
                for one, gt, name in zip(logits, gts, names, strict=True):
                    evaluator.update(postprocess(one, gt.shape), gt, name=name)

        return validate_sets(
            self._sets(),
            new_evaluator=SODEvaluator,
            score_shard=score_shard,
            summarise=flat_metrics,
        )
