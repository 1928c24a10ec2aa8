"""Threshold curves: precision, recall, F, E, IoU and Dice at every grey-level threshold.

All of them are functions of the true / false positive counts, which come for all 256
thresholds at once from cumulative sums of the GT-class histograms (the joint histogram of
grey level and GT class), plus one more column for the adaptive threshold.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from cmseg.metrics.sod.common import CURVE_NAMES, F_BETA2, NUM_LEVELS, THRESHOLDED
from cmseg.metrics.sod.e_measure import emeasure_from_counts
from cmseg.metrics.sod.inputs import PreparedPair


def _divide(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """``num / den`` with 0 where ``den == 0`` (the reference's convention for every ratio)."""
    num, den = np.asarray(num, dtype=np.float64), np.asarray(den, dtype=np.float64)
    return np.divide(num, den, out=np.zeros(np.broadcast(num, den).shape), where=den != 0)


def threshold_metrics(tp: Any, fp: Any, n_fg: int, n: int) -> dict[str, np.ndarray]:
    """Every count-based metric of binarised maps.

    Args:
        tp, fp: true / false positives, scalars or (T,) arrays (one entry per threshold).
        n_fg: foreground pixels of the GT; n: pixels of the image.

    Returns:
        ``{"precision", "recall", "fm", "em", "iou", "dice"}``, each shaped like ``tp``, in
        [0, 1] except E (up to n / (n - 1)). Zero denominators give 0; so does a zero TP for
        the F-measure.
    """
    tp, fp = np.asarray(tp, dtype=np.float64), np.asarray(fp, dtype=np.float64)
    fn = n_fg - tp
    precision = _divide(tp, tp + fp)
    recall = tp / max(n_fg, 1)
    fm = _divide((1 + F_BETA2) * precision * recall, F_BETA2 * precision + recall)
    return {
        "precision": precision,
        "recall": recall,
        "fm": fm,
        "em": emeasure_from_counts(tp, fp, n_fg, n),
        "iou": _divide(tp, tp + fp + fn),
        "dice": _divide(2 * tp, 2 * tp + fp + fn),
    }


def _cumulative_counts(hist: np.ndarray, quantized: np.ndarray) -> np.ndarray:
    """Pixels with ``q >= j`` for j = 0..255 (ascending thresholds), from a per-level histogram.

    Args:
        hist: (256,) counts per grey level of the input map.
        quantized: (256,) uint8, ``q = floor(255 p)`` of each grey level.
    """
    per_q = np.bincount(quantized, weights=hist, minlength=NUM_LEVELS)
    return np.cumsum(per_q[::-1])[::-1]


def threshold_curves(
    pair: PreparedPair, hist_bg: np.ndarray, hist_fg: np.ndarray
) -> tuple[np.ndarray, dict[str, float]]:
    """Every count-based metric at the 256 thresholds and at the adaptive threshold.

    Args:
        pair: the prepared pair; hist_bg, hist_fg: (256,) its GT-background / -foreground
            level histograms.

    Returns:
        ((6, 256) curves, rows :data:`CURVE_NAMES`, ascending thresholds;
        ``{"em", "fm", "iou", "dice"}`` at ``p >= min(2 mean(p), 1)``).
    """
    quantized = (pair.values * 255).astype(np.uint8)  # floor(255 p), as the reference
    selected = pair.values >= min(2 * pair.mean, 1.0)  # adaptive: on the unquantised map
    # the 256 thresholds and the adaptive one as a 257th column, all in one pass
    tp = np.append(_cumulative_counts(hist_fg, quantized), hist_fg[selected].sum())
    fp = np.append(_cumulative_counts(hist_bg, quantized), hist_bg[selected].sum())
    metrics = threshold_metrics(tp, fp, pair.n_fg, pair.pred.size)
    curves = np.stack([metrics[name] for name in CURVE_NAMES])
    return curves[:, :NUM_LEVELS], {name: float(metrics[name][NUM_LEVELS]) for name in THRESHOLDED}
