"""Boundary building blocks of the F measure: tolerance radius, disk, one-pixel boundary map.

The per-frame F itself is computed with J in :mod:`cmseg.metrics.vos.frames`, on the masks'
bounding boxes.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

from cmseg.metrics.vos.inputs import _as_bool_stack

#: DAVIS default boundary tolerance (fraction of the image diagonal). CMA uses 0.010.
DEFAULT_BOUND_TH = 0.008


def boundary_tolerance(height: int, width: int, bound_th: float = DEFAULT_BOUND_TH) -> int:
    """Dilation radius in pixels used by the boundary F measure.

    Args:
        height, width: frame size (the full frame, not a crop).
        bound_th: ``< 1``: fraction of the diagonal (DAVIS 0.008, CMA 0.010); ``>= 1``: a
            whole number of pixels.

    Returns:
        ``ceil(bound_th * sqrt(height**2 + width**2))`` if ``bound_th < 1`` else ``bound_th``;
        e.g. 8 for 480x854 at 0.008, 12 for 720x1280, 6 for 360x640 (8 at 0.010).
    """
    if not bound_th > 0:
        raise ValueError(f"bound_th must be > 0, got {bound_th!r}")
    if bound_th >= 1:
        if bound_th != int(bound_th):
            raise ValueError(f"bound_th >= 1 is a pixel count and must be whole, got {bound_th!r}")
        return int(bound_th)
    # Integer h*h + w*w is exact, and sqrt is correctly rounded, so this reproduces the
    # toolkit's np.ceil(bound_th * np.linalg.norm((h, w))) bit for bit.
    return math.ceil(bound_th * math.sqrt(height * height + width * width))


@lru_cache(maxsize=64)
def _disk_cached(radius: int) -> np.ndarray:
    """Read-only :func:`disk` kernel, shared between calls (every frame uses the same one)."""
    offsets = np.arange(-radius, radius + 1)
    kernel = (offsets[:, None] ** 2 + offsets[None, :] ** 2 <= radius * radius).astype(np.uint8)
    kernel.setflags(write=False)
    return kernel


def disk(radius: int) -> np.ndarray:
    """Disk structuring element: ``uint8 (2r+1, 2r+1)``, 1 where ``dy**2 + dx**2 <= r**2``.

    The same set of offsets as ``skimage.morphology.disk(r)``, which the toolkit uses.
    """
    if radius < 0:
        raise ValueError(f"radius must be >= 0, got {radius}")
    return _disk_cached(int(radius)).copy()


def boundary_map(mask: np.ndarray) -> np.ndarray:
    """One-pixel boundary of binary masks (BSDS ``seg2bmap``, as in the DAVIS toolkit).

    Pixel ``(i, j)`` is a boundary pixel when it differs from its east, south or south-east
    neighbour, considering only neighbours inside the frame. So the boundary sits half a pixel
    towards the origin, the last row compares only with the east neighbour, the last column only
    with the south one, the bottom-right pixel is never a boundary, and a mask covering the
    whole frame has no boundary at all.

    Args:
        mask: ``(..., H, W)`` bool or integer (nonzero = foreground).

    Returns:
        ``bool`` array of the same shape.
    """
    m = _as_bool_stack(mask, "mask")
    return _bmap(m)


def _bmap(m: np.ndarray) -> np.ndarray:
    """:func:`boundary_map` of a bool stack ``(..., H, W)``, without validation."""
    b = np.zeros(m.shape, dtype=bool)
    np.not_equal(m[..., :, :-1], m[..., :, 1:], out=b[..., :, :-1])
    b[..., :-1, :] |= m[..., :-1, :] != m[..., 1:, :]
    b[..., :-1, :-1] |= m[..., :-1, :-1] != m[..., 1:, 1:]
    return b
