"""``cmseg evaluate a2d``: A2D-Sentences / JHMDB-Sentences mAP and IoU from COCO-format JSON
files (``--pred`` the predictions, ``--gt`` the ground truth), as the referring-video
literature (MTTR, ReferFormer, SOC) reports them (:class:`cmseg.metrics.coco.A2DEvaluator`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cmseg.data.pairing import Pairing
from cmseg.engine.eval_adapter import EvalAdapter, Job, keyed
from cmseg.errors import InputError

__all__ = ["ADAPTER", "COLUMNS"]


class _A2DRun:
    """Holds the one A2DEvaluator of a run (built from the GT file inside ``score``)."""

    def __init__(self) -> None:
        self.evaluator: Any = None

    def merge(self, other: _A2DRun) -> None:
        self.evaluator = other.evaluator or self.evaluator


def _collect(pred: Path, gt: Path, protocol: str) -> Pairing:
    for path, what in ((pred, "prediction"), (gt, "ground-truth")):
        if not path.is_file():
            raise InputError(path, f"{what} must be a COCO-format JSON file")
    return Pairing(pairs=[("results", pred, gt)])


def _new_evaluator(protocol: str, options: dict[str, Any]) -> _A2DRun:
    return _A2DRun()


def _score(evaluator: _A2DRun, job: Job, protocol: str, allow_missing: bool) -> list[str]:
    from cmseg.metrics.coco import A2DEvaluator

    evaluator.evaluator = A2DEvaluator(job.gt)
    evaluator.evaluator.update(job.pred)
    return []


def _summarise(evaluator: _A2DRun, protocol: str) -> dict[str, Any]:
    ev = evaluator.evaluator
    per_item = keyed(ev.per_item(), "image_id")
    return {"num_items": len(per_item), "metrics": ev.compute(), "per_item": per_item}


COLUMNS = [
    ("mAP", "mAP"), ("AP50", "AP50"), ("AP75", "AP75"), ("AP_S", "AP_S"), ("AP_M", "AP_M"),
    ("AP_L", "AP_L"), ("oIoU", "oIoU"), ("mIoU", "mIoU"), ("P@0.5", "P@0.5"), ("P@0.9", "P@0.9"),
]  # fmt: skip

#: One job: the two JSON files.
ADAPTER = EvalAdapter(
    "a2d", ("a2d",), collect=_collect, new_evaluator=_new_evaluator, score=_score,
    summarise=_summarise, columns=COLUMNS, chunk_size=1,
    layout="a COCO-format JSON file of predictions against the COCO-format ground truth",
)  # fmt: skip
