"""Validation of a ``ris`` run: predict every sentence of the validation splits and score the
masks with CMPC's protocol.

Every ``train.eval_every`` steps and at the end, every sentence of ``data.val_sets`` is
predicted and its mask scored at the original image size with
:class:`~cmseg.metrics.masks.RISEvaluator`: ``oIoU`` (the headline metric of CMPC's lineage),
``mIoU`` and ``prec@0.5`` ... ``prec@0.9``; under ``torchrun`` the per-sentence counts of all
ranks are merged. Each image is encoded once for all its sentences (the model takes one image
with n sentences, as :class:`~cmseg.models.cmpc.CMPC` does).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from typing import Any

from torch import nn

from cmseg.engine.prefetch import threaded_batches
from cmseg.engine.validation import shard, validate_sets
from cmseg.metrics.masks import RISEvaluator
from cmseg.tasks.ris.data import image_groups
from cmseg.tasks.ris.process import check_image_size, final_logits, postprocess, preprocess

__all__ = ["RISValidator"]


class _ValImages:
    """Validation images, each with all its sentences:
    ``(image 3 x S x S, [sentence], [gt bool (H, W)], [name])``."""

    def __init__(self, reader: Any, groups: Sequence[Sequence[int]], size: int) -> None:
        self.reader, self.groups, self.size = reader, [list(g) for g in groups], size

    def __len__(self) -> int:
        return len(self.groups)

    def __getitem__(self, i: int) -> tuple[Any, ...]:
        samples = [self.reader[j] for j in self.groups[i]]
        return (
            preprocess(samples[0]["image"], self.size),
            [s["sentence"] for s in samples],
            [s["mask"] for s in samples],
            [s["name"] for s in samples],
        )


def _metrics(evaluator: RISEvaluator) -> dict[str, float]:
    """The scores of a split; the number of sentences is a count, not a metric to log."""
    return {k: v for k, v in evaluator.compute().items() if k != "num_items"}


class RISValidator:
    """``validate(model) -> metrics`` over ris splits (module docstring).

    Under ``torchrun`` each rank predicts every ``world_size``-th image of each split.

    Args:
        readers: ``{split name: reader}``.
        image_size: the model's input side.
        batch_size: images read ahead, and sentences per forward pass.
        num_workers: threads reading and preprocessing the images (0: the calling thread).
        convention: see :class:`RISEvaluator`.
    """

    def __init__(
        self,
        readers: Mapping[str, Any],
        image_size: int,
        *,
        batch_size: int = 8,
        num_workers: int = 0,
        convention: str = "lavt",
    ) -> None:
        self.readers = dict(readers)
        self.image_size = check_image_size(image_size)
        self.batch_size = max(1, int(batch_size))
        self.num_workers = max(0, int(num_workers))
        self.convention = convention

    def _score_shard(self, model: nn.Module, reader: Any, evaluator: RISEvaluator) -> None:
        """Predict this rank's images of ``reader`` into ``evaluator``."""
        device = next(model.parameters()).device
        items = _ValImages(reader, shard(image_groups(reader)), self.image_size)
        for batch in threaded_batches(items, self.batch_size, self.num_workers, list):
            for image, sentences, gts, names in batch:
                image = image[None].to(device)
                # one image, its sentences in chunks: the model shares the image features
                for start in range(0, len(sentences), self.batch_size):
                    chunk = slice(start, start + self.batch_size)
                    logits = final_logits(model, image, sentences[chunk])
                    for one, gt, name in zip(logits, gts[chunk], names[chunk], strict=True):
                        evaluator.update(postprocess(one, gt.shape, self.image_size), gt, name=name)

    def __call__(self, model: nn.Module) -> dict[str, float]:
        return validate_sets(
            self.readers,
            new_evaluator=functools.partial(RISEvaluator, self.convention),
            score_shard=functools.partial(self._score_shard, model),
            summarise=_metrics,
        )
