"""How a depth or thermal map becomes the network's ``[0, 1]`` input: ``minmax`` (cmseg's
default) or ``div255`` (the official XMSNet / SPNet loader), on arrays.

:func:`cmseg.io.read_aux` reads a file and calls :func:`normalise_aux`; everything here is
re-exported by :mod:`cmseg.io`. numpy only: no file access, no PIL.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

__all__ = [
    "AUX_NORMALISATIONS",
    "AuxNormalisation",
    "check_aux_normalisation",
    "normalise_aux",
    "pil_luma",
]

#: How :func:`cmseg.io.read_aux` / :func:`normalise_aux` bring a depth or thermal map to
#: ``[0, 1]``: ``minmax`` stretches each map over its own valid range (colour maps: the channel
#: mean); ``div255`` is the official XMSNet/SPNet reading, PIL's ``convert('L')`` (colour maps:
#: ITU-R 601 luma, :func:`pil_luma`) then value / 255 (16-bit maps / 65535, float maps as they
#: are).
AUX_NORMALISATIONS: tuple[str, ...] = ("minmax", "div255")
AuxNormalisation = Literal["minmax", "div255"]


def check_aux_normalisation(mode: str) -> AuxNormalisation:
    """``mode`` if it is one of :data:`AUX_NORMALISATIONS`.

    Raises:
        ValueError: any other value.
    """
    if mode not in AUX_NORMALISATIONS:
        raise ValueError(
            f"aux normalisation must be one of {', '.join(AUX_NORMALISATIONS)}, got {mode!r}"
        )
    return mode  # type: ignore[return-value]


def pil_luma(rgb: np.ndarray) -> np.ndarray:
    """PIL's ``Image.convert('L')`` of an 8-bit colour array, bit for bit.

    ITU-R 601-2 luma, ``L = R * 299/1000 + G * 587/1000 + B * 114/1000``, in PIL's fixed point:
    ``(19595 R + 38470 G + 7471 B + 2**15) >> 16`` (Pillow's ``L24``; it differs from
    ``round(0.299 R + ...)`` on about 0.1 % of colours). An alpha channel is ignored, as PIL's
    RGBA -> L conversion does.

    Args:
        rgb: ``uint8`` ``(H, W, 3)`` or ``(H, W, 4)``.

    Returns:
        ``uint8`` ``(H, W)``.
    """
    arr = np.asarray(rgb)
    if arr.dtype != np.uint8 or arr.ndim != 3 or arr.shape[2] not in (3, 4):
        raise ValueError(f"expected a uint8 (H, W, 3|4) image, got {arr.shape} {arr.dtype}")
    wide = arr[..., :3].astype(np.uint32)
    luma = wide[..., 0] * 19595 + wide[..., 1] * 38470 + wide[..., 2] * 7471 + (1 << 15)
    return (luma >> 16).astype(np.uint8)


def _grey(raw: np.ndarray, mode: AuxNormalisation) -> np.ndarray:
    """A colour ``(H, W, C)`` map as one channel: the channel mean (``minmax``) or PIL's luma
    of 8-bit colour (``div255``)."""
    if raw.shape[2] == 1:
        return raw[:, :, 0]
    if mode == "minmax":
        return raw.astype(np.float64).mean(axis=2)
    if raw.dtype == np.uint8 and raw.shape[2] in (3, 4):
        return pil_luma(raw)
    raise ValueError(
        f"a {raw.shape[2]}-channel {raw.dtype} map has no div255 reading (PIL's luma takes "
        "8-bit RGB); use aux normalisation minmax, or save it as one grey channel"
    )


def _divide(raw: np.ndarray) -> np.ndarray:
    """``div255``: 8-bit / 255, 16-bit / 65535, floats in [0, 1] as they are (NaN/inf kept)."""
    if raw.dtype.kind == "b":
        return raw.astype(np.float32)
    if raw.dtype.kind in "iu":
        low, high = int(raw.min(initial=0)), int(raw.max(initial=0))
        if raw.dtype == np.uint16 or (raw.dtype != np.uint8 and high > 255):
            top = 65535
        else:
            top = 255
        if low < 0 or high > top:
            raise ValueError(
                f"integer map with values {low}..{high}: div255 reads 8-bit (0..255) and 16-bit "
                "(0..65535) maps; use aux normalisation minmax for other ranges"
            )
        # ToTensor's float32 division, the official value to the last bit.
        return raw.astype(np.float32) / np.float32(top)
    out = raw.astype(np.float32)
    finite = out[np.isfinite(out)]
    if finite.size and (finite.min() < 0 or finite.max() > 1):
        raise ValueError(
            f"float map with values {finite.min():.4g}..{finite.max():.4g} outside [0, 1]: "
            "div255 takes float maps as they are; use aux normalisation minmax for other "
            "ranges (metres, 0..255)"
        )
    return out


def normalise_aux(
    raw: np.ndarray, *, zero_is_invalid: bool = False, mode: AuxNormalisation = "minmax"
) -> tuple[np.ndarray, np.ndarray]:
    """Bring a raw depth/thermal map to ``[0, 1]``.

    * ``minmax`` (cmseg's default): ``(v - min) / (max - min)`` over the valid pixels of this
      map; colour maps are averaged over their channels first;
    * ``div255`` (the official XMSNet/SPNet input): 8-bit maps / 255 and 8-bit colour maps
      through PIL's luma first (:func:`pil_luma`), as ``Image.convert('L')`` + ``ToTensor``;
      16-bit maps (``uint16``) / 65535, other integer arrays by their values (0..255 as
      8-bit, up to 65535 as 16-bit); float maps as they are, which must lie in [0, 1]. The
      official loader would clip 16-bit values at 255 and truncate floats (PIL's conversion
      to 'L'); cmseg does not reproduce that.

    Non-finite values, and zeros with ``zero_is_invalid``, are invalid: set to 0 and left out
    of the min-max range.

    Args:
        raw: ``(H, W)`` or colour ``(H, W, C)`` array of any numeric dtype.
        zero_is_invalid: treat exact zeros as missing measurements.
        mode: one of :data:`AUX_NORMALISATIONS`.

    Returns:
        ``float32`` ``(H, W)`` in ``[0, 1]`` (invalid pixels 0) and the ``bool`` validity mask.

    Raises:
        ValueError: an unknown ``mode``, or a map ``div255`` cannot read (float values outside
            [0, 1], integers beyond 16 bits, colour that is not 8-bit).
    """
    check_aux_normalisation(mode)
    if raw.ndim == 3:
        raw = _grey(raw, mode)
    if mode == "div255":
        out = _divide(raw)
        valid = np.isfinite(out)
        if zero_is_invalid:
            valid &= out != 0
        out[~valid] = 0.0
        return out, valid
    return _minmax(raw, zero_is_invalid)


def _minmax(raw: np.ndarray, zero_is_invalid: bool) -> tuple[np.ndarray, np.ndarray]:
    """Min-max normalise a raw ``(H, W)`` map over its valid pixels."""
    if raw.dtype.kind in "biu" and not zero_is_invalid:
        # Integer maps (8/16-bit PNGs, the common case) have no NaN/inf: every pixel is valid,
        # so min-max in float32 without boolean indexing (about 5x faster at 384x384).
        valid = np.ones(raw.shape, dtype=bool)
        low, high = float(raw.min()), float(raw.max())
        if high <= low:
            return np.zeros(raw.shape, dtype=np.float32), valid
        out = raw.astype(np.float32)
        out -= np.float32(low)
        out *= np.float32(1.0 / (high - low))
        np.clip(out, 0.0, 1.0, out=out)  # float32 rounding could step a hair past 1
        return out, valid
    values = raw.astype(np.float64, copy=False)
    valid = np.isfinite(values)
    if zero_is_invalid:
        valid &= values != 0
    out = np.zeros(values.shape, dtype=np.float32)
    if not valid.any():
        return out, valid
    picked = values[valid]
    low, high = float(picked.min()), float(picked.max())
    if high > low:
        out[valid] = ((picked - low) / (high - low)).astype(np.float32)
    return out, valid
