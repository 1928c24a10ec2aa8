"""Mean absolute error (MAE) of one image, from its GT-class histograms."""

from __future__ import annotations

import numpy as np

from cmseg.metrics.sod.inputs import PreparedPair


def mae(pair: PreparedPair, hist_bg: np.ndarray, hist_fg: np.ndarray) -> float:
    """Mean absolute error |p - g| of one image, from its GT-class histograms.

    Args:
        pair: the prepared pair.
        hist_bg, hist_fg: (256,) float64 counts of each grey level among the GT-background /
            -foreground pixels (:func:`~cmseg.metrics.sod.inputs.level_histograms`, summed
            over the quadrants).

    Returns:
        MAE in [0, 1]; lower is better.
    """
    return float((hist_bg @ pair.values + hist_fg @ (1 - pair.values)) / pair.pred.size)
