"""J and F of every frame, computed on the bounding box of the two masks.

:func:`_frames_jf` is the work-horse of every protocol: per frame it crops both masks to
their union bounding box (plus one pixel), which gives exactly the full-frame result (see
its docstring), and computes J and the boundary F there. The boxes of a whole stack are found
in a few vectorised passes (:func:`_bool_boxes`, :func:`_label_boxes` for index masks).
"""

from __future__ import annotations

import cv2
import numpy as np

from cmseg.metrics.vos.boundary import DEFAULT_BOUND_TH, _bmap, _disk_cached, boundary_tolerance
from cmseg.metrics.vos.inputs import _check_pair


def boundary_f(pred: np.ndarray, gt: np.ndarray, bound_th: float = DEFAULT_BOUND_TH) -> np.ndarray:
    """Boundary F measure per frame, vectorised over all leading axes.

    Args:
        pred, gt: ``(..., H, W)`` bool or integer masks (nonzero = foreground), same shape.
        bound_th: tolerance, see ``boundary_tolerance``.

    Returns:
        ``float64`` array of shape ``(...)`` in ``[0, 1]``. Note the toolkit's rule is about
        boundary pixels, not foreground pixels: a mask that covers the whole frame has no
        boundary, so it scores F = 1 against an empty mask (J is 0 there).
    """
    return jaccard_and_f(pred, gt, bound_th)[1]


def jaccard_and_f(
    pred: np.ndarray, gt: np.ndarray, bound_th: float = DEFAULT_BOUND_TH
) -> tuple[np.ndarray, np.ndarray]:
    """J and F per frame in one pass (cheaper than ``jaccard`` + ``boundary_f``).

    Args:
        pred, gt: ``(..., H, W)`` bool or integer masks (nonzero = foreground), same shape.
        bound_th: tolerance, see ``boundary_tolerance``.

    Returns:
        ``(J, F)``: two ``float64`` arrays of shape ``(...)`` in ``[0, 1]``.
    """
    p, g = _check_pair(pred, gt)
    lead = p.shape[:-2]
    h, w = p.shape[-2:]
    radius = boundary_tolerance(h, w, bound_th)
    j, f = _frames_jf(p.reshape(-1, h, w), g.reshape(-1, h, w), radius)
    return j.reshape(lead), f.reshape(lead)


def _boxes_from_rows_cols(
    rows: np.ndarray, cols: np.ndarray
) -> list[tuple[int, int, int, int, int]]:
    """``(t, y0, y1, x0, x1)`` (inclusive) of every frame with foreground, from (N, H) / (N, W)."""
    h, w = rows.shape[1], cols.shape[1]
    present = np.flatnonzero(rows.any(axis=1))
    rows, cols = rows[present], cols[present]
    y0s = rows.argmax(axis=1).tolist()
    y1s = (h - 1 - rows[:, ::-1].argmax(axis=1)).tolist()
    x0s = cols.argmax(axis=1).tolist()
    x1s = (w - 1 - cols[:, ::-1].argmax(axis=1)).tolist()
    return list(zip(present.tolist(), y0s, y1s, x0s, x1s, strict=True))


def _bool_boxes(p: np.ndarray, g: np.ndarray) -> list[tuple[int, int, int, int, int]]:
    """Union bounding boxes of two bool stacks ``(N, H, W)``: three cheap passes."""
    union = p | g
    return _boxes_from_rows_cols(union.any(axis=2), union.any(axis=1))


def _label_boxes(
    p: np.ndarray, g: np.ndarray, n_obj: int
) -> list[list[tuple[int, int, int, int, int]]] | None:
    """Union boxes of objects ``1..n_obj`` of two index stacks in one pass, or None.

    Each pixel becomes the bit ``1 << id`` (ids of 16 and more, 255 included, shift out to 0),
    so one OR-reduction over rows and one over columns give the rows/columns where each object
    occurs, instead of a compare and three passes per object.
    """
    if n_obj > 15 or p.dtype not in (np.uint8, np.uint16) or g.dtype not in (np.uint8, np.uint16):
        return None
    one = np.uint8(1) if n_obj <= 7 else np.uint16(1)
    bits = np.left_shift(one, p)
    bits |= np.left_shift(one, g)
    rows = np.bitwise_or.reduce(bits, axis=2)
    cols = np.bitwise_or.reduce(bits, axis=1)
    del bits
    return [
        _boxes_from_rows_cols(((rows >> k) & 1) != 0, ((cols >> k) & 1) != 0)
        for k in range(1, n_obj + 1)
    ]


