"""Region similarity J (Jaccard index of the two masks) per frame."""

from __future__ import annotations

import numpy as np

from cmseg.metrics.vos.inputs import _check_pair


def jaccard(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """Region similarity J per frame, vectorised over all leading axes.

    Args:
        pred, gt: ``(..., H, W)`` bool or integer masks (nonzero = foreground), same shape.

    Returns:
        ``float64`` array of shape ``(...)`` in ``[0, 1]``; 1 where both masks are empty.
    """
    p, g = _check_pair(pred, gt)
    inter = np.count_nonzero(p & g, axis=(-2, -1))
    union = np.count_nonzero(p | g, axis=(-2, -1))
    out = np.ones(np.shape(union), dtype=np.float64)
    np.divide(inter, union, out=out, where=union > 0)
    return out
