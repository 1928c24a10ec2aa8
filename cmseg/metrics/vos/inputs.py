"""Validation of the mask stacks: binary masks (J and F) and index masks (DAVIS)."""

from __future__ import annotations

import numpy as np


def _as_bool_stack(mask: np.ndarray, name: str) -> np.ndarray:
    """Any bool/integer array ``(..., H, W)`` -> bool, nonzero = foreground (no copy for bool)."""
    mask = np.asarray(mask)
    if mask.ndim < 2:
        raise ValueError(f"{name} must have shape (..., H, W), got {mask.shape}")
    if mask.dtype == np.bool_:
        return mask
    if not np.issubdtype(mask.dtype, np.integer):
        # Probabilities or logits must be thresholded by the caller: the toolkit casts with
        # astype(bool), which would silently turn 0.01 into foreground.
        raise TypeError(f"{name} must be a bool or integer mask, got dtype {mask.dtype}")
    return mask != 0


def _check_pair(pred: np.ndarray, gt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both masks as bool stacks (see :func:`_as_bool_stack`); ValueError if shapes differ."""
    p = _as_bool_stack(pred, "pred")
    g = _as_bool_stack(gt, "gt")
    if p.shape != g.shape:
        raise ValueError(f"pred and gt shapes differ: {p.shape} vs {g.shape}")
    return p, g


def _index_masks(mask: np.ndarray, name: str) -> np.ndarray:
    """A ``(T, H, W)`` index mask as an integer array (bool viewed as uint8, no copy).

    Raises:
        ValueError: not 3-D, or negative ids (checked only for dtypes that can hold them).
        TypeError: not bool or integer.
    """
    mask = np.asarray(mask)
    if mask.ndim != 3:
        raise ValueError(f"{name} must have shape (T, H, W), got {mask.shape}")
    if mask.dtype == np.bool_:
        return mask.view(np.uint8)
    if not np.issubdtype(mask.dtype, np.integer):
        raise TypeError(f"{name} must be an integer index mask, got dtype {mask.dtype}")
    if mask.dtype in (np.uint8, np.uint16):
        return mask
    if mask.size and mask.min() < 0:
        raise ValueError(f"{name} has negative object ids")
    return mask
