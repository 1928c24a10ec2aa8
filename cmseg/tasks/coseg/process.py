"""Pre- and postprocessing of the ``coseg`` task, shared by training, validation and the
predictor so that they can never drift.

* :func:`preprocess_group`: ``uint8 (H_i, W_i, 3)`` images -> the network input of one group,
  ``float32 (N, 3, S, S)``: each image resized to ``S x S`` with PIL's bilinear filter (the
  aspect ratio is not kept, as SSNM's ``transforms.Resize((224, 224))``), then ImageNet
  normalisation. SSNM normalises a grey image with the grey mean and std (0.449 / 0.226);
  here a grey image is read as three equal channels and normalised per channel;
* :func:`resize_mask`: a ground-truth mask resized the same way and kept above 0.5 (SSNM's
  training targets and its ``val.py`` ground truth);
* :func:`group_probabilities`: the network's foreground probability ``(B, N, S, S)``;
* :func:`restore_map`: one map back at an image's own size (bilinear, ``align_corners=False``),
  what SSNM's ``coseg_test.py`` writes;
* :func:`scoring_pair`: a predicted map and its ground truth as a validation scores them,
  with the conventions of ``cmseg evaluate coseg`` (:mod:`cmseg.tasks.coseg.evaluate`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from cmseg.data.transforms import IMAGENET_MEAN, IMAGENET_STD
from cmseg.engine.model_building import check_input_side
from cmseg.tasks.coseg.evaluate import SSNM_SIZE, pil_bilinear, ssnm_gt

__all__ = [
    "check_image_size",
    "as_rgb",
    "preprocess_group",
    "resize_mask",
    "group_probabilities",
    "output_probabilities",
    "same_size_runs",
    "resize_probabilities",
    "restore_map",
    "scoring_pair",
]

_MEAN = torch.tensor(IMAGENET_MEAN, dtype=torch.float32).view(3, 1, 1)
_STD = torch.tensor(IMAGENET_STD, dtype=torch.float32).view(3, 1, 1)


def check_image_size(size: Any) -> int:
    """``model.image_size`` as an int, >= 32 and a multiple of 32 (SSNM's pool5 stride)."""
    return check_input_side(size, 32)


def as_rgb(image: np.ndarray) -> np.ndarray:
    """``uint8 (H, W, 3)``: a grey ``(H, W)`` image repeated to three channels.

    Raises:
        ValueError: not a non-empty ``uint8`` grey or RGB image.
    """
    image = np.asarray(image)
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8 or 0 in image.shape:
        raise ValueError(f"expected a uint8 (H, W, 3) image, got {image.dtype} {image.shape}")
    return image


def preprocess_group(images: Sequence[np.ndarray], size: int) -> torch.Tensor:
    """The network input of one group: ``float32 (N, 3, size, size)``, ImageNet-normalised.

    Args:
        images: ``uint8 (H_i, W_i, 3)`` images of any sizes (grey ``(H, W)`` accepted).
        size: the model's input side.
    """
    square = np.stack([pil_bilinear(as_rgb(image), int(size)) for image in images])
    x = torch.from_numpy(square).permute(0, 3, 1, 2).float().div_(255.0).contiguous()
    return (x - _MEAN) / _STD


def resize_mask(mask: np.ndarray, size: int) -> np.ndarray:
    """``bool (size, size)``: a ``bool`` or grey ``uint8`` mask resized like its image (PIL
    bilinear) and kept above 0.5, as SSNM reads its targets."""
    mask = np.asarray(mask)
    grey = mask.astype(np.uint8) * np.uint8(255) if mask.dtype == np.bool_ else mask
    return ssnm_gt(grey, int(size))


def group_probabilities(model: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """The foreground probability ``float32 (B, N, S, S)`` of groups ``(B, N, 3, S, S)``."""
    return output_probabilities(model(images), tuple(images.shape[-2:]))


def output_probabilities(output: Any, hw: tuple[int, int]) -> torch.Tensor:
    """``SSNMOutput.mask`` as ``float32 (B, N, H, W)`` at the input size ``hw``."""
    return resize_probabilities(output.mask.float(), hw)


def same_size_runs(sizes: Sequence[int]) -> list[range]:
    """The runs of consecutive equal ``sizes`` (groups of one size share a forward pass)."""
    runs: list[range] = []
    for i, size in enumerate(sizes):
        if runs and sizes[runs[-1].start] == size:
            runs[-1] = range(runs[-1].start, i + 1)
        else:
            runs.append(range(i, i + 1))
    return runs


def resize_probabilities(prob: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor:
    """Maps ``(..., h, w)`` resized bilinearly (``align_corners=False``) to ``hw``, in [0, 1]."""
    if tuple(prob.shape[-2:]) == tuple(hw):
        return prob
    lead = prob.shape[:-2]
    flat = prob.float().reshape(-1, 1, *prob.shape[-2:])
    out = F.interpolate(flat, size=tuple(hw), mode="bilinear", align_corners=False)
    return out.clamp_(0.0, 1.0).reshape(*lead, *hw)


def restore_map(prob: torch.Tensor, hw: Sequence[int]) -> np.ndarray:
    """``float32 (H, W)`` in [0, 1]: one ``(S, S)`` map at its image's size ``hw``."""
    return resize_probabilities(prob.detach(), (int(hw[0]), int(hw[1]))).cpu().numpy()


def scoring_pair(prob: torch.Tensor, gt: np.ndarray, protocol: str) -> tuple[np.ndarray, Any]:
    """A predicted map and its ground truth as ``cmseg evaluate coseg`` would score them.

    Args:
        prob: ``(S, S)`` foreground probability at the network's input size.
        gt: the ground truth, ``bool (H, W)``, or for ``ssnm`` grey ``uint8 (H, W)`` as read
            from its file.
        protocol: ``ssnm``: both at 224 x 224 (the map bilinearly when ``S`` differs, the GT
            as :func:`~cmseg.tasks.coseg.evaluate.ssnm_gt`), as SSNM's ``val.py`` scores its
            network's 224-pixel output; ``native``: the map at the GT's size.

    Returns:
        ``(float32 map in [0, 1], bool GT)`` of one shape.
    """
    if protocol == "ssnm":
        return restore_map(prob, (SSNM_SIZE, SSNM_SIZE)), resize_mask(gt, SSNM_SIZE)
    if gt.dtype != np.bool_:
        raise ValueError("the native protocol scores a bool ground truth (cmseg.io.read_mask)")
    return restore_map(prob, gt.shape), gt
