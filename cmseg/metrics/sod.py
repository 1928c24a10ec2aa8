"""Salient / camouflaged object detection metrics with the conventions of PySODMetrics 1.6.

The numbers equal those of PySODMetrics 1.6.x called with ``normalize=True`` (the way
PySODEvalToolkit calls it) to 1e-10, per image and per dataset; the tests check this against
the library itself. Conventions, all inherited from that library (and from the MATLAB code it
ports):

* GT: a pixel is foreground when its grey value is ``> 128``.
* Prediction: divided by 255, then min-max stretched per image to [0, 1]; a constant map is
  left as ``value / 255``. A map that never exceeds 0.4 is therefore scored as if it reached 1.
* Threshold curves: 256 thresholds on ``q = floor(255 p)``; the map is binarised with
  ``q >= j``. Curves are averaged over the images first; "mean" and "max" are then the mean
  and the maximum of the averaged curve (not the mean of per-image maxima).
* Adaptive threshold: ``p >= min(2 mean(p), 1)`` on the unquantised map. On an empty GT with
  an all-zero prediction this marks every pixel foreground, so adpE (and wF) are 0 there.
* E-measure divides by ``H W - 1``: a perfect map scores ``N / (N - 1)``, slightly above 1.
* F-measure uses beta^2 = 0.3, the weighted F-measure beta^2 = 1, the S-measure alpha = 0.5.

One departure: when the GT centroid lies on the last row or column, one S-measure quadrant is
empty (it has weight 0). PySODMetrics (and the MATLAB original) then return NaN for the whole
S-measure; here the empty quadrant contributes 0.

Speed: every threshold curve, the adaptive scores, MAE and the S-measure come from per-grey-level
histograms (one per GT class and S-measure quadrant), so they cost a few hundred operations on
256-vectors per image whatever its size. The weighted F-measure is computed from what it
really depends on (see :func:`weighted_fmeasure`). All five of MAE, S, E, F and wF together
run about 6x faster than PySODMetrics at 320x320, single-threaded, with the same values
(``benchmarks/bench_sod_metrics.py``); OpenCV's exact distance transform is then ~40% of it.

pysodmetrics is used only in the tests and the benchmark, never here.
"""

from __future__ import annotations

import functools
import math
import threading
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

EPS: float = float(np.spacing(1))
"""MATLAB's ``eps`` (2.2e-16), the smoothing term of every formula here."""

F_BETA2: float = 0.3
"""beta^2 of the F-measure (precision weighted more than recall)."""

WF_BETA2: float = 1.0
"""beta^2 of the weighted F-measure."""

S_ALPHA: float = 0.5
"""Weight of the object term against the region term in the S-measure."""

NUM_LEVELS: int = 256
"""Grey levels, thresholds and curve length."""

CURVE_NAMES: tuple[str, ...] = ("precision", "recall", "fm", "em", "iou", "dice")
"""The per-threshold curves, in the order of the evaluator's internal curve array."""

THRESHOLDED: tuple[str, ...] = ("em", "fm", "iou", "dice")
"""Metrics reported as ``{"adp", "mean", "max"}``."""

_LEVELS = np.arange(NUM_LEVELS, dtype=np.float64) / 255  # grey level -> value, as v / 255
_LARGE_IMAGE = 4096  # beyond this side length OpenCV's exact distance transform is not trusted


class _Scratch(threading.local):
    """Work arrays reused from image to image, one set per thread.

    Fresh temporaries of a megabyte or so are returned to the OS when freed and page-faulted
    back on the next image; on the measuring machine that doubled the weighted F-measure's
    time. Arrays above ``max_size`` elements are not kept (a huge image should not pin memory).
    """

    max_size = 1 << 21  # elements: 16 MB of float64, images up to ~1400 x 1400

    def __init__(self) -> None:
        self._flat: dict[str, np.ndarray] = {}

    def array(self, key: str, shape: tuple[int, ...], dtype: Any) -> np.ndarray:
        """An uninitialised C-contiguous array; valid until the next request for ``key``."""
        size = math.prod(shape)
        if size > self.max_size:
            return np.empty(shape, dtype)
        flat = self._flat.get(key)
        if flat is None or flat.dtype != dtype or flat.size < size:
            flat = np.empty(max(size, 1), dtype)
            self._flat[key] = flat
        return flat[:size].reshape(shape)


