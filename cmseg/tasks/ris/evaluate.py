"""``cmseg evaluate ris``: binary masks ``<pred>/<id>.png`` against ``<gt>/<id>.png``, with the
oIoU / mIoU / prec@X conventions of LAVT (``lavt``, default), CRIS (``cris``) or MTTR
(``mttr``).

A prediction of another size than its ground truth is resized to it (nearest neighbour) and
counted (:func:`cmseg.engine.eval_adapter.fit_to_gt`).
"""

from __future__ import annotations

from typing import Any

from cmseg.engine.eval_adapter import (
    EvalAdapter,
    Findings,
    Job,
    fit_to_gt,
    flat_pairs,
    keyed,
    resize_mask,
)
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


def _score(evaluator: Any, job: Job, protocol: str, allow_missing: bool) -> Findings:
    findings = Findings()
    pred, gt = read_mask(job.pred), read_mask(job.gt)
    pred = fit_to_gt(pred, gt.shape, job.pred, findings, resize_mask)
    evaluator.update(pred, gt, name=job.key)
    return findings


def _summarise(evaluator: Any, protocol: str) -> dict[str, Any]:
    per_item = keyed(evaluator.per_item(), "name")
    return {"num_items": len(evaluator), "metrics": evaluator.compute(), "per_item": per_item}


ADAPTER = EvalAdapter(
    "ris", ("lavt", "cris", "mttr"), collect=flat_pairs, new_evaluator=_new_evaluator,
    score=_score, summarise=_summarise, columns=COLUMNS, chunk_size=32,
    layout="<id>.png binary masks against <id>.png ground truth (one per sentence)",
)  # fmt: skip
