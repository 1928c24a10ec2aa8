"""Pre- and postprocessing of the ``sod`` task, shared by validation and the predictor so that
the two can never drift.

* :func:`preprocess`: ``(rgb uint8 HxWx3, aux HxW, size)`` -> the network's input tensors
  (the same resize and normalisation as the last steps of the training pipeline,
  :func:`cmseg.data.transforms.sod_train_transforms`);
* :func:`postprocess`: the final logits -> a ``uint8`` map at the original size, as the official
  ``test.py`` writes it (reference xmsnet.md §2.4, §5.2): bilinear upsampling
  (``align_corners=False``) of the logits to the original size, sigmoid, per-image min-max
  ``(p - min) / (max - min + 1e-8)``, times 255, rounded.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from cmseg.data.transforms import Compose, Resize, ToTensor
from cmseg.engine.model_building import check_input_side
from cmseg.io import AuxNormalisation, normalise_aux

__all__ = [
    "MINMAX_EPS",
    "check_image_size",
    "as_rgb",
    "as_aux",
    "preprocess",
    "final_logits",
    "postprocess",
]

#: Added to the min-max denominator, as the official ``test.py`` does.
MINMAX_EPS = 1e-8


def check_image_size(size: Any) -> int:
    """``model.image_size`` as an int: >= 32 and divisible by 32 (XMSNet's coarsest stride)."""
    return check_input_side(size, 32)


def as_rgb(rgb: Any) -> np.ndarray:
    """An image as ``uint8`` ``(H, W, 3)``: grey ``(H, W)`` / ``(H, W, 1)`` is repeated, the
    alpha channel of RGBA dropped.

    Raises:
        ValueError: another dtype or shape.
    """
    arr = np.asarray(rgb)
    if arr.dtype != np.uint8:
        raise ValueError(f"rgb must be a uint8 image (0..255), got dtype {arr.dtype}")
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.ndim != 3 or arr.shape[2] not in (1, 3, 4) or min(arr.shape[:2]) < 1:
        raise ValueError(f"rgb must be (H, W, 3) (or grey / RGBA), got shape {arr.shape}")
    if arr.shape[2] == 1:
        arr = np.repeat(arr, 3, axis=2)
    elif arr.shape[2] == 4:
        arr = arr[:, :, :3]
    return arr


def as_aux(aux: Any, aux_normalisation: AuxNormalisation = "minmax") -> np.ndarray:
    """A depth/thermal map as ``float32`` ``(H, W)`` in [0, 1], exactly as
    :func:`cmseg.io.read_aux` leaves a file with the same ``aux_normalisation``: ``minmax``
    normalises per image over the finite values (colour maps averaged over the channels);
    ``div255`` divides 8-bit maps by 255 (colour maps through PIL's luma first), 16-bit maps
    by 65535, and takes float maps in [0, 1] as they are. NaN and +/-inf become 0. Any numeric
    dtype; ``(H, W, 1)``, RGB and RGBA maps are accepted. A map already produced by
    ``read_aux`` comes back unchanged.

    Raises:
        ValueError: not a 2-D numeric map, or one ``div255`` cannot read (floats outside
            [0, 1], integers beyond 16 bits).
    """
    arr = np.asarray(aux)
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    elif arr.ndim == 3 and arr.shape[2] in (3, 4):
        arr = arr[:, :, :3]  # colour: normalise_aux reads it the aux_normalisation way
    shape_ok = arr.ndim == 2 or (arr.ndim == 3 and arr.shape[2] == 3)
    if not shape_ok or min(arr.shape) < 1 or arr.dtype.kind not in "biuf":
        raise ValueError(f"aux must be a numeric (H, W) map, got shape {arr.shape} {arr.dtype}")
    if arr.dtype.kind == "b" and aux_normalisation == "minmax":
        arr = arr.astype(np.uint8)
    return normalise_aux(arr, mode=aux_normalisation)[0]


@functools.lru_cache(maxsize=8)
def _resize_to_tensor(size: int) -> Compose:
    # The last two steps of sod_train_transforms: Resize(size) then ToTensor (ImageNet mean/std).
    return Compose([Resize(size), ToTensor()])


def preprocess(
    rgb: Any, aux: Any | None, size: int, *, aux_normalisation: AuxNormalisation = "minmax"
) -> tuple[torch.Tensor, torch.Tensor]:
    """The network input for one image.

    The image and the aux map are each resized to ``size x size`` (bilinear, area-averaged
    when shrinking by more than 2x: the training pipeline's resampling); maps of different
    sizes are thereby aligned as if the aux map had first been resized to the image size.

    Args:
        rgb: ``uint8`` ``(H, W, 3)`` image (see :func:`as_rgb`).
        aux: depth/thermal ``(h, w)`` map of any numeric dtype (see :func:`as_aux`; NaN/inf
            allowed), or None for an all-zero map.
        size: the model's input side, a multiple of 32.
        aux_normalisation: ``minmax`` or ``div255``, the run's ``data.options`` value (the
            map is normalised before the resize, so ``div255`` feeds value / 255 resized).

    Returns:
        ``(image, aux)``: ``float32`` ``(3, size, size)`` ImageNet-normalised and ``float32``
        ``(1, size, size)`` in [0, 1]. Stack them for a batch.
    """
    pipeline = _resize_to_tensor(int(size))
    image = pipeline({"image": as_rgb(rgb)})["image"]
    if aux is None:
        aux_t = torch.zeros((1, int(size), int(size)), dtype=torch.float32)
    else:
        aux_t = pipeline({"aux": as_aux(aux, aux_normalisation)})["aux"]
    return image, aux_t


def final_logits(model: nn.Module, image: torch.Tensor, aux: torch.Tensor) -> torch.Tensor:
    """The prediction logits ``B x 1 x S x S`` (XMSNet's last side output, S6)."""
    outputs = model(image, aux)
    return outputs[-1] if isinstance(outputs, (list, tuple)) else outputs


def postprocess(logits: torch.Tensor, size: Sequence[int]) -> np.ndarray:
    """Logits of one image -> ``uint8`` ``(H, W)`` map 0..255 at the original size.

    As the official ``test.py``: bilinear upsampling of the logits (``align_corners=False``) to
    ``size``, sigmoid, per-image min-max ``(p - min) / (max - min + 1e-8)``, times 255 and
    rounded (cv2's float -> uint8 conversion). Every map therefore spans 0..255, even one
    with no object.

    Args:
        logits: ``(h, w)``, ``(1, h, w)`` or ``(1, 1, h, w)``, any float dtype and device.
        size: ``(H, W)`` of the output.
    """
    x = logits.detach().float()
    if x.ndim < 2 or x.numel() != x.shape[-1] * x.shape[-2]:
        raise ValueError(f"expected the logits of one image, got shape {tuple(logits.shape)}")
    x = x.reshape(1, 1, *x.shape[-2:])
    height, width = int(size[0]), int(size[1])
    if x.shape[-2:] != (height, width):
        x = F.interpolate(x, size=(height, width), mode="bilinear", align_corners=False)
    p = x.sigmoid()
    p = (p - p.min()) / (p.max() - p.min() + MINMAX_EPS)
    out = (p * 255).round_().clamp_(0, 255).to(torch.uint8)
    return out[0, 0].cpu().numpy()
