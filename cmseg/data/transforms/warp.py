"""The fused affine warp of a run of geometric transforms (one resampling per array).

:class:`_Plan` multiplies the matrices of consecutive geometric steps for one input size and
warps each array once: slicing for flips and integer crops, ``cv2.resize`` for crop + resize,
``cv2.warpAffine`` for anything with a rotation. Pixels from outside the image (or outside an
intermediate crop) are zeroed with the plan's coverage map.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np

from cmseg.data.transforms.roles import HW, _is_stack

if TYPE_CHECKING:  # only annotations: base.py imports this module
    from cmseg.data.transforms.base import GeometricTransform


def _axis_window(m: np.ndarray, in_hw: HW, out_hw: HW) -> tuple[slice, slice, bool, bool] | None:
    """When ``m`` is "crop an integer window inside the input, resize it to the output, maybe
    flip": ``(rows, cols, flip_rows, flip_cols)``; otherwise ``None``.

    Such maps (every call without a rotation) run as slicing plus ``cv2.resize``, several
    times faster than ``cv2.warpAffine`` and more precise for bilinear (OpenCV's warps
    quantise positions to 1/32 px).
    """
    if m[0, 1] != 0 or m[1, 0] != 0:
        return None
    out = []
    for a, t, n_out, n_in in (
        (m[1, 1], m[1, 2], out_hw[0], in_hw[0]),
        (m[0, 0], m[0, 2], out_hw[1], in_hw[1]),
    ):
        flip = a < 0
        if flip:  # m = flip_out @ m', with m' increasing
            a, t = -a, n_out - 1 - t
        n_win, start = n_out / a, 0.5 - (t + 0.5) / a  # x_out = a (x_in - start + 0.5) - 0.5
        if abs(n_win - round(n_win)) > 1e-6 * n_win or abs(start - round(start)) > 1e-6 * n_win:
            return None
        n_win, start = int(round(n_win)), int(round(start))
        if n_win < 1 or start < 0 or start + n_win > n_in:
            return None
        out.append((slice(start, start + n_win), flip))
    (rows, flip_rows), (cols, flip_cols) = out
    return rows, cols, flip_rows, flip_cols


def _resize_window(
    frame: np.ndarray, window: tuple[slice, slice, bool, bool], out_hw: HW, nearest: bool
) -> np.ndarray | None:
    """Crop, resize and flip one ``(H, W[, C])`` array; ``None`` when OpenCV cannot."""
    rows, cols, flip_rows, flip_cols = window
    crop = frame[rows, cols]
    out_h, out_w = out_hw
    if crop.shape[:2] == out_hw:
        out = crop
    else:
        sy, sx = out_h / crop.shape[0], out_w / crop.shape[1]
        if nearest:
            interp = cv2.INTER_NEAREST_EXACT  # = round() of the centre-aligned source position
        elif max(sx, sy) <= 1.0 and min(sx, sy) < 0.5:
            interp = cv2.INTER_AREA  # strong shrink: average, do not alias
        elif min(sx, sy) >= 0.5:
            interp = cv2.INTER_LINEAR
        else:
            return None
        if not nearest and crop.dtype.type not in (
            np.uint8,
            np.uint16,
            np.int16,
            np.float32,
            np.float64,
        ):
            return None
        out = cv2.resize(crop, (out_w, out_h), interpolation=interp)
        if out.ndim < frame.ndim:
            out = out[..., None]
    if flip_rows or flip_cols:
        return _flip(out, flip_rows, flip_cols)
    return np.ascontiguousarray(out)


def _flip(img: np.ndarray, rows: bool, cols: bool) -> np.ndarray:
    """A contiguous flipped copy of an ``(H, W[, C])`` array (``cv2.flip`` when it can)."""
    if img.ndim == 2 or (img.ndim == 3 and 1 < img.shape[2] <= 4):
        code = -1 if rows and cols else (0 if rows else 1)
        return cv2.flip(np.ascontiguousarray(img), code)
    return np.ascontiguousarray(img[:: -1 if rows else 1, :: -1 if cols else 1])


def _resize_prefilter(img: np.ndarray, m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Area-average an image first when ``m`` shrinks it by more than 2x (no aliasing).

    Returns the (possibly) smaller image and the matrix that maps *it* to the output.
    """
    sx = float(np.hypot(m[0, 0], m[1, 0]))  # stretch of the input x axis
    sy = float(np.hypot(m[0, 1], m[1, 1]))
    if min(sx, sy) >= 0.5:
        return img, m
    h, w = img.shape[:2]
    new_w = max(1, round(w * min(sx, 1.0)))
    new_h = max(1, round(h * min(sy, 1.0)))
    small = cv2.resize(img, (new_w, new_h), interpolation=cv2.INTER_AREA)
    if small.ndim < img.ndim:
        small = small[..., None]
    fx, fy = new_w / w, new_h / h
    pre = np.array([[fx, 0, 0.5 * fx - 0.5], [0, fy, 0.5 * fy - 0.5], [0, 0, 1]])
    return small, m @ np.linalg.inv(pre)


_CV_DTYPES = (np.uint8, np.int8, np.uint16, np.int16, np.int32, np.float32, np.float64)


