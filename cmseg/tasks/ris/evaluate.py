"""``cmseg evaluate ris``: binary masks ``<pred>/<id>.png`` against ``<gt>/<id>.png``, with the
oIoU / mIoU / prec@X conventions of LAVT (``lavt``, default), CRIS (``cris``) or MTTR
(``mttr``).

A prediction of another size than its ground truth is resized to it (nearest neighbour).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from cmseg.data.pairing import Pairing, pair_files, require_dir
from cmseg.engine.eval_adapter import Job, keyed, resize_to_shape
from cmseg.io import read_mask

__all__ = ["RISAdapter", "ADAPTER", "COLUMNS"]

#: Columns shown first (the validation metrics of training, too).
COLUMNS = [
    ("oIoU", "oIoU"), ("mIoU", "mIoU"), ("prec@0.5", "P@0.5"), ("prec@0.6", "P@0.6"),
    ("prec@0.7", "P@0.7"), ("prec@0.8", "P@0.8"), ("prec@0.9", "P@0.9"),
]  # fmt: skip


class RISAdapter:
    """The evaluation of the ``ris`` task (module docstring)."""

    name = "ris"
    protocols = ("lavt", "cris", "mttr")
    default_protocol = "lavt"
    chunk_size = 32
    options: frozenset[str] = frozenset()

    def choose_protocol(self, gt: Path) -> str:
        return self.default_protocol

    def collect(self, pred: Path, gt: Path, protocol: str) -> Pairing:
        return pair_files(require_dir(pred, "prediction"), require_dir(gt, "ground-truth"))

    def new_evaluator(self, protocol: str, options: dict[str, Any]) -> Any:
        from cmseg.metrics.masks import RISEvaluator

        return RISEvaluator(convention=protocol)

    def score(self, evaluator: Any, job: Job, protocol: str, allow_missing: bool) -> list[str]:
        pred, gt = read_mask(job.pred), read_mask(job.gt)
        if pred.shape != gt.shape:
            pred = resize_to_shape(pred.astype(np.uint8), gt.shape, nearest=True).astype(bool)
        evaluator.update(pred, gt, name=job.key)
        return []

    def summarise(self, evaluator: Any, protocol: str) -> dict[str, Any]:
        return {
            "num_items": len(evaluator),
            "metrics": evaluator.compute(),
            "per_item": keyed(evaluator.per_item(), "name"),
        }

    def columns(self, protocol: str) -> list[tuple[str, str]]:
        return COLUMNS

    def plot(
        self, results: Mapping[str, Mapping[str, Any]], protocol: str, out_dir: Path
    ) -> list[Path]:
        return []


ADAPTER = RISAdapter()
