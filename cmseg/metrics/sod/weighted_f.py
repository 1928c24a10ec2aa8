"""Weighted F-measure (Margolin et al. 2014): the fast exact path and the reference.

The fast path (:func:`weighted_fmeasure`) needs OpenCV's exact distance transform for the
background weights and, near the object only, the nearest foreground pixel in scipy's tie
order; :func:`weighted_fmeasure_reference` computes the definition directly on the whole image.
"""

from __future__ import annotations

import functools

import cv2
import numpy as np

from cmseg.metrics.sod.common import _SCRATCH, EPS, WF_BETA2
from cmseg.metrics.sod.inputs import PreparedPair

_LARGE_IMAGE = 4096  # beyond this side length OpenCV's exact distance transform is not trusted


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
        pairs = sorted(
            (dx, dy) for dy in range(-4, 5) for dx in range(-4, 5) if dy * dy + dx * dx == k
        )
        for j, (dx, dy) in enumerate(pairs):
            table[k, j] = dy * width + dx
    return table


def _window(
    array: np.ndarray, r0: int, r1: int, c0: int, c1: int, fill: float, out: np.ndarray
) -> np.ndarray:
    """Copy ``array[r0:r1, c0:c1]`` into ``out``, ``fill`` where that lies outside ``array``."""
    height, width = array.shape
    top, bottom, left, right = max(r0, 0), min(r1, height), max(c0, 0), min(c1, width)
    if (top, bottom, left, right) != (r0, r1, c0, c1):
        out.fill(fill)
    out[top - r0 : bottom - r0, left - c0 : right - c0] = array[top:bottom, left:right]
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
        background,
        cv2.DIST_L2,
        cv2.DIST_MASK_PRECISE,
        dst=_SCRATCH.array("wf.dist", mask.shape, np.float32),
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
    importance = np.take(
        _importance_table(),
        squared,
        out=_SCRATCH.array("wf.importance", squared.shape, np.float64),
    )
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
    band_mask[shape[0] - max(r1 - height, 0) :] = 0
    band_mask[:, : max(-c0, 0)] = 0
    band_mask[:, shape[1] - max(c1 - width, 0) :] = 0
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
        error,
        cv2.CV_64F,
        _GAUSS,
        _GAUSS,
        dst=_SCRATCH.array("wf.blurred", shape, np.float64),
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
    blurred = cv2.sepFilter2D(
        nearest_error, cv2.CV_64F, _GAUSS, _GAUSS, borderType=cv2.BORDER_CONSTANT
    )
    fg_sum = float(np.minimum(blurred, error)[fg].sum())
    importance = 2 - np.exp(np.log(0.5) / 5 * dist[~fg])
    fp_w = float((error[~fg] * importance).sum())
    tp_w = n_fg - fg_sum
    recall = 1 - fg_sum / n_fg
    precision = tp_w / (tp_w + fp_w + EPS)
    return float((1 + WF_BETA2) * recall * precision / (recall + WF_BETA2 * precision + EPS))
