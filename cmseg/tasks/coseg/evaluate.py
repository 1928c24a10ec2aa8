"""``cmseg evaluate coseg``: masks ``<pred>/<class>/<name>.png`` (soft or binary) against
``<gt>/<class>/<name>.png``, with SSNM's precision P and Jaccard J (per image, per class).

A prediction of another size than its ground truth is resized to it bilinearly (OpenCV).
"""

from __future__ import annotations

from typing import Any

from cmseg.engine.eval_adapter import (
    EvalAdapter,
    Findings,
    Job,
    fit_to_gt,
    keyed,
    nested_pairs,
    resize_to_shape,
)
from cmseg.io import read_grey, read_mask

__all__ = ["ADAPTER"]


def _new_evaluator(protocol: str, options: dict[str, Any]) -> Any:
    from cmseg.metrics.masks import CosegEvaluator

    return CosegEvaluator(**options)


def _bilinear(pred: Any, shape: tuple[int, ...]) -> Any:
    return resize_to_shape(pred, shape, nearest=False)


def _score(evaluator: Any, job: Job, protocol: str, allow_missing: bool) -> Findings:
    findings = Findings()
    pred, gt = read_grey(job.pred), read_mask(job.gt)
    pred = fit_to_gt(pred, gt.shape, job.pred, findings, _bilinear)
    cls, name = job.key.split("/", 1)
    evaluator.update(pred, gt, cls=cls, name=name)
    return findings


def _summarise(evaluator: Any, protocol: str) -> dict[str, Any]:
    return {
        "num_items": len(evaluator),
        "metrics": evaluator.compute(),
        "per_class": evaluator.per_class(),
        "per_item": keyed(evaluator.per_item(), "class", "name"),
    }


ADAPTER = EvalAdapter(
    "coseg", ("ssnm",), collect=nested_pairs, new_evaluator=_new_evaluator, score=_score,
    summarise=_summarise, columns=[("P", "P"), ("J", "J"), ("P_classes", "P(cls)"),
    ("J_classes", "J(cls)")], options=frozenset({"threshold", "cap"}),
)  # fmt: skip
