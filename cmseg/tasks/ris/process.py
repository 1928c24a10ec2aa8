"""Pre- and postprocessing of the ``ris`` task, shared by validation and the predictor so that
the two can never drift.

* :func:`preprocess`: ``uint8 (H, W, 3)`` image -> the network input: CMPC's
  ``resize_and_pad`` (longer side to ``model.image_size``, centred, zero padding) and ImageNet
  normalisation (timm backbones; the official code subtracts the Caffe BGR mean of its
  DeepLab weights instead);
* :func:`postprocess`: the final logits -> a ``bool (H, W)`` mask at the original size:
  bilinear upsampling to the padded square, the pad cropped away, bilinear resizing to
  ``(H, W)``, then ``logit >= 0`` (sigmoid >= 0.5, CMPC's threshold). The official code
  thresholds at 320 px first and resizes the 0/1 map without re-thresholding (so every
  fractional edge pixel counts as foreground, a slight dilation); resizing the logits
  first is the boundary the model actually predicts;
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from cmseg.data.transforms import Compose, ResizePad, ToTensor, pad_placement
from cmseg.engine.model_building import check_input_side

__all__ = [
    "check_image_size",
    "preprocess",
    "restore_logits",
    "postprocess",
    "upsample_logits",
    "final_logits",
]


@functools.lru_cache(maxsize=8)
def _image_pipeline(size: int) -> Compose:
    return Compose([ResizePad(size), ToTensor()])


def check_image_size(size: Any) -> int:
    """``model.image_size`` as an int, >= 32 and a multiple of 8 (CMPC's output stride)."""
    return check_input_side(size, 8)


def preprocess(image: np.ndarray, size: int) -> torch.Tensor:
    """The network input for one image: ``float32 (3, size, size)``, ImageNet-normalised.

    Args:
        image: ``uint8 (H, W, 3)`` RGB (a grey ``(H, W)`` image is repeated to 3 channels).
        size: the model's input side.
    """
    image = np.asarray(image)
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8 or 0 in image.shape:
        raise ValueError(f"expected a uint8 (H, W, 3) image, got {image.dtype} {image.shape}")
    return _image_pipeline(int(size))({"image": image})["image"]


def restore_logits(logits: torch.Tensor, hw: Sequence[int], size: int) -> torch.Tensor:
    """Logits on the padded square -> ``float32 (H, W)`` logits on the original image.

    Bilinear (``align_corners=False``) upsampling to ``size x size`` (the network input, as
    CMPC upsamples to 320 before thresholding), the padding cropped away, and bilinear
    resizing to ``(H, W)``.

    Args:
        logits: ``(h, w)``, ``(1, h, w)`` or ``(1, 1, h, w)`` square logits of one image.
        hw: ``(H, W)`` of the original image.
        size: the network's input side.
    """
    x = logits.detach().float()
    if x.ndim < 2 or x.numel() != x.shape[-1] * x.shape[-2] or x.shape[-1] != x.shape[-2]:
        raise ValueError(f"expected the square logits of one image, got {tuple(logits.shape)}")
    x = upsample_logits(x.reshape(1, 1, *x.shape[-2:]), int(size))
    height, width = int(hw[0]), int(hw[1])
    top, left, inner_h, inner_w = pad_placement((height, width), int(size))
    x = x[..., top : top + inner_h, left : left + inner_w]
    if (inner_h, inner_w) != (height, width):
        x = F.interpolate(x, size=(height, width), mode="bilinear", align_corners=False)
    return x[0, 0]


def postprocess(logits: torch.Tensor, hw: Sequence[int], size: int) -> np.ndarray:
    """Logits of one image -> ``bool (H, W)`` mask at the original size: :func:`restore_logits`
    then ``logit >= 0`` (sigmoid >= 0.5, CMPC's threshold; see the module docstring)."""
    return (restore_logits(logits, hw, size) >= 0).cpu().numpy()


def upsample_logits(logits: torch.Tensor, size: int) -> torch.Tensor:
    """``B x 1 x h x w`` -> ``B x 1 x size x size`` (bilinear, ``align_corners=False``)."""
    if logits.shape[-2:] == (size, size):
        return logits
    return F.interpolate(logits.float(), size=(size, size), mode="bilinear", align_corners=False)


def final_logits(model: nn.Module, images: torch.Tensor, sentences: Sequence[str]) -> torch.Tensor:
    """The prediction logits ``B x 1 x h x w`` of a CMPC-style model's output."""
    output = model(images, list(sentences))
    return output.final if hasattr(output, "final") else output
