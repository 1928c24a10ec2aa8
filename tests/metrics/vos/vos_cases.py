"""Shared helpers of the VOS tests: masks, a brute-force boundary F, a DAVIS sequence.

Imported by the test modules next to it (pytest puts this folder on ``sys.path``). The
brute-force F is written from the definition (loops and explicit distances, no OpenCV).
"""

from __future__ import annotations

import numpy as np


def square(h: int, w: int, top: int, left: int, size: int) -> np.ndarray:
    m = np.zeros((h, w), bool)
    m[top : top + size, left : left + size] = True
    return m


def brute_boundary(m: np.ndarray) -> np.ndarray:
    """Boundary from the definition: differs from an in-frame E, S or SE neighbour."""
    h, w = m.shape
    b = np.zeros_like(m, dtype=bool)
    for i in range(h):
        for j in range(w):
            for di, dj in ((0, 1), (1, 0), (1, 1)):
                if i + di < h and j + dj < w and m[i, j] != m[i + di, j + dj]:
                    b[i, j] = True
    return b


def brute_f(pred: np.ndarray, gt: np.ndarray, radius: int) -> float:
    bp, bg = brute_boundary(pred), brute_boundary(gt)
    pts_p, pts_g = np.argwhere(bp), np.argwhere(bg)
    if len(pts_p) == 0 and len(pts_g) == 0:
        return 1.0
    if len(pts_p) == 0 or len(pts_g) == 0:
        return 0.0
    d2 = ((pts_p[:, None, :] - pts_g[None, :, :]) ** 2).sum(-1)
    precision = np.count_nonzero((d2 <= radius * radius).any(1)) / len(pts_p)
    recall = np.count_nonzero((d2 <= radius * radius).any(0)) / len(pts_g)
    if precision + recall == 0:
        return 0.0
    return 2 * precision * recall / (precision + recall)


def davis_gt_pred():
    """5 frames 20x24, objects 1 (square) and 2 (bar); frames 0 and 4 are not scored."""
    t, h, w = 5, 20, 24
    gt = np.zeros((t, h, w), np.uint8)
    gt[:, 2:8, 2:8] = 1
    gt[:, 12:16, 4:20] = 2
    gt[:, 0, :] = 255  # void row: background for scoring, not an object
    pred = gt.copy()
    pred[pred == 255] = 0
    return gt, pred
