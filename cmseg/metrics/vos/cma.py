"""CMA's scoring resolution (Few_shot_RVOS ``test.py``; reference cma_fsrvos.md §5).

CMA scores at about 360p, not at the original resolution: frames are resized so that their
short side is 360 (no maximum size, ReferFormer's size rule), the ground-truth masks are
resized bilinearly to that size and kept above 0.5, and the predictions are produced at it.
Here a prediction at the ground truth's native size is brought to the scoring size the same way
as the ground truth (bilinear, ``> 0.5``); one already at the scoring size is used as is.
"""

from __future__ import annotations

import cv2
import numpy as np

#: The short side CMA scores at.
CMA_SHORT_SIDE = 360


def cma_scoring_shape(height: int, width: int, short_side: int = CMA_SHORT_SIDE) -> tuple[int, int]:
    """``(H', W')`` of a ``height x width`` frame resized to ``short_side`` (0: unchanged).

    ReferFormer's (DETR's) rule: the short side becomes ``short_side`` and the long side
    ``int(short_side * long / short)`` (truncated); a frame whose short side already is
    ``short_side`` keeps its size. E.g. 720x1280 -> 360x640, 480x854 -> 360x640.
    """
    if short_side <= 0 or min(height, width) == short_side:
        return height, width
    if width < height:
        return int(short_side * height / width), short_side
    return short_side, int(short_side * width / height)


def resize_masks(masks: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Binary masks ``(T, H, W)`` resized to ``shape`` bilinearly, then ``> 0.5``.

    OpenCV's ``INTER_LINEAR`` on float32 (pixel centres at half-integers, no antialiasing), the
    sampling of torch's ``F.interpolate(mode="bilinear", align_corners=False)``.

    Returns:
        ``bool (T, *shape)``; ``masks`` itself when the size already matches.
    """
    if masks.shape[1:] == tuple(shape):
        return masks
    out = np.empty((masks.shape[0], *shape), dtype=bool)
    size = (int(shape[1]), int(shape[0]))
    for t, frame in enumerate(masks):
        resized = cv2.resize(frame.astype(np.float32), size, interpolation=cv2.INTER_LINEAR)
        np.greater(resized, 0.5, out=out[t])
    return out
