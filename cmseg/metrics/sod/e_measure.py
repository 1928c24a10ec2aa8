"""E-measure (enhanced alignment, Fan et al. 2018) of binarised maps, from confusion counts."""

from __future__ import annotations

from typing import Any

import numpy as np

from cmseg.metrics.sod.common import EPS


def _enhanced(phi_pred: np.ndarray | float, phi_gt: float) -> np.ndarray:
    """Enhanced alignment ((align + 1)^2 / 4) of demeaned binary values (Fan et al. 2018)."""
    align = 2 * phi_pred * phi_gt / (phi_pred * phi_pred + phi_gt * phi_gt + EPS)
    return (align + 1) ** 2 / 4


def emeasure_from_counts(tp: Any, fp: Any, n_fg: int, n: int) -> np.ndarray:
    """E-measure of binarised maps from their confusion counts.

    A binary map and GT have only four pixel classes (TP, FP, FN, TN), so the enhanced
    alignment matrix takes four values; its sum is a weighted sum of them.

    Args:
        tp, fp: true / false positives, scalars or arrays (one entry per threshold).
        n_fg: foreground pixels of the GT; n: pixels of the image.

    Returns:
        E in [0, n / (n - 1)], same shape as ``tp``. An empty GT scores the fraction of
        predicted background, a full GT the fraction of predicted foreground (times n/(n-1)).
    """
    tp, fp = np.asarray(tp, dtype=np.float64), np.asarray(fp, dtype=np.float64)
    pred_fg = tp + fp
    if n_fg == 0:
        total = n - pred_fg
    elif n_fg == n:
        total = pred_fg
    else:
        fn = n_fg - tp
        tn = n - pred_fg - fn
        mu_pred, mu_gt = pred_fg / n, n_fg / n
        total = (
            tp * _enhanced(1 - mu_pred, 1 - mu_gt)
            + fp * _enhanced(1 - mu_pred, -mu_gt)
            + fn * _enhanced(-mu_pred, 1 - mu_gt)
            + tn * _enhanced(-mu_pred, -mu_gt)
        )
    return total / (n - 1 + EPS)
