"""``cmseg evaluate sod``: saliency maps ``<pred>/<name>.png`` (grey 0..255) against
``<gt>/<name>.png``, with the PySODMetrics conventions (``pysodmetrics``, default) or SPNet's
evaluator (``spnet``).

A prediction of another size than its ground truth is resized to it bilinearly: with OpenCV
as PySODEvalToolkit does, or with PIL's filter for ``spnet``, as SPNet's script does (and
counted). The GT is read as grey; ``pysodmetrics`` takes ``> 128`` as foreground
(:data:`cmseg.io.SOD_GT_THRESHOLD`, the threshold of training and ``data check sod`` too).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cmseg.engine.eval_adapter import EvalAdapter, Findings, Job, fit_to_gt, flat_pairs
from cmseg.errors import InputError
from cmseg.io import SOD_GT_THRESHOLD, read_grey

__all__ = ["ADAPTER", "COLUMNS"]

#: Columns shown first per protocol (the rest follow in CSV).
COLUMNS: dict[str, list[tuple[str, str]]] = {
    "pysodmetrics": [
        ("mae", "MAE"), ("sm", "S"), ("wfm", "wF"), ("em.adp", "adpE"), ("em.mean", "meanE"),
        ("em.max", "maxE"), ("fm.adp", "adpF"), ("fm.mean", "meanF"), ("fm.max", "maxF"),
        ("iou.mean", "meanIoU"), ("dice.mean", "meanDice"),
    ],
    "spnet": [("mae", "MAE"), ("sm", "S"), ("maxf", "maxF"), ("maxe", "maxE")],
}  # fmt: skip


def _new_evaluator(protocol: str, options: dict[str, Any]) -> Any:
    if protocol == "spnet":
        from cmseg.metrics.sod_spnet import SPNetEvaluator

        return SPNetEvaluator()
    from cmseg.metrics.sod import SODEvaluator

    return SODEvaluator()


def _score(evaluator: Any, job: Job, protocol: str, allow_missing: bool) -> Findings:
    if protocol == "spnet":  # SPNet resizes with PIL's bilinear filter
        from cmseg.metrics.sod_spnet import resize_to
    else:  # PySODEvalToolkit resizes with OpenCV's INTER_LINEAR
        from cmseg.metrics.sod import resize_to
    findings = Findings()
    pred, gt = read_grey(job.pred), read_grey(job.gt)
    if int(gt.max(initial=0)) == 1:  # the toolkits' grey > 128 would silently empty it
        raise InputError(
            job.gt,
            f"ground truth stored as 0/1: the sod protocols take grey > {SOD_GT_THRESHOLD} "
            "as foreground, so it would score as empty; save it as 0/255",
        )
    pred = fit_to_gt(pred, gt.shape, job.pred, findings, resize_to)
    evaluator.update(pred, gt, name=job.key)
    return findings


def _summarise(evaluator: Any, protocol: str) -> dict[str, Any]:
    per_item = evaluator.per_item()
    result = {"num_items": len(per_item), "metrics": evaluator.compute(), "per_item": per_item}
    if protocol == "pysodmetrics":
        result["curves"] = evaluator.curves()
    return result


def _plot(results: Mapping[str, Mapping[str, Any]], protocol: str, out_dir: Path) -> list[Path]:
    """PR and F-measure curves (``pysodmetrics`` only: SPNet's script keeps no curves)."""
    if protocol != "pysodmetrics":
        return []
    from cmseg.viz import plot_sod_curves

    return plot_sod_curves({name: r["curves"] for name, r in results.items()}, out_dir)


ADAPTER = EvalAdapter(
    "sod", ("pysodmetrics", "spnet"), collect=flat_pairs, new_evaluator=_new_evaluator,
    score=_score, summarise=_summarise, columns=COLUMNS, chunk_size=16, plot=_plot,
    layout="<name>.png saliency maps (grey 0..255) against <name>.png ground-truth masks",
)  # fmt: skip
