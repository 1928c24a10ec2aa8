"""Photometric transforms of the RGB arrays: PIL-style colour enhancement (XMSNet)."""

from __future__ import annotations

import cv2
import numpy as np

from cmseg.data.transforms.base import Transform, _check_p
from cmseg.data.transforms.roles import Sample, _map_values

# ITU-R 601 luma, as PIL's convert("L").
_LUMA = np.array([0.299, 0.587, 0.114])
# PIL's SMOOTH filter is [[1, 1, 1], [1, 5, 1], [1, 1, 1]] / 13 = (9 * box3x3 + 4 * identity) / 13.
_SMOOTH_BOX, _SMOOTH_SELF = 9.0 / 13.0, 4.0 / 13.0


class ColorJitter(Transform):
    """PIL-style colour enhancement of the RGB arrays only (XMSNet's ``colorEnhance``).

    In order: brightness ``b`` (``b * x``), contrast ``c`` (towards the mean grey level),
    colour/saturation ``s`` (towards the pixel's grey value), sharpness ``k`` (towards PIL's
    3x3 SMOOTH blur; ``k > 1`` sharpens). Each factor is drawn uniformly from its range, or
    from the grid ``low, low + step, ..., high`` when ``step`` is given (XMSNet: step 0.1);
    ``None`` skips it. One set of factors per call, shared by every frame of a clip (the
    contrast mean is each frame's own). Applied with probability ``p``.

    Brightness, contrast and colour combine into one 3x4 colour matrix (one pass through the
    image); unlike PIL's chain of enhancers, values are clipped to 0..255 once at the end of
    that pass rather than after each step.
    """

    def __init__(
        self,
        brightness: tuple[float, float] | None = (0.5, 1.5),
        contrast: tuple[float, float] | None = (0.5, 1.5),
        saturation: tuple[float, float] | None = (0.0, 2.0),
        sharpness: tuple[float, float] | None = (0.0, 3.0),
        step: float | None = None,
        p: float = 1.0,
    ) -> None:
        for name, rng_ in (
            ("brightness", brightness),
            ("contrast", contrast),
            ("saturation", saturation),
            ("sharpness", sharpness),
        ):
            if rng_ is not None and not 0 <= rng_[0] <= rng_[1]:
                raise ValueError(f"{name} must be (low, high) with 0 <= low <= high, got {rng_}")
        self.brightness = brightness
        self.contrast = contrast
        self.saturation = saturation
        self.sharpness = sharpness
        self.step = step
        self.p = _check_p(p)

    def _draw(self, rng: np.random.Generator, bounds: tuple[float, float] | None) -> float:
        if bounds is None:
            return 1.0
        lo, hi = bounds
        if self.step:
            n = int(round((hi - lo) / self.step)) + 1
            return float(lo + int(rng.integers(0, n)) * self.step)
        return float(lo + rng.random() * (hi - lo))

    def apply(self, sample: Sample, rng: np.random.Generator) -> Sample:
        coin = rng.random()
        factors = [self._draw(rng, r) for r in (self.brightness, self.contrast, self.saturation)]
        k = self._draw(rng, self.sharpness)
        if coin >= self.p:
            return sample
        b, c, s = factors

        def jitter(img: np.ndarray, key: str, role: str) -> np.ndarray:
            if img.dtype != np.uint8 or img.ndim < 3 or img.shape[-1] != 3:
                raise ValueError(f"{key}: ColorJitter needs uint8 RGB, got {img.shape} {img.dtype}")
            frames = img if img.ndim == 4 else img[None]
            out = np.empty_like(frames)
            for i, frame in enumerate(frames):
                out[i] = _enhance(frame, b, c, s, k)
            return out if img.ndim == 4 else out[0]

        return _map_values(sample, ("rgb",), jitter)


def _enhance(img: np.ndarray, b: float, c: float, s: float, k: float) -> np.ndarray:
    """Brightness, contrast, colour, sharpness on one uint8 HxWx3 image."""
    out = img
    if (b, c, s) != (1.0, 1.0, 1.0):
        # grey = luma; saturation: s*x + (1-s)*grey; brightness then contrast with the mean
        # grey of the brightened image (rounded like PIL): c*b*x + (1-c)*mean.
        colour = s * np.eye(3) + (1.0 - s) * np.outer(np.ones(3), _LUMA)
        mean = 0.0
        if c != 1.0:
            mean_rgb = cv2.mean(img)[:3]
            mean = float(int(b * float(np.dot(_LUMA, mean_rgb)) + 0.5))
        m = np.empty((3, 4))
        m[:, :3] = c * b * colour
        m[:, 3] = (1.0 - c) * mean  # colour rows sum to 1, so the offset is unchanged
        out = cv2.transform(out, m)  # uint8 in, uint8 out (rounded, saturated)
    if k != 1.0:
        # k * x + (1 - k) * smooth(x), with smooth = (9 box + 4 x) / 13: one box filter and
        # one weighted sum. PIL leaves the one-pixel border as it was; so do we.
        box = cv2.blur(out, (3, 3), borderType=cv2.BORDER_REPLICATE)
        alpha = k + (1.0 - k) * _SMOOTH_SELF
        sharp = cv2.addWeighted(out, alpha, box, (1.0 - k) * _SMOOTH_BOX, 0.0)
        sharp[0], sharp[-1], sharp[:, 0], sharp[:, -1] = out[0], out[-1], out[:, 0], out[:, -1]
        out = sharp
    return out
