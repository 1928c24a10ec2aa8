"""Fixed-size resizing: :class:`Resize` (any aspect) and :class:`ResizePad` (aspect kept,
zero padding), with :func:`pad_placement`, where the padded image lands in the square."""

from __future__ import annotations

from typing import Any

import numpy as np

from cmseg.data.transforms.base import GeometricTransform
from cmseg.data.transforms.roles import HW


class Resize(GeometricTransform):
    """Resize to ``size`` (an int for a square, or ``(H, W)``); aspect ratio is not kept."""

    def __init__(self, size: int | tuple[int, int]) -> None:
        size = (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))
        if min(size) < 1:
            raise ValueError(f"size must be positive, got {size}")
        self.size = size

    def matrix(self, params: Any, hw: HW) -> tuple[np.ndarray | None, HW]:
        if hw == self.size:
            return None, hw
        sy, sx = self.size[0] / hw[0], self.size[1] / hw[1]
        m = np.array([[sx, 0.0, 0.5 * sx - 0.5], [0.0, sy, 0.5 * sy - 0.5], [0.0, 0.0, 1.0]])
        return m, self.size


def pad_placement(hw: HW, size: int) -> tuple[int, int, int, int]:
    """Where :class:`ResizePad` puts an ``(H, W)`` image inside its ``size x size`` output.

    The longer side becomes ``size`` and the other keeps the aspect ratio (rounded, at least
    1 px); the image is centred (extra pixel of an odd margin at the bottom/right).

    Returns:
        ``(top, left, height, width)`` of the image inside the square, in output pixels.
    """
    h, w = int(hw[0]), int(hw[1])
    if min(h, w) < 1 or size < 1:
        raise ValueError(f"need a non-empty image and size >= 1, got {hw} and {size}")
    scale = size / max(h, w)
    height = min(size, max(1, round(h * scale)))
    width = min(size, max(1, round(w * scale)))
    return (size - height) // 2, (size - width) // 2, height, width


class ResizePad(GeometricTransform):
    """Aspect-preserving resize into a ``size x size`` square, centred, zero padding around.

    CMPC's (and RRN's) ``resize_and_pad``: the longer side becomes ``size``; the margins are
    black RGB, aux 0 / invalid, and background in masks. :func:`pad_placement` says where the
    image lands, which is how predictions are cropped back.
    """

    def __init__(self, size: int) -> None:
        if int(size) < 1:
            raise ValueError(f"size must be positive, got {size}")
        self.size = int(size)

    def matrix(self, params: Any, hw: HW) -> tuple[np.ndarray | None, HW]:
        top, left, height, width = pad_placement(hw, self.size)
        if (height, width) == tuple(hw) and top == left == 0:
            return None, hw
        sy, sx = height / hw[0], width / hw[1]
        m = np.array(
            [[sx, 0.0, 0.5 * sx - 0.5 + left], [0.0, sy, 0.5 * sy - 0.5 + top], [0.0, 0.0, 1.0]]
        )
        return m, (self.size, self.size)
