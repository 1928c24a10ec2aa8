"""The last step of a training pipeline: numpy sample -> torch tensors, channels first.

The only code of :mod:`cmseg.data.transforms` that uses torch, imported when it runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import cv2
import numpy as np

from cmseg.data.transforms.base import Transform
from cmseg.data.transforms.roles import SPATIAL_ROLES, Sample, _is_stack, _map_values

#: ImageNet statistics of RGB in [0, 1], the default normalisation of :class:`ToTensor`.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class ToTensor(Transform):
    """Numpy sample -> torch tensors, channels first (the last step of a training pipeline).

    * ``rgb``: ``float32`` ``(3, H, W)`` (stacks ``(T, 3, H, W)``), scaled to [0, 1] and, with
      ``normalize``, standardised with ``mean``/``std`` (ImageNet by default);
    * ``aux``: ``float32`` ``(1, H, W)`` (``(T, 1, H, W)``), values unchanged (XMSNet feeds
      depth in [0, 1] without normalisation);
    * ``valid``: ``bool`` ``(1, H, W)``;
    * ``mask``: bool masks become ``float32`` 0/1 ``(1, H, W)`` (loss-ready); integer label
      masks become ``int64`` ``(H, W)`` (``(T, H, W)``);
    * lists become lists of tensors; other values pass through.

    torch is imported when the transform runs, not when this module is imported.
    """

    def __init__(
        self,
        normalize: bool = True,
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
    ) -> None:
        if len(mean) != len(std) or min(std) <= 0:
            raise ValueError(f"mean and std must have equal lengths and std > 0: {mean}, {std}")
        self.normalize = normalize
        self.mean = tuple(float(v) for v in mean)
        self.std = tuple(float(v) for v in std)

    def _affine(self, key: str, channels: int, dtype: np.dtype) -> tuple[list[float], list[float]]:
        """Per-channel ``(scale, shift)`` with ``out = scale * x - shift``."""
        if dtype == np.uint8:
            unit = 1.0 / 255.0
        elif dtype.kind == "f":
            unit = 1.0  # float RGB is taken to be in [0, 1] already
        else:
            raise ValueError(f"{key}: RGB must be uint8 or float in [0, 1], got {dtype}")
        if not self.normalize:
            return [unit] * channels, [0.0] * channels
        if channels != len(self.mean):
            raise ValueError(f"{key}: {channels} channels but {len(self.mean)} mean/std values")
        return (
            [unit / sd for sd in self.std],
            [mu / sd for mu, sd in zip(self.mean, self.std, strict=True)],
        )

    def apply(self, sample: Sample, rng: np.random.Generator) -> Sample:
        import torch

        def convert(arr: np.ndarray, key: str, role: str) -> Any:
            stack = _is_stack(arr, role)
            if role == "rgb":
                frames = arr if stack else arr[None]
                if frames.ndim == 3:  # grey (H, W) images
                    frames = frames[..., None]
                planes = np.empty(
                    (frames.shape[0], frames.shape[3], *frames.shape[1:3]), dtype=np.float32
                )
                scale, shift = self._affine(key, frames.shape[3], frames.dtype)
                for frame, out in zip(frames, planes, strict=True):
                    for c, plane in enumerate(cv2.split(np.ascontiguousarray(frame))):
                        # scale * x - shift, straight into the float32 CHW plane
                        cv2.addWeighted(
                            plane, scale[c], plane, 0.0, -shift[c], dst=out[c], dtype=cv2.CV_32F
                        )
                return torch.from_numpy(planes if stack else planes[0])
            arr = np.ascontiguousarray(arr)
            if not arr.flags.writeable:  # e.g. straight from PIL; torch wants writable memory
                arr = arr.copy()
            t = torch.from_numpy(arr)
            if role == "mask" and arr.dtype != np.bool_:
                return t.to(torch.int64)
            if role == "mask" or role == "aux":
                t = t.to(torch.float32)
            return t.unsqueeze(1 if stack else 0)

        return _map_values(sample, SPATIAL_ROLES, convert)
