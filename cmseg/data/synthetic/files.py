"""Writing the synthetic datasets' files: JPEG/PNG encoding and atomic writes.

:func:`write_bytes` writes a file atomically (temporary file in the same folder, then
``os.replace``); :func:`encode_jpeg` / :func:`encode_png` use OpenCV's encoders (several times
faster than PIL at these sizes; PIL only for palette PNGs). Per-file ``fsync`` is skipped: the
rename already guarantees that a reader never sees a half-written file, and fsync would triple
the cost of writing thousands of small files.
"""

from __future__ import annotations

import os

import cv2
import numpy as np

from cmseg.io import atomic_open

__all__ = [
    "voc_palette",
    "encode_jpeg",
    "encode_png",
    "write_bytes",
    "write_jpeg",
    "write_png_fast",
]


def voc_palette(n: int = 256) -> np.ndarray:
    """The PASCAL VOC colour map that DAVIS and YouTube-VOS annotations carry.

    Index ``k`` gets its colour by spreading the bits of ``k`` over the high bits of R, G and
    B (bit 0 -> R, bit 1 -> G, bit 2 -> B, next three bits one place lower, and so on), so
    index 1 is dark red (128, 0, 0), 2 dark green, 3 olive.

    Returns:
        ``uint8`` ``(n, 3)``.
    """
    out = np.zeros((n, 3), dtype=np.uint8)
    for k in range(n):
        value, r, g, b = k, 0, 0, 0
        for shift in range(7, -1, -1):
            r |= (value & 1) << shift
            g |= ((value >> 1) & 1) << shift
            b |= ((value >> 2) & 1) << shift
            value >>= 3
            if value == 0:
                break
        out[k] = (r, g, b)
    return out


def encode_jpeg(rgb: np.ndarray, quality: int = 92) -> bytes:
    """JPEG bytes of an RGB ``uint8`` image (OpenCV, 4:2:0, baseline)."""
    ok, buf = cv2.imencode(
        ".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality]
    )
    if not ok:  # pragma: no cover - OpenCV fails only on invalid arrays
        raise RuntimeError("JPEG encoding failed")
    return buf.tobytes()


def encode_png(array: np.ndarray, palette: np.ndarray | None = None) -> bytes:
    """PNG bytes of a grey ``uint8``/``uint16`` ``(H, W)`` array (``bool`` is written 0/255).

    With ``palette`` (``(N, 3)`` uint8) an indexed PNG is written through PIL, the only encoder
    here that writes a palette; grey PNGs go through OpenCV (faster).
    """
    arr = np.asarray(array)
    if arr.dtype == np.bool_:
        arr = arr.astype(np.uint8) * 255
    if palette is not None:
        import io

        from PIL import Image

        img = Image.fromarray(arr.astype(np.uint8))
        img.putpalette(np.asarray(palette, dtype=np.uint8).reshape(-1).tolist())
        buf = io.BytesIO()
        img.save(buf, format="PNG")
        return buf.getvalue()
    if arr.ndim != 2 or arr.dtype not in (np.uint8, np.uint16):
        raise ValueError(
            f"encode_png: expected a 2-D uint8/uint16 array, got {arr.shape} {arr.dtype}"
        )
    ok, buf = cv2.imencode(".png", arr, [cv2.IMWRITE_PNG_COMPRESSION, 1])
    if not ok:  # pragma: no cover
        raise RuntimeError("PNG encoding failed")
    return buf.tobytes()


def write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` atomically (:func:`cmseg.io.atomic_open` without fsync: temporary file
    beside ``path``, then ``os.replace``; the umask's ordinary mode)."""
    with atomic_open(path, "wb", fsync=False) as handle:
        handle.write(data)


def write_jpeg(path: str | os.PathLike[str], rgb: np.ndarray, quality: int = 92) -> None:
    """Write an RGB ``uint8`` ``(H, W, 3)`` image as JPEG (:func:`encode_jpeg`), atomically."""
    write_bytes(path, encode_jpeg(rgb, quality))


def write_png_fast(
    path: str | os.PathLike[str], array: np.ndarray, palette: np.ndarray | None = None
) -> None:
    """Write a grey ``(H, W)`` array (or, with ``palette``, an indexed one) as PNG
    (:func:`encode_png`), atomically."""
    write_bytes(path, encode_png(array, palette))