_SCRATCH = _Scratch()


# --------------------------------------------------------------------------------------------
# Input handling


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
            raise ValueError(f"{what} must be a non-empty 2-D (H, W) array, got shape {array.shape}")
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
    """(H, W) uint8 mask, 1 where ``gt > 128`` (foreground), else 0."""
    return cv2.threshold(gt, 128, 1, cv2.THRESH_BINARY)[1]


def _histogram(img: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """Counts of the 256 grey levels of ``img`` (where ``mask`` != 0), as (256,) float64."""
    if img.size == 0:
        return np.zeros(NUM_LEVELS)
    if img.size < 2**24:  # cv2.calcHist counts in float32: exact below 2**24 per bin
        return cv2.calcHist([img], [0], mask, [NUM_LEVELS], [0, NUM_LEVELS]).ravel().astype(np.float64)
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
    return PreparedPair(pred, mask, values, norm_map, cv2.countNonZero(mask), float(np.mean(norm_map)))


def level_histograms(pair: PreparedPair, quadrants: Quadrants | None = None) -> tuple[np.ndarray, np.ndarray]:
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


# --------------------------------------------------------------------------------------------
# Threshold statistics: F, precision, recall, E, IoU, Dice from counts


def _divide(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """``num / den`` with 0 where ``den == 0`` (the reference's convention for every ratio)."""
    num, den = np.asarray(num, dtype=np.float64), np.asarray(den, dtype=np.float64)
    return np.divide(num, den, out=np.zeros(np.broadcast(num, den).shape), where=den != 0)


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


# --------------------------------------------------------------------------------------------
# S-measure (Fan et al. 2017) from histograms


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
        cov = ((1 - y) * np.einsum("ql,ql->q", h_fg, dev) - y * np.einsum("ql,ql->q", h_bg, dev)) / den
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


def _region_score(norm_map: np.ndarray, values: np.ndarray, quadrants: Quadrants,
                  h_bg: np.ndarray, h_fg: np.ndarray) -> float:
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


def smeasure(pair: PreparedPair, quadrants: Quadrants | None, h_bg: np.ndarray, h_fg: np.ndarray) -> float:
    """S-measure (alpha 0.5) of one image, in [0, 1].

    Args:
        pair: the prepared pair.
        quadrants: :func:`centroid_quadrants` of its mask (None for an empty or full GT).
        h_bg, h_fg: (4, 256) level histograms of those quadrants (:func:`level_histograms`).
    """
    n = pair.pred.size
    if pair.n_fg == 0:  # nothing to find: one minus the mean (false) response
        return 1.0 - pair.mean
    if pair.n_fg == n:
        return pair.mean
    hist_bg, hist_fg = h_bg.sum(axis=0), h_fg.sum(axis=0)
    y = pair.n_fg / n
    s_object = y * _object_score(hist_fg, pair.values) + (1 - y) * _object_score(hist_bg, 1 - pair.values)
    s_region = _region_score(pair.norm_map, pair.values, quadrants, h_bg, h_fg)
    return max(0.0, S_ALPHA * s_object + (1 - S_ALPHA) * s_region)


# --------------------------------------------------------------------------------------------
# Weighted F-measure (Margolin et al. 2014)


def _gaussian_taps() -> np.ndarray:
    """7 taps whose outer product is MATLAB's ``fspecial('gaussian', 7, 5)``."""
    taps = np.exp(-(np.arange(-3, 4, dtype=np.float64) ** 2) / (2 * 5.0 * 5.0))
    return taps / taps.sum()


_GAUSS = _gaussian_taps()
_BLUR_REACH = np.ones((7, 7), np.uint8)  # the pixels a 7x7 blur reads around a pixel


@functools.cache
def _importance_table(size: int = 1 << 17) -> np.ndarray:
    """B as a function of the integer squared distance k: ``2 - 0.5 ** (sqrt(k) / 5)``.

    Entry 0 (GT foreground) is 0 so that a dot product with it sums over the background only.
    From k = 270^2 on the entries are exactly 2.0 in float64, so larger k can be clipped.
    """
    k = np.arange(size, dtype=np.float64)
    table = 2 - np.exp(np.log(0.5) / 5 * np.sqrt(k))
    table[0] = 0.0
    assert table[-1] == 2.0 and table[270**2] == 2.0
    return table


@functools.lru_cache(maxsize=64)
def _nearest_offsets(width: int) -> np.ndarray:
    """Flat offsets to test, in order, for a pixel at squared distance k <= 18 from the GT.

    Row k lists the displacements (dy, dx) with dy^2 + dx^2 = k sorted by (dx, dy): the first
    foreground pixel found this way is the nearest one with the smallest column, then the
    smallest row, which is the tie rule of scipy's ``distance_transform_edt`` feature
    transform (its column pass keeps the upper of two equidistant sites, its row pass the left).
    Rows are padded with offset 0 (the pixel itself, background, so never a hit).

    Returns:
        (19, 8) int64 flat offsets for an array ``width`` pixels wide.
    """
    table = np.zeros((19, 8), dtype=np.int64)
    for k in range(1, 19):
        pairs = sorted((dx, dy) for dy in range(-4, 5) for dx in range(-4, 5) if dy * dy + dx * dx == k)
        for j, (dx, dy) in enumerate(pairs):
            table[k, j] = dy * width + dx
    return table


def _window(array: np.ndarray, r0: int, r1: int, c0: int, c1: int, fill: float, out: np.ndarray) -> np.ndarray:
    """Copy ``array[r0:r1, c0:c1]`` into ``out``, with ``fill`` where that lies outside ``array``."""
    height, width = array.shape
    top, bottom, left, right = max(r0, 0), min(r1, height), max(c0, 0), min(c1, width)
    if (top, bottom, left, right) != (r0, r1, c0, c1):
        out.fill(fill)
    out[top - r0:bottom - r0, left - c0:right - c0] = array[top:bottom, left:right]
    return out


def _squared_distances(mask: np.ndarray) -> np.ndarray | None:
    """Exact squared Euclidean distance of each pixel to the nearest GT-foreground pixel.

    OpenCV's exact (DIST_MASK_PRECISE) transform returns float32 distances; their squares
    round back to the integer squared distances exactly up to d ~ 880 (measured against
    scipy on >2900 masks up to 2100x2100, with and without IPP); farther pixels may be off by
    one, which does not matter because B is exactly 2.0 beyond d = 270, and the result is
    clipped to the size of that table.

    Args:
        mask: (H, W) uint8 0/1 foreground mask.

    Returns:
        (H, W) intp squared distances (0 on the foreground), a scratch array; or None for
        images too large to trust OpenCV's float arithmetic.
    """
    if max(mask.shape) > _LARGE_IMAGE:
        return None
    background = np.subtract(1, mask, out=_SCRATCH.array("wf.background", mask.shape, np.uint8))
    dist = cv2.distanceTransform(
        background, cv2.DIST_L2, cv2.DIST_MASK_PRECISE, dst=_SCRATCH.array("wf.dist", mask.shape, np.float32)
    )
    np.multiply(dist, dist, out=dist)
    squared = np.rint(dist, out=_SCRATCH.array("wf.squared", mask.shape, np.intp), casting="unsafe")
    last = _importance_table().size - 1
    if cv2.minMaxLoc(dist)[1] >= last:  # far pixels: B is 2.0 there, clip into the table
        np.minimum(squared, last, out=squared)
    return squared


def weighted_fmeasure(pair: PreparedPair) -> float:
    """Weighted F-measure (beta^2 = 1) of one image, in [0, 1]; 0 for an empty GT.

    The definition (MATLAB ``WFb.m``): E = |p - g|; background pixels take the error of their
    nearest foreground pixel (Et); EA = Et blurred by a 7x7 Gaussian (sigma 5, zero padding);
    on the foreground the error is min(E, EA); on the background it is weighted by
    B = 2 - 0.5^(d / 5), d the distance to the foreground. What that needs:

    * FPw = sum over the background of p * B(d): only the distance, no nearest index. d is
      exact from OpenCV (:func:`_squared_distances`) and B a table lookup on d^2.
    * EA matters only on the foreground, so Et only within 3 pixels (Chebyshev) of it: those
      background pixels are at d^2 <= 18, and their nearest foreground pixel is found among
      the few displacements of length sqrt(d^2), in scipy's tie order (:func:`_nearest_offsets`).
      The blur runs on the GT's bounding box plus that margin only.

    Images over 4096 pixels on a side go through :func:`weighted_fmeasure_reference`.
    """
    n_fg = pair.n_fg
    if n_fg == 0:
        return 0.0
    squared = _squared_distances(pair.mask)
    if squared is None:
        return weighted_fmeasure_reference(pair.norm_map, pair.mask)
    importance = np.take(_importance_table(), squared, out=_SCRATCH.array("wf.importance", squared.shape, np.float64))
    # einsum, not BLAS: a threaded BLAS dot rounds differently with its thread count, and
    # the result must not depend on how many worker processes (each single-threaded) ran.
    fp_w = float(np.einsum("i,i->", pair.norm_map.ravel(), importance.ravel()))

    fg_error = _foreground_weighted_errors(pair, squared)
    if fg_error is None:  # OpenCV's distances disagree with the mask: take the slow path
        return weighted_fmeasure_reference(pair.norm_map, pair.mask)
    tp_w = n_fg - fg_error
    recall = 1 - fg_error / n_fg
    precision = tp_w / (tp_w + fp_w + EPS)
    return float((1 + WF_BETA2) * recall * precision / (recall + WF_BETA2 * precision + EPS))


def _foreground_weighted_errors(pair: PreparedPair, squared: np.ndarray) -> float | None:
    """Sum over the GT foreground of min(E, EA) (see :func:`weighted_fmeasure`).

    Works on the GT's bounding box grown by 3 (the blur's reach: the background pixels that
    matter, the "band", lie there) and 4 more (the reach of the nearest-pixel search from the
    band), zero outside the image.

    Returns:
        The sum, or None when some band pixel has no foreground pixel at exactly its distance
        (OpenCV disagreeing with the mask; never seen).
    """
    height, width = pair.mask.shape
    x, y, w, h = cv2.boundingRect(pair.mask)
    r0, r1, c0, c1 = y - 7, y + h + 7, x - 7, x + w + 7
    shape = (h + 14, w + 14)
    win_mask = _window(pair.mask, r0, r1, c0, c1, 0, _SCRATCH.array("wf.win_mask", shape, np.uint8))
    win_pred = _window(pair.pred, r0, r1, c0, c1, 0, _SCRATCH.array("wf.win_pred", shape, np.uint8))
    # E = 1 - p on the foreground and 0 elsewhere, by one lookup: every other pixel is sent to
    # level 255, whose entry is 0 (level 255 is either absent or the maximum, where p = 1)
    error_of_level = 1 - pair.values
    error_of_level[255] = 0.0
    not_fg = cv2.threshold(win_mask, 0, 255, cv2.THRESH_BINARY_INV)[1]
    cv2.max(win_pred, not_fg, dst=win_pred)
    error = cv2.LUT(win_pred, error_of_level, dst=_SCRATCH.array("wf.error", shape, np.float64))

    # The band: background pixels inside the image within 3 pixels (Chebyshev) of the GT.
    band_mask = cv2.dilate(win_mask, _BLUR_REACH)
    band_mask -= win_mask
    band_mask[: max(-r0, 0)] = 0
    band_mask[shape[0] - max(r1 - height, 0):] = 0
    band_mask[:, : max(-c0, 0)] = 0
    band_mask[:, shape[1] - max(c1 - width, 0):] = 0
    band = np.flatnonzero(band_mask.view(np.bool_))

    if band.size:
        # window index -> image index (the window is shape[1] wide, the image width wide)
        in_image = band + (band // shape[1]) * (width - shape[1]) + (r0 * width + c0)
        band_sq = squared.ravel()[in_image]  # 1..18 by construction
        candidates = np.take(_nearest_offsets(shape[1]), band_sq, axis=0)
        candidates += band[:, None]
        first = _first_hit(win_mask.ravel()[candidates])
        if first is None:
            return None
        nearest = candidates.ravel()[np.arange(0, candidates.size, candidates.shape[1]) + first]
        error.ravel()[band] = error.ravel()[nearest]  # Et: the band takes its nearest E
    blurred = cv2.sepFilter2D(
        error, cv2.CV_64F, _GAUSS, _GAUSS, dst=_SCRATCH.array("wf.blurred", shape, np.float64),
        borderType=cv2.BORDER_CONSTANT,
    )
    error.ravel()[band] = 0.0  # back to E, 0 off the foreground
    # off the foreground E is 0 and blurred >= 0, so the minimum adds nothing there
    return float(np.minimum(blurred, error, out=blurred).sum())


def _first_hit(hits: np.ndarray) -> np.ndarray | None:
    """Column of the first 1 in each row of an (n, 8) uint8 0/1 array; None if a row has none.

    Each row read as a little-endian uint64 has byte j = column j, so the lowest set bit
    (``v & -v``) is 2^(8 j); frexp's exponent of that is 8 j + 1. (3x faster than argmax.)
    """
    words = hits.view("<u8").ravel()
    if not words.all():
        return None
    lowest = words & (~words + np.uint64(1))
    return (np.frexp(lowest.astype(np.float64))[1] - 1) >> 3


def weighted_fmeasure_reference(norm_map: np.ndarray, mask: np.ndarray) -> float:
    """Weighted F-measure computed directly from its definition (slow, exact).

    scipy's feature transform gives every background pixel its nearest foreground pixel (the
    ``bwdist`` of the MATLAB code), the whole image is blurred. The fallback of
    :func:`weighted_fmeasure` for very large images, and its check in the tests; same arguments.
    """
    from scipy.ndimage import distance_transform_edt

    fg = mask.astype(bool)
    n_fg = int(fg.sum())
    if n_fg == 0:
        return 0.0
    dist, (near_r, near_c) = distance_transform_edt(~fg, return_indices=True)
    error = np.abs(norm_map - fg)
    nearest_error = error[near_r, near_c]  # equals error on the foreground (nearest = itself)
    blurred = cv2.sepFilter2D(nearest_error, cv2.CV_64F, _GAUSS, _GAUSS, borderType=cv2.BORDER_CONSTANT)
    fg_sum = float(np.minimum(blurred, error)[fg].sum())
    importance = 2 - np.exp(np.log(0.5) / 5 * dist[~fg])
    fp_w = float((error[~fg] * importance).sum())
    tp_w = n_fg - fg_sum
    recall = 1 - fg_sum / n_fg
    precision = tp_w / (tp_w + fp_w + EPS)
    return float((1 + WF_BETA2) * recall * precision / (recall + WF_BETA2 * precision + EPS))


# --------------------------------------------------------------------------------------------
# One image


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
        """Per-image scores in the schema of :meth:`SODEvaluator.compute` (per-image curves)."""
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


def mae(pair: PreparedPair, hist_bg: np.ndarray, hist_fg: np.ndarray) -> float:
    """Mean absolute error |p - g| of one image, in [0, 1], from its class histograms."""
    return float((hist_bg @ pair.values + hist_fg @ (1 - pair.values)) / pair.pred.size)


def threshold_curves(pair: PreparedPair, hist_bg: np.ndarray, hist_fg: np.ndarray) -> tuple[np.ndarray, dict[str, float]]:
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


# --------------------------------------------------------------------------------------------
# Dataset evaluator


@dataclass
class SODState:
    """Additive state of :class:`SODEvaluator` (picklable; two states add up field by field).

    Attributes:
        count: images scored.
        scalar_sums: (7,) sums over images of :data:`SCALAR_NAMES`.
        curve_sums: (6, 256) sums over images of the curves (rows :data:`CURVE_NAMES`,
            ascending thresholds).
        items: ``(name or None, per-image scores)`` in scoring order.
    """

    count: int = 0
    scalar_sums: np.ndarray = field(default_factory=lambda: np.zeros(len(SCALAR_NAMES)))
    curve_sums: np.ndarray = field(default_factory=lambda: np.zeros((len(CURVE_NAMES), NUM_LEVELS)))
    items: list[tuple[str | None, dict[str, Any]]] = field(default_factory=list)


class SODEvaluator:
    """Dataset-level SOD/COD metrics, PySODMetrics 1.6 conventions (see the module docstring).

    ``update`` each (prediction, GT) pair, then ``compute``. Evaluators filled in different
    processes combine with ``merge`` (the state is sums plus the per-image list).
    """

    def __init__(self) -> None:
        self.state = SODState()
        self._names: set[str] = set()

    def reset(self) -> None:
        """Forget every image."""
        self.state = SODState()
        self._names = set()

    def __len__(self) -> int:
        return self.state.count

    def update(self, pred: np.ndarray, gt: np.ndarray, name: str | None = None) -> ImageScores:
        """Score one pair and add it.

        Args:
            pred: (H, W) uint8 map 0..255 (resize it to the GT first: :func:`resize_to`).
            gt: (H, W) uint8 mask, > 128 is foreground.
            name: the item's name in :meth:`per_item` (default: its position, ``"000000"``...).

        Returns:
            The image's scores.

        Raises:
            TypeError, ValueError: bad arrays (see :func:`check_pair`) or a repeated name.
        """
        if name is not None and name in self._names:
            raise ValueError(f"item {name!r} was already scored")
        scores = score_image(pred, gt)
        state = self.state
        state.count += 1
        state.scalar_sums += [scores.scalars[k] for k in SCALAR_NAMES]
        state.curve_sums += scores.curves
        state.items.append((name, scores.as_item()))
        if name is not None:
            self._names.add(name)
        return scores

    def merge(self, other: SODEvaluator) -> None:
        """Add the images of ``other`` (e.g. filled in a worker process) to this evaluator.

        Raises:
            ValueError: both evaluators scored an item of the same name.
        """
        clash = self._names & other._names
        if clash:
            raise ValueError(f"items scored twice: {sorted(clash)[:5]}")
        self.state.count += other.state.count
        self.state.scalar_sums += other.state.scalar_sums
        self.state.curve_sums += other.state.curve_sums
        self.state.items.extend(other.state.items)
        self._names |= other._names

    def _means(self) -> tuple[dict[str, float], np.ndarray]:
        if self.state.count == 0:
            raise ValueError("no image was scored")
        count = self.state.count
        return dict(zip(SCALAR_NAMES, (self.state.scalar_sums / count).tolist(), strict=True)), self.state.curve_sums / count

    def compute(self) -> dict[str, Any]:
        """Dataset results (means over images; mean/max of the mean curves).

        Returns:
            ``{"mae", "sm", "wfm", "em": {"adp", "mean", "max"}, "fm": {...}, "iou": {...},
            "dice": {...}}``, Python floats. MAE in [0, 1] (lower is better); the rest in
            [0, 1] except E, which can reach N / (N - 1).

        Raises:
            ValueError: no image was scored.
        """
        return _summary(*self._means())

    def curves(self) -> dict[str, list[float]]:
        """Dataset-mean curves over the 256 thresholds, in ascending threshold order.

        Returns:
            ``{"thresholds", "precision", "recall", "fm", "em", "iou", "dice"}``, lists of 256
            Python floats. Entry j is the map binarised with ``floor(255 p) >= j``, i.e. at
            threshold ``thresholds[j] = j / 255`` (0.0 ... 1.0). PySODMetrics stores the same
            curves in the reverse (descending) order.
        """
        _, curves = self._means()
        out = {"thresholds": (np.arange(NUM_LEVELS) / 255).tolist()}
        out.update({name: curves[i].tolist() for i, name in enumerate(CURVE_NAMES)})
        return out

    def per_item(self) -> dict[str, dict[str, Any]]:
        """Per-image scores, ``{name: <same schema as compute()>}`` in scoring order.

        "mean" and "max" are those of the image's own curves. Unnamed items are called by
        their position (``"000000"``, ``"000001"``...).
        """
        return {name if name is not None else f"{i:06d}": item for i, (name, item) in enumerate(self.state.items)}
