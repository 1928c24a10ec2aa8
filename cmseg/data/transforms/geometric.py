"""Random geometric transforms: flip, crops and rotation (each one affine map).

Parameters are drawn once per call and do not depend on the image size, so all frames of a
clip and all members of a list get the same transform; in a :class:`~.base.Compose`
consecutive geometric steps run as one warp (:mod:`.warp`). Fixed-size resizing is in
:mod:`.resize`.
"""

from __future__ import annotations

import math
from typing import Any

import cv2
import numpy as np

from cmseg.data.transforms.base import GeometricTransform, _check_p
from cmseg.data.transforms.roles import HW, Sample, key_role
from cmseg.data.transforms.text import swap_left_right


class HorizontalFlip(GeometricTransform):
    """Mirror left-right with probability ``p``; swaps left/right in sentences when it does."""

    def __init__(self, p: float = 0.5, swap_text: bool = True) -> None:
        self.p = _check_p(p)
        self.swap_text = swap_text

    def sample(self, rng: np.random.Generator) -> bool:
        return bool(rng.random() < self.p)

    def matrix(self, params: bool, hw: HW) -> tuple[np.ndarray | None, HW]:
        if not params:
            return None, hw
        return np.array([[-1.0, 0.0, hw[1] - 1.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]), hw

    def edit(self, params: bool, sample: Sample) -> None:
        if not (params and self.swap_text):
            return
        for key, value in sample.items():
            if key_role(key) != "text" or value is None:
                continue
            if isinstance(value, str):
                sample[key] = swap_left_right(value)
            elif isinstance(value, (list, tuple)):
                sample[key] = [swap_left_right(v) if isinstance(v, str) else v for v in value]


def _crop_matrix(x0: int, y0: int) -> np.ndarray:
    """The 3x3 map of a crop whose top-left corner is ``(x0, y0)`` (a translation)."""
    return np.array([[1.0, 0.0, -x0], [0.0, 1.0, -y0], [0.0, 0.0, 1.0]])


class RandomScaleCrop(GeometricTransform):
    """Crop a random window (a random scale and position), as in RandomResizedCrop.

    The window covers a fraction of the image area drawn uniformly from ``scale``, with an
    aspect ratio (relative to the image's own, log-uniform) from ``ratio``, clipped to the
    image, at a uniform random position. Output is the window at its own size; follow with
    :class:`Resize` for a fixed size (in a :class:`Compose` the two are one warp).
    Applied with probability ``p``.
    """

    def __init__(
        self,
        scale: tuple[float, float] = (0.5, 1.0),
        ratio: tuple[float, float] = (3 / 4, 4 / 3),
        p: float = 1.0,
    ) -> None:
        if not 0 < scale[0] <= scale[1] <= 1:
            raise ValueError(f"scale must satisfy 0 < low <= high <= 1, got {scale}")
        if not 0 < ratio[0] <= ratio[1]:
            raise ValueError(f"ratio must satisfy 0 < low <= high, got {ratio}")
        self.scale = (float(scale[0]), float(scale[1]))
        self.ratio = (float(ratio[0]), float(ratio[1]))
        self.p = _check_p(p)

    def sample(self, rng: np.random.Generator) -> tuple[float, float, float, float] | None:
        u = rng.random(5)
        if u[0] >= self.p:
            return None
        s = self.scale[0] + u[1] * (self.scale[1] - self.scale[0])
        log_lo, log_hi = math.log(self.ratio[0]), math.log(self.ratio[1])
        r = math.exp(log_lo + u[2] * (log_hi - log_lo))
        return s, r, float(u[3]), float(u[4])

    def window(self, params: tuple[float, float, float, float], hw: HW) -> tuple[int, ...]:
        """``(x0, y0, w, h)`` of the crop for an image of size ``hw``."""
        s, r, u, v = params
        height, width = hw
        w = min(width, max(1, round(width * math.sqrt(s * r))))
        h = min(height, max(1, round(height * math.sqrt(s / r))))
        x0 = min(int(u * (width - w + 1)), width - w)
        y0 = min(int(v * (height - h + 1)), height - h)
        return x0, y0, w, h

    def matrix(self, params: Any, hw: HW) -> tuple[np.ndarray | None, HW]:
        if params is None:
            return None, hw
        x0, y0, w, h = self.window(params, hw)
        if (w, h) == (hw[1], hw[0]):
            return None, hw
        return _crop_matrix(x0, y0), (h, w)


class RandomCenterCrop(GeometricTransform):
    """XMSNet/SPNet "randomCrop": a centred window ``max_shrink`` px smaller at most.

    Width and height are drawn independently as ``W - d`` with ``d`` uniform in
    ``{1, ..., max_shrink}`` (numpy's ``randint(W - 30, W)`` in the reference code, whose
    upper bound is exclusive), and the window is centred. Applied with probability ``p``.
    """

    def __init__(self, max_shrink: int = 30, p: float = 1.0) -> None:
        if max_shrink < 1:
            raise ValueError(f"max_shrink must be >= 1, got {max_shrink}")
        self.max_shrink = int(max_shrink)
        self.p = _check_p(p)

    def sample(self, rng: np.random.Generator) -> tuple[int, int] | None:
        coin = rng.random()
        dw, dh = (int(d) for d in rng.integers(1, self.max_shrink + 1, size=2))
        return (dw, dh) if coin < self.p else None

    def matrix(self, params: tuple[int, int] | None, hw: HW) -> tuple[np.ndarray | None, HW]:
        if params is None:
            return None, hw
        height, width = hw
        w, h = max(1, width - params[0]), max(1, height - params[1])
        return _crop_matrix((width - w) // 2, (height - h) // 2), (h, w)


class RandomRotation(GeometricTransform):
    """Rotate about the image centre by an angle from ``degrees`` with probability ``p``.

    Positive angles turn counter-clockwise (as PIL and OpenCV). The output keeps the input
    size; corners that come from outside the image are black / aux 0 / invalid / background.
    ``integer=True`` draws whole degrees from ``degrees`` inclusive (XMSNet: ``randint(-15,
    15)``, i.e. -15..14, with p = 0.2).
    """

    def __init__(
        self,
        degrees: float | tuple[float, float] = 15.0,
        p: float = 1.0,
        integer: bool = False,
    ) -> None:
        if isinstance(degrees, (int, float)):
            degrees = (-abs(float(degrees)), abs(float(degrees)))
        if degrees[0] > degrees[1]:
            raise ValueError(f"degrees must be (low, high) with low <= high, got {degrees}")
        self.degrees = (float(degrees[0]), float(degrees[1]))
        self.p = _check_p(p)
        self.integer = integer

    def sample(self, rng: np.random.Generator) -> float | None:
        coin = rng.random()
        lo, hi = self.degrees
        if self.integer:
            angle = float(rng.integers(math.ceil(lo), math.floor(hi) + 1))
        else:
            angle = float(lo + rng.random() * (hi - lo))
        return angle if coin < self.p and angle != 0.0 else None

    def matrix(self, params: float | None, hw: HW) -> tuple[np.ndarray | None, HW]:
        if params is None:
            return None, hw
        height, width = hw
        centre = ((width - 1) / 2.0, (height - 1) / 2.0)
        m = cv2.getRotationMatrix2D(centre, params, 1.0)
        return np.vstack([m, [0.0, 0.0, 1.0]]), hw
