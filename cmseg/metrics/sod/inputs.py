"""Input handling: validation, normalisation and the grey-level histograms all metrics share.

A (prediction, GT) pair is validated and normalised once (:func:`prepare_pair`); the
threshold curves, MAE and S-measure are then computed from its per-grey-level histograms
(:func:`level_histograms`), the weighted F-measure from the pair itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from cmseg.io import SOD_GT_THRESHOLD
from cmseg.metrics.sod.common import _SCRATCH, NUM_LEVELS

_LEVELS = np.arange(NUM_LEVELS, dtype=np.float64) / 255  # grey level -> value, as v / 255


def resize_to(pred: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Resize a prediction to a GT's (H, W) with bilinear interpolation, as PySODEvalToolkit does.

    Args:
        pred: (h, w) uint8 map.
        shape: the GT's shape; only the first two entries (H, W) are used.

    Returns:
        (H, W) uint8: ``cv2.resize(pred, (W, H), interpolation=cv2.INTER_LINEAR)``, or ``pred``
        itself when it already has that size.
    """
    height, width = int(shape[0]), int(shape[1])
    if pred.shape[:2] == (height, width):
        return pred
    return cv2.resize(pred, (width, height), interpolation=cv2.INTER_LINEAR)


def check_pair(pred: Any, gt: Any) -> tuple[np.ndarray, np.ndarray]:
    """Validate a (prediction, GT) pair and return both as C-contiguous uint8 arrays.

    Args:
        pred: (H, W) uint8 map, 0..255.
        gt: (H, W) uint8 mask; values > 128 are foreground.

    Raises:
        TypeError: either array is not uint8.
        ValueError: not 2-D, empty, or the shapes differ (resize first: :func:`resize_to`).
    """
    pred, gt = np.asarray(pred), np.asarray(gt)
    for what, array in (("pred", pred), ("gt", gt)):
        if array.dtype != np.uint8:
            raise TypeError(f"{what} must be uint8 (grey 0..255), got dtype {array.dtype}")
        if array.ndim != 2 or array.size == 0:
            raise ValueError(
                f"{what} must be a non-empty 2-D (H, W) array, got shape {array.shape}"
            )
    if pred.shape != gt.shape:
        raise ValueError(f"pred shape {pred.shape} differs from gt shape {gt.shape}; resize first")
    # Contiguity also makes numpy's mean run in the same order as the reference's.
    return np.ascontiguousarray(pred), np.ascontiguousarray(gt)


def normalized_levels(pred: np.ndarray) -> np.ndarray:
    """The value in [0, 1] that each grey level of ``pred`` takes after normalisation.

    The same floating-point operations as the reference (``v / 255``, then ``(p - min) /
    (max - min)``) applied to the 256 levels instead of the pixels, so looking a pixel up
    in the result gives exactly the reference's normalised pixel.

    Args:
        pred: (H, W) uint8 map.

    Returns:
        (256,) float64, non-decreasing; entries of levels absent from ``pred`` are unused.
    """
    low, high, _, _ = cv2.minMaxLoc(pred)
    if low == high:  # constant map: no stretching (MATLAB's mapminmax leaves it as is)
        return _LEVELS.copy()
    lo, hi = _LEVELS[int(low)], _LEVELS[int(high)]
    return (_LEVELS - lo) / (hi - lo)


def foreground_mask(gt: np.ndarray) -> np.ndarray:
    """(H, W) uint8 mask, 1 where ``gt > 128`` (:data:`cmseg.io.SOD_GT_THRESHOLD`), else 0."""
    return cv2.threshold(gt, SOD_GT_THRESHOLD, 1, cv2.THRESH_BINARY)[1]


def _histogram(img: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """Counts of the 256 grey levels of ``img`` (where ``mask`` != 0), as (256,) float64."""
    if img.size == 0:
        return np.zeros(NUM_LEVELS)
    if img.size < 2**24:  # cv2.calcHist counts in float32: exact below 2**24 per bin
        counts = cv2.calcHist([img], [0], mask, [NUM_LEVELS], [0, NUM_LEVELS])
        return counts.ravel().astype(np.float64)
    values = img[mask.astype(bool)] if mask is not None else img.ravel()
    return np.bincount(values, minlength=NUM_LEVELS).astype(np.float64)


Quadrants = list[tuple[slice, slice]]
"""The four (rows, cols) parts of an image around the GT centroid: TL, TR, BL, BR."""


@dataclass(frozen=True)
class PreparedPair:
    """One pair in the reference's normalised form, with what every metric shares.

    Attributes:
        pred: (H, W) uint8 map, C-contiguous.
        mask: (H, W) uint8, 1 on the GT foreground (gt > 128).
        values: (256,) float64, the normalised value of each grey level.
        norm_map: (H, W) float64, the normalised map (``values[pred]``), equal bit for bit to
            the reference's. A per-thread scratch array: valid until the next
            :func:`prepare_pair` in the same thread.
        n_fg: GT foreground pixels.
        mean: ``np.mean(norm_map)``, summed in the reference's order (the adaptive threshold
            compares pixels with it, so it must be the same float).
    """

    pred: np.ndarray
    mask: np.ndarray
    values: np.ndarray
    norm_map: np.ndarray
    n_fg: int
    mean: float


def prepare_pair(pred: Any, gt: Any) -> PreparedPair:
    """Validate and normalise a pair (see :func:`check_pair` for the errors)."""
    pred, gt = check_pair(pred, gt)
    mask = foreground_mask(gt)
    values = normalized_levels(pred)
    norm_map = cv2.LUT(pred, values, dst=_SCRATCH.array("norm_map", pred.shape, np.float64))
    n_fg = cv2.countNonZero(mask)
    return PreparedPair(pred, mask, values, norm_map, n_fg, float(np.mean(norm_map)))


def level_histograms(
    pair: PreparedPair, quadrants: Quadrants | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Grey-level histograms of the GT-background and GT-foreground pixels.

    Args:
        pair: the prepared pair.
        quadrants: count each part separately (the S-measure needs them; their sum is the
            whole image's), or None for the whole image at once.

    Returns:
        (h_bg, h_fg), each (Q, 256) float64 counts, Q = 4 with quadrants, else 1.
    """
    parts = quadrants or [(slice(None), slice(None))]
    h_all = np.stack([_histogram(pair.pred[rs, cs]) for rs, cs in parts])
    if pair.n_fg == 0:
        return h_all, np.zeros_like(h_all)
    if pair.n_fg == pair.pred.size:
        return np.zeros_like(h_all), h_all
    h_fg = np.stack([_histogram(pair.pred[rs, cs], pair.mask[rs, cs]) for rs, cs in parts])
    return h_all - h_fg, h_fg
