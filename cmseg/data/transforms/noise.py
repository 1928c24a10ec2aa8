"""Noise transforms: Gaussian noise on the aux maps, label (pepper) noise on the masks."""

from __future__ import annotations

import numpy as np

from cmseg.data.transforms.base import Transform, _check_p
from cmseg.data.transforms.roles import Sample, _map_values, _spatial_values


def _valid_key(key: str) -> str:
    """The key of the validity map of the aux value ``key`` (``aux`` -> ``aux_valid``)."""
    return f"{key}_valid"


class AuxNoise(Transform):
    """Gaussian noise on the auxiliary (depth/thermal) maps, valid pixels only.

    ``std`` is a float or a ``(low, high)`` range drawn once per call; the result is clipped to
    ``[0, 1]``. Pixels where ``<key>_valid`` (e.g. ``aux_valid``) is False are left exactly as
    they were. Every frame gets its own noise with the same ``std``. Applied with
    probability ``p``.
    """

    def __init__(self, std: float | tuple[float, float] = (0.0, 0.05), p: float = 1.0) -> None:
        std = (float(std), float(std)) if isinstance(std, (int, float)) else std
        if not 0 <= std[0] <= std[1]:
            raise ValueError(f"std must be (low, high) with 0 <= low <= high, got {std}")
        self.std = (float(std[0]), float(std[1]))
        self.p = _check_p(p)

    def apply(self, sample: Sample, rng: np.random.Generator) -> Sample:
        coin = rng.random()
        sigma = self.std[0] + rng.random() * (self.std[1] - self.std[0])
        if coin >= self.p or sigma == 0.0:
            return sample
        out = dict(sample)
        for key, role, value in _spatial_values(sample):
            if role != "aux":
                continue
            valid = sample.get(_valid_key(key))
            if isinstance(value, (list, tuple)):
                valids = valid if valid is not None else [None] * len(value)
                out[key] = [
                    self._noisy(np.asarray(v), m, sigma, rng)
                    for v, m in zip(value, valids, strict=True)
                ]
            else:
                out[key] = self._noisy(np.asarray(value), valid, sigma, rng)
        return out

    @staticmethod
    def _noisy(
        aux: np.ndarray, valid: np.ndarray | None, sigma: float, rng: np.random.Generator
    ) -> np.ndarray:
        dtype = aux.dtype if aux.dtype.kind == "f" else np.float32
        noise = rng.standard_normal(aux.shape, dtype=np.float32)
        noise *= np.float32(sigma)
        noisy = aux.astype(np.float32) + noise
        np.clip(noisy, 0.0, 1.0, out=noisy)
        if valid is not None:
            noisy = np.where(np.asarray(valid, dtype=bool), noisy, aux)
        return noisy.astype(dtype, copy=False)


class MaskPepper(Transform):
    """XMSNet/SPNet ``randomPeper``: label noise on the ground-truth masks.

    ``int(fraction * H * W)`` random pixels (drawn with replacement) of every mask (each frame)
    are set to background or foreground with equal chance. Meant for binary masks (bool, or
    0/1 of another dtype); it is deliberately label noise, as in the reference training code.
    Applied with probability ``p``.
    """

    def __init__(self, fraction: float = 0.0015, p: float = 1.0) -> None:
        if not 0 <= fraction <= 1:
            raise ValueError(f"fraction must be in [0, 1], got {fraction}")
        self.fraction = float(fraction)
        self.p = _check_p(p)

    def apply(self, sample: Sample, rng: np.random.Generator) -> Sample:
        if rng.random() >= self.p:
            return sample

        def pepper(mask: np.ndarray, key: str, role: str) -> np.ndarray:
            h, w = mask.shape[-2:]
            n = int(self.fraction * h * w)
            if n == 0:
                return mask
            out = mask.copy()
            frames = out.reshape(-1, h * w)
            for flat in frames:
                idx = rng.integers(0, h * w, size=n)
                flat[idx] = rng.integers(0, 2, size=n).astype(out.dtype)
            return out

        return _map_values(sample, ("mask",), pepper)
