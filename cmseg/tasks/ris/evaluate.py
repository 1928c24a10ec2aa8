"""``cmseg evaluate ris``: binary masks ``<pred>/<id>.png`` against ``<gt>/<id>.png``, with the
oIoU / mIoU / prec@X conventions of LAVT (``lavt``, default), CRIS (``cris``) or MTTR
(``mttr``).

A prediction of another size than its ground truth is resized to it (nearest neighbour).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from cmseg.engine.eval_adapter import EvalAdapter, Job, flat_pairs, keyed, resize_to_shape
from cmseg.io import read_mask

__all__ = ["ADAPTER", "COLUMNS"]

#: Columns shown first (the validation metrics of training, too).
COLUMNS = [
    ("oIoU", "oIoU"), ("mIoU", "mIoU"), ("prec@0.5", "P@0.5"), ("prec@0.6", "P@0.6"),
    ("prec@0.7", "P@0.7"), ("prec@0.8", "P@0.8"), ("prec@0.9", "P@0.9"),
]  # fmt: skip


def _new_evaluator(protocol: str, options: dict[str, Any]) -> Any:
    from cmseg.metrics.masks import RISEvaluator

    return RISEvaluator(convention=protocol)


def _score(evaluator: Any, job: Job, protocol: str, allow_missing: bool) -> list[str]:
    pred, gt = read_mask(job.pred), read_mask(job.gt)
    if pred.shape != gt.shape:
        pred = resize_to_shape(pred.astype(np.uint8), gt.shape, nearest=True).astype(bool)
    evaluator.update(pred, gt, name=job.key)
    return []


def _summarise(evaluator: Any, protocol: str) -> dict[str, Any]:
    per_item = keyed(evaluator.per_item(), "name")
    return {"num_items": len(evaluator), "metrics": evaluator.compute(), "per_item": per_item}


ADAPTER = EvalAdapter(
    "ris", ("lavt", "cris", "mttr"), collect=flat_pairs, new_evaluator=_new_evaluator,
    score=_score, summarise=_summarise, columns=COLUMNS, chunk_size=32,
    layout="<id>.png binary masks against <id>.png ground truth (one per sentence)",
)  # fmt: skip
