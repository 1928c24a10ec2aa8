"""``cmseg evaluate coseg``: masks ``<pred>/<class>/<name>.png`` (soft or binary) against
``<gt>/<class>/<name>.png``, with SSNM's precision P and Jaccard J (per image, per class).

Two protocols:

* ``ssnm`` (default), what SSNM's ``val.py`` computes for its four benchmarks (MSRC7,
  Internet, iCoseg8, PASCAL-VOC; reference ssnm_coseg.md §5-6): scored at **224 x 224**. The
  GT is read as grey, resized to 224 x 224 with PIL's bilinear filter and kept above 0.5
  (``value / 255 > 0.5``); the prediction (SSNM's network predicts at 224) is resized the same
  way and then binarised (adaptive threshold or ``--threshold``). A thin object can score J 1
  natively and 1/3 at 224.
* ``native``: at the ground truth's resolution; a prediction of another size is resized to
  it bilinearly (OpenCV).

A GT stored as 0/1 is read as 0/255 under both (SSNM's grey > 0.5 would read it as empty).
A prediction whose size differs from its GT's is counted (``notes.resized``); one of another
aspect ratio is a problem.
"""

from __future__ import annotations

from typing import Any

import numpy as np

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

__all__ = ["ADAPTER", "SSNM_SIZE", "pil_bilinear", "ssnm_gt"]

#: SSNM's scoring resolution (height = width).
SSNM_SIZE = 224


def _new_evaluator(protocol: str, options: dict[str, Any]) -> Any:
    from cmseg.metrics.masks import CosegEvaluator

    return CosegEvaluator(**options)


def _bilinear(pred: Any, shape: tuple[int, ...]) -> Any:
    return resize_to_shape(pred, shape, nearest=False)


def _keep(pred: Any, shape: tuple[int, ...]) -> Any:
    return pred  # ssnm: both maps go to 224 x 224 anyway


def pil_bilinear(array: np.ndarray, size: int) -> np.ndarray:
    """``uint8 (size, size[, 3])``: a grey or RGB ``uint8`` image resized to a square as
    torchvision's ``Resize`` does on a PIL image (PIL bilinear; the aspect ratio is not kept),
    what SSNM does to every image and ground truth."""
    from PIL import Image

    return np.asarray(Image.fromarray(array).resize((size, size), Image.BILINEAR))


def ssnm_gt(grey: np.ndarray, size: int = SSNM_SIZE) -> np.ndarray:
    """``bool (size, size)``: the grey GT (PIL ``L``) as SSNM reads it, resized to ``size``
    (224 for scoring) and kept ``/ 255 > 0.5``; a GT stored as 0/1 is read as 0/255."""
    if int(grey.max(initial=0)) == 1:
        grey = grey * np.uint8(255)
    return pil_bilinear(grey, size) > 127  # v / 255 > 0.5 <=> v >= 128 for integers


def _score(evaluator: Any, job: Job, protocol: str, allow_missing: bool) -> Findings:
    findings = Findings()
    pred = read_grey(job.pred)
    if protocol == "ssnm":
        grey = read_grey(job.gt)
        fit_to_gt(pred, grey.shape, job.pred, findings, _keep)  # counted, checked
        pred, gt = pil_bilinear(pred, SSNM_SIZE), ssnm_gt(grey)
    else:
        gt = read_mask(job.gt)
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
    "coseg", ("ssnm", "native"), collect=nested_pairs, new_evaluator=_new_evaluator,
    score=_score, summarise=_summarise, columns=[("P", "P"), ("J", "J"),
    ("P_classes", "P(cls)"), ("J_classes", "J(cls)")], options=frozenset({"threshold", "cap"}),
    layout="<class>/<name>.png masks (soft or binary) against <class>/<name>.png ground truth",
)  # fmt: skip