def _frames_jf(
    p: np.ndarray,
    g: np.ndarray,
    radius: int,
    label: int | None = None,
    boxes: list[tuple[int, int, int, int, int]] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """J and F of each frame of two stacks ``(N, H, W)``; ``radius`` from the full frame.

    ``p``, ``g`` are bool masks (``label`` None) or index masks of which object ``label`` is
    scored. ``boxes``: the union boxes from ``_bool_boxes`` / ``_label_boxes`` (computed here
    when None); frames without a box are empty in both masks and keep J = F = 1.

    Why cropping is exact: all foreground of both masks lies in their union bounding box
    ``[y0, y1] x [x0, x1]``; a boundary pixel differs from a neighbour to its east/south, so
    every boundary pixel lies in the window ``[y0-1, y1] x [x0-1, x1]``. J only needs the
    foreground; F only needs the dilated maps *at* boundary pixels, and a dilation evaluated
    inside the window only sees boundary pixels, which are all inside the window. The boundary
    of the window's last row/column needs the row/column after it, so the boundary is computed
    on the window extended by one row and one column (where the frame has them); where the
    window touches the frame edge the frame-edge rule of ``boundary_map`` applies unchanged.
    OpenCV pads dilations with "nothing", exactly like the full-frame dilation at frame edges.
    """
    n, h, w = p.shape
    j_out = np.ones(n, dtype=np.float64)
    f_out = np.ones(n, dtype=np.float64)
    kernel = _disk_cached(radius)
    if boxes is None:
        boxes = _bool_boxes(p, g) if label is None else _bool_boxes(p == label, g == label)

    for t, y0, y1, x0, x1 in boxes:
        wy0 = max(y0 - 1, 0)
        wx0 = max(x0 - 1, 0)
        wy1 = y1 + 1  # exclusive end of the boundary window
        wx1 = x1 + 1
        ey1 = min(wy1 + 1, h)  # extended by one row / column where the frame has it
        ex1 = min(wx1 + 1, w)
        pc = p[t, wy0:ey1, wx0:ex1]
        gc = g[t, wy0:ey1, wx0:ex1]
        if label is not None:
            pc = pc == label  # GT void (255) is never a label: background, as in the toolkit
            gc = gc == label

        inter = np.count_nonzero(pc & gc)
        uni = np.count_nonzero(pc | gc)
        j_out[t] = inter / uni  # uni > 0: the frame has foreground

        both = _bmap(np.stack((pc, gc)))[:, : wy1 - wy0, : wx1 - wx0]
        bp, bg = both[0], both[1]
        n_p = np.count_nonzero(bp)
        n_g = np.count_nonzero(bg)
        if n_p == 0 and n_g == 0:
            continue  # P = R = 1 -> F = 1 (e.g. both masks cover the whole frame)
        if n_p == 0 or n_g == 0:
            f_out[t] = 0.0  # (P, R) = (1, 0) or (0, 1) -> F = 0
            continue
        dil_g = cv2.dilate(bg.view(np.uint8), kernel)
        dil_p = cv2.dilate(bp.view(np.uint8), kernel)
        m_p = np.count_nonzero(bp & dil_g.view(bool))
        m_g = np.count_nonzero(bg & dil_p.view(bool))
        # Same float operations, in the same order, as the toolkit: identical results.
        precision = m_p / n_p
        recall = m_g / n_g
        if precision + recall == 0:
            f_out[t] = 0.0
        else:
            f_out[t] = 2 * precision * recall / (precision + recall)
    return j_out, f_out
