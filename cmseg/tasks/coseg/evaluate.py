"""``cmseg evaluate coseg``: masks ``<pred>/<class>/<name>.png`` (soft or binary) against
``<gt>/<class>/<name>.png``, with SSNM's precision P and Jaccard J (per image, per class).

A prediction of another size than its ground truth is resized to it bilinearly (OpenCV).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cmseg.data.pairing import Pairing, pair_nested, require_dir
from cmseg.engine.eval_adapter import Job, keyed, resize_to_shape
from cmseg.io import read_grey, read_mask

__all__ = ["CosegAdapter", "ADAPTER"]


class CosegAdapter:
    """The evaluation of the ``coseg`` task (module docstring)."""

    name = "coseg"
    protocols = ("ssnm",)
    default_protocol = "ssnm"
    chunk_size = 16
    options = frozenset({"threshold", "cap"})

    def choose_protocol(self, gt: Path) -> str:
        return self.default_protocol

    def collect(self, pred: Path, gt: Path, protocol: str) -> Pairing:
        return pair_nested(require_dir(pred, "prediction"), require_dir(gt, "ground-truth"))

    def new_evaluator(self, protocol: str, options: dict[str, Any]) -> Any:
        from cmseg.metrics.masks import CosegEvaluator

        return CosegEvaluator(**options)

    def score(self, evaluator: Any, job: Job, protocol: str, allow_missing: bool) -> list[str]:
        pred, gt = read_grey(job.pred), read_mask(job.gt)
        if pred.shape != gt.shape:
            pred = resize_to_shape(pred, gt.shape, nearest=False)
        cls, name = job.key.split("/", 1)
        evaluator.update(pred, gt, cls=cls, name=name)
        return []

    def summarise(self, evaluator: Any, protocol: str) -> dict[str, Any]:
        return {
            "num_items": len(evaluator),
            "metrics": evaluator.compute(),
            "per_class": evaluator.per_class(),
            "per_item": keyed(evaluator.per_item(), "class", "name"),
        }

    def columns(self, protocol: str) -> list[tuple[str, str]]:
        return [("P", "P"), ("J", "J"), ("P_classes", "P(cls)"), ("J_classes", "J(cls)")]

    def plot(
        self, results: Mapping[str, Mapping[str, Any]], protocol: str, out_dir: Path
    ) -> list[Path]:
        return []


ADAPTER = CosegAdapter()