def _warp_plane(img: np.ndarray, m: np.ndarray, out_hw: HW, nearest: bool) -> np.ndarray:
    """Warp one ``(H, W)`` or ``(H, W, C)`` array with the 3x3 forward matrix ``m``.

    Linear warps replicate the edge (so a resize does not darken the border); the pixels
    that come from outside the image are zeroed afterwards (:meth:`_Plan.coverage`).
    """
    if not nearest:
        img, m = _resize_prefilter(img, m)
    out_h, out_w = out_hw
    out = cv2.warpAffine(
        img,
        m[:2].astype(np.float64),
        (out_w, out_h),
        flags=cv2.INTER_NEAREST if nearest else cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT if nearest else cv2.BORDER_REPLICATE,
        borderValue=0,
    )
    if out.ndim < img.ndim:  # OpenCV drops a trailing channel axis of size 1
        out = out[..., None]
    return out


def _inside(m: np.ndarray, in_hw: HW, out_hw: HW) -> np.ndarray | None:
    """``uint8`` (H, W): 1 where the output pixel comes from inside an ``in_hw`` rectangle
    under ``m``; ``None`` when every output pixel does (checked on the four corners, the map
    being affine)."""
    out_h, out_w = out_hw
    corners = np.array([[0, 0, 1], [out_w - 1, 0, 1], [0, out_h - 1, 1], [out_w - 1, out_h - 1, 1]])
    src = corners @ np.linalg.inv(m)[:2].T
    eps = 1e-3
    if (
        src[:, 0].min() >= -0.5 + eps
        and src[:, 0].max() <= in_hw[1] - 0.5 - eps
        and src[:, 1].min() >= -0.5 + eps
        and src[:, 1].max() <= in_hw[0] - 0.5 - eps
    ):
        return None
    return _warp_plane(np.ones(in_hw, np.uint8), m, out_hw, nearest=True)


class _Plan:
    """The fused warp of a run of geometric steps for one input size.

    ``matrix`` maps input to output pixel centres (``None``: identity). ``coverage()`` is the
    ``uint8`` map of output pixels whose pre-image lies inside the input *and* inside every
    intermediate image (a crop followed by a rotation shows black corners, exactly as when
    the steps run one by one), or ``None`` when that is every pixel.
    """

    def __init__(self, ops: Sequence[tuple[GeometricTransform, Any]], hw: HW) -> None:
        self.in_hw = hw
        stages: list[tuple[HW, np.ndarray]] = []
        size = hw
        for op, params in ops:
            m, new_size = op.matrix(params, size)
            if m is not None:
                stages.append((size, m))
            size = new_size
        self.out_hw = size
        self._stages = stages
        self.matrix: np.ndarray | None = None
        for _, m in stages:
            self.matrix = m if self.matrix is None else m @ self.matrix
        self._coverage: np.ndarray | None = None
        self._coverage_done = False

    def coverage(self) -> np.ndarray | None:
        if not self._coverage_done:
            after = np.eye(3)
            inside = None
            for size, m in reversed(self._stages):
                after = after @ m  # maps this stage's input to the final output
                stage_inside = _inside(after, size, self.out_hw)
                if stage_inside is not None:
                    inside = stage_inside if inside is None else inside & stage_inside
            self._coverage, self._coverage_done = inside, True
        return self._coverage

    def warp(self, arr: np.ndarray, role: str) -> np.ndarray:
        """Warp a single array or a stack of frames; dtype and layout are kept."""
        if self.matrix is None and self.out_hw == self.in_hw:
            return arr
        m = np.eye(3) if self.matrix is None else self.matrix
        stack = _is_stack(arr, role)
        inside = self.coverage()
        if role == "valid" and arr.dtype == np.bool_ and arr.all():
            # all valid (most depth maps): the result is the coverage, no need to warp
            shape = (arr.shape[0], *self.out_hw) if stack else self.out_hw
            if inside is None:
                return np.ones(shape, dtype=bool)
            return np.repeat(inside.astype(bool)[None], arr.shape[0], 0) if stack else inside > 0
        window = _axis_window(m, self.in_hw, self.out_hw) if inside is None else None
        nearest = role in ("valid", "mask")
        if (
            window is not None
            and window[0].stop - window[0].start == self.out_hw[0]
            and (window[1].stop - window[1].start == self.out_hw[1])
        ):  # flips and integer crops: exact, no interpolation, any dtype
            ys, xs, flip_y, flip_x = window
            ys = slice(ys.stop - 1, ys.start - 1 if ys.start else None, -1) if flip_y else ys
            xs = slice(xs.stop - 1, xs.start - 1 if xs.start else None, -1) if flip_x else xs
            return np.ascontiguousarray(arr[:, ys, xs] if stack else arr[ys, xs])

        dtype = arr.dtype
        work = arr
        if dtype == np.bool_:
            work = arr.view(np.uint8)
        elif dtype == np.float16:
            work = arr.astype(np.float32)
        elif dtype.type not in _CV_DTYPES:
            if dtype.kind in "iu" and arr.size and (arr.min() < -(2**31) or arr.max() >= 2**31):
                raise ValueError(f"cannot warp a {dtype} array with values outside int32")
            work = arr.astype(np.int32 if dtype.kind in "iub" else np.float32)

        results = []
        for frame in work if stack else [work]:
            resized = None
            if window is not None:
                resized = _resize_window(frame, window, self.out_hw, nearest)
            if resized is None:
                resized = _warp_plane(frame, m, self.out_hw, nearest)
            if inside is not None:
                resized *= inside.reshape(inside.shape + (1,) * (resized.ndim - 2)).astype(
                    resized.dtype
                )
            results.append(resized)
        out = np.stack(results) if stack else results[0]
        if dtype == np.bool_:
            return out.view(np.bool_)
        return out if out.dtype == dtype else out.astype(dtype)
