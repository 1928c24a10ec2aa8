"""S-measure (structure measure, Fan et al. 2017) from grey-level histograms.

The object term needs the histograms of the GT-foreground and -background pixels, the region
term those of the four quadrants around the GT centroid; only a quadrant where both maps are
constant is replayed on its pixels (see :func:`_constant_quadrant_score`).
"""

from __future__ import annotations

import cv2
import numpy as np

from cmseg.metrics.sod.common import EPS, S_ALPHA
from cmseg.metrics.sod.inputs import PreparedPair, Quadrants


def _object_score(counts: np.ndarray, values: np.ndarray) -> float:
    """2 mean / (mean^2 + 1 + std + eps) of the pixels described by a level histogram.

    Args:
        counts: (256,) pixel counts per level (at least one pixel).
        values: (256,) value of each level.
    """
    n = counts.sum()
    mean = counts @ values / n
    # sample std (ddof=1) as MATLAB's std; one pixel has std 0
    std = float(np.sqrt(counts @ (values - mean) ** 2 / (n - 1))) if n > 1 else 0.0
    return float(2 * mean / (mean * mean + 1 + std + EPS))


def _quadrant_ssim(h_bg: np.ndarray, h_fg: np.ndarray, values: np.ndarray) -> np.ndarray:
    """SSIM-like score of each S-measure quadrant, from its level histograms.

    Args:
        h_bg, h_fg: (4, 256) counts per quadrant and level of GT-background / -foreground pixels.
        values: (256,) value of each level.

    Returns:
        (4,) scores; NaN for an empty quadrant (the caller gives it no weight).
    """
    n_bg, n_fg = h_bg.sum(axis=1), h_fg.sum(axis=1)
    n = n_bg + n_fg
    hist = h_bg + h_fg
    with np.errstate(invalid="ignore", divide="ignore"):
        x = hist @ values / n
        y = n_fg / n
        dev = values[None, :] - x[:, None]
        den = n - 1 + EPS
        var_x = np.einsum("ql,ql->q", hist, dev * dev) / den
        var_y = (n_fg * (1 - y) ** 2 + n_bg * y * y) / den
        cov = (
            (1 - y) * np.einsum("ql,ql->q", h_fg, dev) - y * np.einsum("ql,ql->q", h_bg, dev)
        ) / den
        alpha = 4 * x * y * cov
        beta = (x * x + y * y) * (var_x + var_y)
        return np.where(alpha != 0, alpha / (beta + EPS), np.where(beta == 0, 1.0, 0.0))


def centroid_quadrants(mask: np.ndarray) -> Quadrants:
    """Split an image at its GT centroid, as the reference's S-measure region term does.

    The centroid is the mean foreground coordinate (exact, from integer sums), rounded half
    to even (numpy's rule), plus one (MATLAB's ``1:X`` includes X): (cy, cx) are the heights
    and widths of the top and left parts. The bottom or right parts are empty when the
    centroid lies on the last row or column.

    Args:
        mask: (H, W) uint8 0/1 foreground mask with at least one foreground pixel.
    """
    height, width = mask.shape
    rows = cv2.reduce(mask, 1, cv2.REDUCE_SUM, dtype=cv2.CV_32S).ravel().astype(np.int64)
    cols = cv2.reduce(mask, 0, cv2.REDUCE_SUM, dtype=cv2.CV_32S).ravel().astype(np.int64)
    total = int(rows.sum())
    cy = int(round(int(rows @ np.arange(height)) / total)) + 1
    cx = int(round(int(cols @ np.arange(width)) / total)) + 1
    top, bottom, left, right = slice(0, cy), slice(cy, height), slice(0, cx), slice(cx, width)
    return [(top, left), (top, right), (bottom, left), (bottom, right)]


def _region_score(
    norm_map: np.ndarray,
    values: np.ndarray,
    quadrants: Quadrants,
    h_bg: np.ndarray,
    h_fg: np.ndarray,
) -> float:
    """Area-weighted SSIM of the four quadrants around the GT centroid.

    Args:
        norm_map: (H, W) normalised map; values: (256,) normalised value of each level.
        quadrants: from :func:`centroid_quadrants`; h_bg, h_fg: their (4, 256) histograms.
    """
    height, width = norm_map.shape
    area = height * width
    cy, cx = quadrants[0][0].stop, quadrants[0][1].stop
    w_lt = cx * cy / area
    w_rt = cy * (width - cx) / area
    w_lb = (height - cy) * cx / area
    weights = np.array([w_lt, w_rt, w_lb, 1 - w_lt - w_rt - w_lb])
    scores = _quadrant_ssim(h_bg, h_fg, values)
    for q, (rs, cs) in enumerate(quadrants):
        hist = h_bg[q] + h_fg[q]
        if hist.sum() == 0:
            scores[q] = 0.0  # empty quadrant, weight 0 (the reference gives NaN)
        elif (h_bg[q].sum() == 0 or h_fg[q].sum() == 0) and np.count_nonzero(hist) == 1:
            scores[q] = _constant_quadrant_score(norm_map[rs, cs])
    return float(weights @ scores)


def _constant_quadrant_score(region: np.ndarray) -> float:
    """SSIM of a quadrant where both the GT and the prediction are constant.

    Both alpha and the GT variance are 0 there, so the score is 1 when the prediction's
    variance is exactly 0 and 0 otherwise. In the reference that variance is computed around
    ``np.mean`` of the pixels, which need not equal the constant (rounding), so the outcome
    depends on that rounding: replay it on the same pixels in the same order.
    """
    mean = np.mean(region)
    if mean == 0:
        return 1.0
    return 1.0 if np.sum((region - mean) ** 2) == 0 else 0.0


def smeasure(
    pair: PreparedPair, quadrants: Quadrants | None, h_bg: np.ndarray, h_fg: np.ndarray
) -> float:
    """S-measure (alpha 0.5) of one image, in [0, 1].

    Args:
        pair: the prepared pair.
        quadrants: :func:`centroid_quadrants` of its mask (None for an empty or full GT).
        h_bg, h_fg: (4, 256) level histograms of those quadrants
            (:func:`~cmseg.metrics.sod.inputs.level_histograms`).
    """
    n = pair.pred.size
    if pair.n_fg == 0:  # nothing to find: one minus the mean (false) response
        return 1.0 - pair.mean
    if pair.n_fg == n:
        return pair.mean
    hist_bg, hist_fg = h_bg.sum(axis=0), h_fg.sum(axis=0)
    y = pair.n_fg / n
    s_object = y * _object_score(hist_fg, pair.values) + (1 - y) * _object_score(
        hist_bg, 1 - pair.values
    )
    s_region = _region_score(pair.norm_map, pair.values, quadrants, h_bg, h_fg)
    return max(0.0, S_ALPHA * s_object + (1 - S_ALPHA) * s_region)
