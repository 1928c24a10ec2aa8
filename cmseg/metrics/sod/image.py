"""Every metric of one (prediction, GT) pair, and the per-image summary schema."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from cmseg.metrics.sod.absolute_error import mae
from cmseg.metrics.sod.common import CURVE_NAMES, THRESHOLDED
from cmseg.metrics.sod.curves import threshold_curves
from cmseg.metrics.sod.inputs import level_histograms, prepare_pair
from cmseg.metrics.sod.s_measure import centroid_quadrants, smeasure
from cmseg.metrics.sod.weighted_f import weighted_fmeasure


@dataclass(frozen=True)
class ImageScores:
    """Everything one image contributes to the dataset results.

    Attributes:
        scalars: ``{"mae", "sm", "wfm", "em_adp", "fm_adp", "iou_adp", "dice_adp"}``, floats.
        curves: (6, 256) float64, rows in :data:`CURVE_NAMES` order, columns j = 0..255 for
            the ascending thresholds ``q >= j`` (the reverse of PySODMetrics' order).
    """

    scalars: dict[str, float]
    curves: np.ndarray

    def as_item(self) -> dict[str, Any]:
        """Per-image scores in the schema of :meth:`SODEvaluator.compute
        <cmseg.metrics.sod.evaluator.SODEvaluator.compute>` (with the image's own curves)."""
        return _summary(self.scalars, self.curves)


SCALAR_NAMES: tuple[str, ...] = ("mae", "sm", "wfm", "em_adp", "fm_adp", "iou_adp", "dice_adp")
"""Per-image scalars of :class:`ImageScores`, in the order of the evaluator's sums."""

_THRESHOLDED_ROWS = [CURVE_NAMES.index(name) for name in THRESHOLDED]


def _summary(scalars: dict[str, float], curves: np.ndarray) -> dict[str, Any]:
    """The compute() schema from scalars and (6, 256) curves: mean and max of each curve."""
    rows = curves[_THRESHOLDED_ROWS]
    means, maxima = rows.mean(axis=1).tolist(), rows.max(axis=1).tolist()
    out: dict[str, Any] = {key: scalars[key] for key in ("mae", "sm", "wfm")}
    for name, mean, maximum in zip(THRESHOLDED, means, maxima, strict=True):
        out[name] = {"adp": scalars[f"{name}_adp"], "mean": mean, "max": maximum}
    return out


def score_image(pred: np.ndarray, gt: np.ndarray) -> ImageScores:
    """All metrics of one (prediction, GT) pair.

    Args:
        pred: (H, W) uint8 map 0..255; gt: (H, W) uint8 mask, > 128 is foreground.

    Returns:
        The image's :class:`ImageScores`.
    """
    pair = prepare_pair(pred, gt)
    quadrants = centroid_quadrants(pair.mask) if 0 < pair.n_fg < pair.pred.size else None
    h_bg, h_fg = level_histograms(pair, quadrants)
    hist_bg, hist_fg = h_bg.sum(axis=0), h_fg.sum(axis=0)
    curves, adaptive = threshold_curves(pair, hist_bg, hist_fg)
    scalars = {
        "mae": mae(pair, hist_bg, hist_fg),
        "sm": smeasure(pair, quadrants, h_bg, h_fg),
        "wfm": weighted_fmeasure(pair),
        **{f"{name}_adp": adaptive[name] for name in THRESHOLDED},
    }
    return ImageScores(scalars=scalars, curves=curves)
