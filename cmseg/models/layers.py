"""Operations that more than one part of cmseg uses (a method's loss and the engine's
backbone pretraining resize logits with :func:`resize_bilinear`). A block that only one method
uses lives in that method's folder (``models/xmsnet/blocks.py``, ``models/cmpc/ops.py``).

Everything here works on ``B x C x H x W`` tensors in either memory format (contiguous or
``torch.channels_last``); nothing calls ``.view`` on a permuted tensor.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import torch

__all__ = ["bilinear_matrix", "resize_bilinear"]


@functools.lru_cache(maxsize=64)
def _bilinear_matrix(
    size_in: int, size_out: int, device: torch.device, dtype: torch.dtype
) -> torch.Tensor:
    dst = torch.arange(size_out, dtype=torch.float64)
    # PyTorch's half-pixel mapping for align_corners=False; sources left of the first
    # centre are clamped to it (no extrapolation)
    src = ((dst + 0.5) * (size_in / size_out) - 0.5).clamp(min=0)
    lo = src.floor().long().clamp(max=size_in - 1)
    hi = (lo + 1).clamp(max=size_in - 1)
    frac = src - lo
    rows = torch.arange(size_out)
    matrix = torch.zeros(size_out, size_in, dtype=torch.float64)
    matrix.index_put_((rows, lo), 1 - frac, accumulate=True)
    matrix.index_put_((rows, hi), frac, accumulate=True)
    return matrix.to(device=device, dtype=dtype)


def bilinear_matrix(
    size_in: int,
    size_out: int,
    *,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """The ``size_out x size_in`` matrix of 1-D bilinear resizing with ``align_corners=False``
    (no antialiasing): row i holds the two weights of output sample i; rows sum to 1.
    Cached per (sizes, device, dtype): treat it as read-only."""
    return _bilinear_matrix(int(size_in), int(size_out), torch.device(device or "cpu"), dtype)


def resize_bilinear(x: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """``F.interpolate(x, size, mode="bilinear", align_corners=False)`` as two matrix products.

    Bilinear resizing is separable, ``Y = R_h X R_w^T``; written so, its backward is two more
    matrix products, where PyTorch's CPU ``upsample_bilinear2d_backward`` scatters pixel by
    pixel: resizing CMPC's ``32 x 1 x 16 x 16`` logits to 128 x 128 for the loss is about 3x
    faster forward and backward. The values agree with ``F.interpolate`` to float rounding
    (tested), for up- and downsizing.

    Args:
        x: ``... x h x w`` (any leading dims, e.g. ``B x C x h x w``), floating point.
        size: ``(H, W)``.

    Returns:
        ``... x H x W``.
    """
    height, width = int(size[0]), int(size[1])
    if tuple(x.shape[-2:]) == (height, width):
        return x
    rows = bilinear_matrix(x.shape[-2], height, device=x.device, dtype=x.dtype)
    cols = bilinear_matrix(x.shape[-1], width, device=x.device, dtype=x.dtype)
    return rows @ x @ cols.T
