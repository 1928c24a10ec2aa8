"""Safe readers and writers for every file cmseg touches.

Conventions (DESIGN §3):

* images come back as RGB ``uint8`` arrays of shape ``(H, W, 3)``, EXIF orientation applied;
* depth / thermal maps come back as ``float32`` ``(H, W)`` in ``[0, 1]`` plus a boolean
  validity mask (NaN, +/-inf and, on request, zeros are invalid and excluded from the
  normalisation), normalised one of the :data:`AUX_NORMALISATIONS` ways (``minmax`` per image,
  or ``div255``, the official XMSNet reading);
* masks come back as ``bool`` ``(H, W)``; indexed (palette) masks as integer ``(H, W)``;
* writers are atomic: the data goes to a temporary file in the target folder, which is then
  renamed over the target, so an interrupted run never leaves a half-written file behind.

Every failure raises :class:`cmseg.errors.InputError` naming the file and the problem in one
line; nothing here lets a numpy or PIL traceback escape.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import warnings
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import IO, Any

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from cmseg.aux_normalisation import (
    AUX_NORMALISATIONS,
    AuxNormalisation,
    check_aux_normalisation,
    normalise_aux,
    pil_luma,
)
from cmseg.errors import InputError
from cmseg.fs import (
    check_output_dir,
    check_output_file,
    filesystem_error,
    filesystem_reason,
    temp_file,
)

__all__ = [
    "IMAGE_EXTENSIONS",
    "AUX_EXTENSIONS",
    "AUX_NORMALISATIONS",
    "AuxNormalisation",
    "MAX_PIXELS",
    "check_file",
    "read_image",
    "read_aux",
    "normalise_aux",
    "check_aux_normalisation",
    "pil_luma",
    "read_mask",
    "SOD_GT_THRESHOLD",
    "read_index_mask",
    "read_grey",
    "write_png",
    "write_json",
    "read_json",
    "read_text",
    "remove_entries",
    "write_text",
    "atomic_open",
    "check_output_dir",
    "check_output_file",
]

#: Extensions accepted for images, masks and saliency maps (lower case).
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
#: Extensions accepted for depth / thermal maps (lower case).
AUX_EXTENSIONS = IMAGE_EXTENSIONS + (".npy", ".npz")
#: Largest image (in pixels) any reader decodes: protects against decompression bombs.
#: 4096 x 4096 x 8 = 134M pixels covers every benchmark of the field by a wide margin.
MAX_PIXELS = 1 << 27

# We do our own, stricter and clearer, pixel-count check before decoding.
Image.MAX_IMAGE_PIXELS = None


# --------------------------------------------------------------------------------------------
# Opening and decoding


def check_file(path: Path, extensions: tuple[str, ...]) -> None:
    """Fail with a one-line reason unless ``path`` is a non-empty file with a known extension.

    Raises:
        InputError: missing, a directory, another extension, or empty (0 bytes).
    """
    if not path.exists():
        raise InputError(path, "no such file")
    if path.is_dir():
        raise InputError(path, "is a directory, expected a file")
    if path.suffix.lower() not in extensions:
        raise InputError(
            path,
            f"unsupported extension {path.suffix or '(none)'!r}; expected one of {', '.join(extensions)}",
        )
    if path.stat().st_size == 0:
        raise InputError(path, "file is empty (0 bytes)")


def _check_pixels(path: Path, width: int, height: int, max_pixels: int) -> None:
    if width * height > max_pixels:
        raise InputError(
            path, f"image of {width}x{height} pixels exceeds the limit of {max_pixels} pixels"
        )


@contextlib.contextmanager
def _opened(path: Path, max_pixels: int) -> Iterator[Image.Image]:
    """Open an image lazily, check its size from the header, then decode it fully.

    PIL decodes lazily; forcing ``load()`` here means a truncated file fails inside this
    context, where we can still name the file, rather than later inside numpy.
    """
    try:
        with Image.open(path) as img:
            _check_pixels(path, img.width, img.height, max_pixels)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # e.g. PIL's palette-transparency notices
                img.load()
            yield img
    except InputError:
        raise
    except UnidentifiedImageError:
        raise InputError(
            path,
            f"not a readable image (content does not match any image format; extension {path.suffix!r})",
        ) from None
    except (OSError, SyntaxError, ValueError) as err:  # truncated / corrupt data
        refused = filesystem_reason(err)  # the filesystem's refusal, e.g. permission denied
        reason = refused or f"corrupt or truncated image ({_one_line(err)})"
        raise InputError(path, reason) from None


def _one_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0] if text else type(err).__name__


def _high_bit_depth_to_uint8(arr: np.ndarray) -> np.ndarray:
    """Scale a 16/32-bit integer or float grey array to uint8 by its type's natural range."""
    if arr.dtype == np.uint8:
        return arr
    if np.issubdtype(arr.dtype, np.floating):
        finite = np.nan_to_num(arr.astype(np.float64), nan=0.0, posinf=1.0, neginf=0.0)
        # Float images are taken as [0, 1] when they fit, otherwise as [0, 255].
        scale = 255.0 if finite.max(initial=0.0) <= 1.0 else 1.0
        return np.clip(np.rint(finite * scale), 0, 255).astype(np.uint8)
    # PIL exposes 16-bit PNGs as mode I;16 or I (int32 holding 0..65535).
    top = 65535.0 if arr.max(initial=0) > 255 or arr.dtype == np.uint16 else 255.0
    return np.clip(np.rint(arr.astype(np.float64) * (255.0 / top)), 0, 255).astype(np.uint8)


# --------------------------------------------------------------------------------------------
# Readers


def read_image(path: str | os.PathLike[str], *, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Read any JPEG/PNG/BMP/TIFF/WebP image as RGB.

    Grey, RGBA (alpha dropped), palette, CMYK and 16-bit inputs are converted; the EXIF
    orientation tag is applied so the array matches what an image viewer shows.

    Returns:
        ``uint8`` array of shape ``(H, W, 3)``, values 0..255.
    """
    path = Path(path)
    check_file(path, IMAGE_EXTENSIONS)
    with _opened(path, max_pixels) as img:
        img = ImageOps.exif_transpose(img)
        if img.mode in ("I", "I;16", "I;16B", "I;16L", "F"):
            grey = _high_bit_depth_to_uint8(np.asarray(img))
            return np.repeat(grey[:, :, None], 3, axis=2)
        if img.mode == "P" and "transparency" in img.info:
            img = img.convert("RGBA")
        return np.asarray(img.convert("RGB"), dtype=np.uint8).copy()


def read_grey(path: str | os.PathLike[str], *, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Read an image as one grey channel (e.g. a saliency map 0..255 or a soft GT).

    Colour inputs are converted with ITU-R 601 luma (PIL ``convert('L')``, what SOD toolkits
    do); 16-bit inputs are scaled to 8 bits.

    Returns:
        ``uint8`` array of shape ``(H, W)``, values 0..255.
    """
    path = Path(path)
    check_file(path, IMAGE_EXTENSIONS)
    with _opened(path, max_pixels) as img:
        if img.mode in ("I", "I;16", "I;16B", "I;16L", "F"):
            return _high_bit_depth_to_uint8(np.asarray(img))
        if img.mode == "P":
            img = img.convert("RGBA" if "transparency" in img.info else "RGB")
        return np.asarray(img.convert("L"), dtype=np.uint8).copy()


#: A salient / camouflaged object GT pixel is foreground when its grey value is above this:
#: PySODMetrics' ``gt > 128``. The one threshold of SOD training, ``data check sod`` and
#: ``evaluate sod`` (docs/evaluation.md, "The sod ground truth").
SOD_GT_THRESHOLD = 128


def read_mask(
    path: str | os.PathLike[str],
    *,
    strict: bool = False,
    threshold: int = 127,
    max_pixels: int = MAX_PIXELS,
) -> np.ndarray:
    """Read a binary mask.

    * 0/255 or grey masks: foreground is ``value > threshold`` (127; SOD GT:
      :data:`SOD_GT_THRESHOLD`);
    * masks stored as 0/1 (common in some releases) are recognised: when the largest value is
      1, foreground is ``value == 1`` (thresholding them would silently empty them);
    * palette / indexed PNGs: foreground is every non-zero index;
    * colour masks are converted to grey first.

    Args:
        strict: refuse masks with values other than {0, 255} (or {0, 1}) instead of
            thresholding them; use it where a dataset promises binary masks.

    Returns:
        ``bool`` array of shape ``(H, W)``.
    """
    path = Path(path)
    check_file(path, IMAGE_EXTENSIONS)
    with _opened(path, max_pixels) as img:
        if img.mode == "P":
            return np.asarray(img) > 0
        if img.mode in ("I", "I;16", "I;16B", "I;16L", "F"):
            values = _high_bit_depth_to_uint8(np.asarray(img))
        else:
            values = np.asarray(img.convert("L"), dtype=np.uint8)
    top = int(values.max(initial=0))
    if top <= 1:
        return values == 1
    if strict:
        extra = np.setdiff1d(np.unique(values), np.array([0, 255], dtype=np.uint8))
        if extra.size:
            shown = ", ".join(str(int(v)) for v in extra[:5]) + (", ..." if extra.size > 5 else "")
            raise InputError(
                path, f"mask is not binary: values other than 0 and 255 found ({shown})"
            )
    return values > threshold


def read_index_mask(path: str | os.PathLike[str], *, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Read an indexed mask (video object annotations: 0 background, k = object k).

    Palette PNGs (DAVIS, YouTube-VOS) give their palette indices; grey PNGs give their grey
    values (a 0/255 binary PNG therefore gives objects 0 and 255: the DAVIS "void" value).

    Returns:
        ``uint8`` array of shape ``(H, W)`` (``uint16`` for 16-bit inputs).
    """
    path = Path(path)
    check_file(path, IMAGE_EXTENSIONS)
    with _opened(path, max_pixels) as img:
        if img.mode in ("P", "L"):
            return np.asarray(img, dtype=np.uint8).copy()
        if img.mode in ("I", "I;16", "I;16B", "I;16L"):
            arr = np.asarray(img)
            if arr.min(initial=0) < 0 or arr.max(initial=0) > 65535:
                raise InputError(path, "indexed mask has values outside 0..65535")
            return arr.astype(np.uint16)
        if img.mode in ("RGB", "RGBA"):
            rgb = np.asarray(img.convert("RGB"))
            if not (
                np.array_equal(rgb[..., 0], rgb[..., 1])
                and np.array_equal(rgb[..., 0], rgb[..., 2])
            ):
                raise InputError(path, "colour (RGB) mask: expected a palette or grey indexed PNG")
            return rgb[..., 0].copy()
        raise InputError(path, f"unsupported image mode {img.mode!r} for an indexed mask")


_HIGH_BIT_MODES = ("I", "I;16", "I;16B", "I;16L", "I;16N", "F")


def read_aux(
    path: str | os.PathLike[str],
    *,
    zero_is_invalid: bool = False,
    key: str | None = None,
    max_pixels: int = MAX_PIXELS,
    normalisation: AuxNormalisation = "minmax",
) -> tuple[np.ndarray, np.ndarray]:
    """Read a depth or thermal map and bring it to ``[0, 1]`` (:func:`normalise_aux`).

    Accepts PNG (8 or 16 bit), JPEG, BMP, TIFF (integer or float), WebP, ``.npy`` and ``.npz``.
    An ``.npz`` holding one array gives it; one holding several needs ``key``, the name of the
    array to read (``cmseg predict sod --aux-key``, ``data.options.aux_key``): it is never
    guessed, and the error lists the names. ``key`` is ignored by the other formats, which
    hold one map. With ``normalisation="minmax"`` colour maps are averaged over their
    channels; with ``"div255"`` every 8-bit image goes through PIL's ``convert('L')`` first,
    exactly as the official XMSNet loader reads it (colour: ITU-R 601 luma). Non-finite values
    (NaN, +/-inf) and, with ``zero_is_invalid``, zeros (the usual "no measurement" code of
    depth sensors) are marked invalid and set to 0 (and left out of the min-max range).

    Returns:
        ``(values, valid)``: ``float32`` ``(H, W)`` in ``[0, 1]`` and ``bool`` ``(H, W)``.
        A map whose valid values are all equal normalises to 0 everywhere under ``minmax``; a
        map with no valid pixel gives zeros and an all-False mask (callers decide whether that
        is fatal).

    Raises:
        InputError: an unreadable file, or a map ``div255`` cannot read (a float map outside
            [0, 1], integers beyond 16 bits).
        ValueError: an unknown ``normalisation``.
    """
    check_aux_normalisation(normalisation)
    path = Path(path)
    check_file(path, AUX_EXTENSIONS)
    suffix = path.suffix.lower()
    if suffix in (".npy", ".npz"):
        raw = _read_numpy_map(path, key)
    else:
        with _opened(path, max_pixels) as img:
            if img.mode in _HIGH_BIT_MODES or img.mode in ("L", "1"):
                pass  # one channel already: its values as stored
            elif normalisation == "div255":
                img = img.convert("L")  # the official loader's reading, bit for bit
            elif img.mode == "P":
                img = img.convert("L")
            elif img.mode in ("RGBA", "LA", "CMYK", "YCbCr"):
                img = img.convert("RGB")
            raw = np.asarray(img)
    _check_pixels(path, raw.shape[1], raw.shape[0], max_pixels)
    try:
        return normalise_aux(raw, zero_is_invalid=zero_is_invalid, mode=normalisation)
    except ValueError as err:
        raise InputError(path, str(err)) from None


def _read_numpy_map(path: Path, key: str | None) -> np.ndarray:
    try:
        # allow_pickle=False: a .npy/.npz is data, never code.
        loaded = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as err:
        refused = filesystem_reason(err)  # e.g. permission denied, not a corrupt file
        reason = refused or f"not a readable numpy file ({_one_line(err)})"
        raise InputError(path, reason) from None
    if isinstance(loaded, np.lib.npyio.NpzFile):
        with loaded:
            keys = sorted(loaded.keys())
            if key is not None and key not in keys:
                raise InputError(path, f"no array {key!r} in the .npz (it holds {_keys(keys)})")
            if not keys:
                raise InputError(path, ".npz holds no array")
            if key is None and len(keys) > 1:
                raise InputError(
                    path,
                    f".npz holds {len(keys)} arrays ({_keys(keys)}): choose one with "
                    "--aux-key KEY (read_aux(..., key=KEY), data.options.aux_key)",
                )
            key = key if key is not None else keys[0]
            try:
                arr = loaded[key]
            except ValueError as err:
                raise InputError(path, f"array {key!r} cannot be read ({_one_line(err)})") from None
    else:
        arr = loaded
    arr = np.squeeze(arr)
    if arr.ndim not in (2, 3) or arr.dtype.kind not in "biuf":
        raise InputError(path, f"expected a 2-D numeric map, got shape {arr.shape} of {arr.dtype}")
    return arr


def _keys(keys: Sequence[str], shown: int = 20) -> str:
    """The array names of an .npz for a message (all of them, up to ``shown``)."""
    more = f", ... ({len(keys)} in all)" if len(keys) > shown else ""
    return ", ".join(keys[:shown]) + more


# --------------------------------------------------------------------------------------------
# Atomic writers


@contextlib.contextmanager
def atomic_open(
    path: str | os.PathLike[str], mode: str = "w", *, fsync: bool = True, **kwargs: Any
) -> Iterator[IO[Any]]:
    """Open a temporary file beside ``path``; on success rename it over ``path``.

    The rename is atomic on POSIX and Windows (``os.replace``), so readers see either the old
    file or the complete new one. On an exception the temporary file is removed and ``path``
    is left untouched. The file gets the mode an ordinary write gives under the umask
    (:mod:`cmseg.fs`), and missing parent folders are created.

    Args:
        fsync: flush the data to disk before the rename (off for bulk data that is cheap to
            write again, such as the synthetic benchmark).

    Raises:
        InputError: ``path`` is a folder, or the filesystem refuses the write (permission
            denied, a file on the way, no space left...), naming ``path``.
    """
    path = Path(path)
    if path.is_dir():
        raise InputError(path, "is a directory, cannot write a file there")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = temp_file(path.parent, path.name)
    except OSError as err:
        raise (filesystem_error(err, path, doing="cannot write") or err) from None
    try:
        with os.fdopen(fd, mode, **kwargs) as handle:
            yield handle
            handle.flush()
            if fsync:
                os.fsync(handle.fileno())
        os.replace(tmp_name, path)
    except BaseException as err:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        converted = filesystem_error(err, path, doing="cannot write")
        if converted is not None:
            raise converted from None
        raise


def write_png(
    path: str | os.PathLike[str], array: np.ndarray, *, palette: np.ndarray | None = None
) -> None:
    """Write an array as PNG, atomically.

    Args:
        array: ``bool`` ``(H, W)`` (written 0/255), ``uint8`` ``(H, W)`` grey or index map,
            ``uint16`` ``(H, W)`` (16-bit grey), or ``uint8`` ``(H, W, 3)`` RGB.
        palette: optional ``(N, 3)`` uint8 colours; writes an indexed (palette) PNG, the format
            of video object annotations.
    """
    arr = np.asarray(array)
    if arr.dtype == np.bool_:
        arr = arr.astype(np.uint8) * 255
    if arr.ndim == 3 and arr.shape[2] == 3 and arr.dtype == np.uint8:
        img = Image.fromarray(arr)
    elif arr.ndim == 2 and arr.dtype == np.uint8:
        img = Image.fromarray(arr)
        if palette is not None:
            # putpalette turns the "L" image into "P" and keeps every value as its index.
            img.putpalette(np.asarray(palette, dtype=np.uint8).reshape(-1, 3).flatten().tolist())
    elif arr.ndim == 2 and arr.dtype == np.uint16:
        img = Image.fromarray(arr)
    else:
        raise ValueError(f"write_png: unsupported array of shape {arr.shape} and dtype {arr.dtype}")
    with atomic_open(path, "wb") as handle:
        img.save(handle, format="PNG")


def remove_entries(folder: str | os.PathLike[str], names: Iterable[str]) -> None:
    """Delete ``folder/<name>`` for each name (files, or folders with their content); names
    that do not exist are skipped. For commands that replace only what they wrote earlier."""
    for name in names:
        target = Path(folder) / name
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        elif target.exists() or target.is_symlink():
            target.unlink()


def read_text(path: str | os.PathLike[str], what: str = "text") -> str:
    """A UTF-8 text file's contents; every failure is one ``InputError`` naming the file.

    Args:
        path: the file.
        what: what the file should be, for the message when ``path`` is a folder.
    """
    try:
        return Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(path, "file not found (no such file)") from None
    except IsADirectoryError:
        raise InputError(path, f"is a directory, expected a {what} file") from None
    except OSError as err:
        raise (
            filesystem_error(err, path) or InputError(path, f"cannot read: {err.strerror}")
        ) from None
    except UnicodeDecodeError:
        raise InputError(path, "not UTF-8 text") from None


def read_json(path: str | os.PathLike[str]) -> Any:
    """Parse a UTF-8 JSON file; every failure is one ``InputError`` naming the file."""
    text = read_text(path, "JSON")
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise InputError(
            path, f"invalid JSON: {err.msg} (line {err.lineno}, column {err.colno})"
        ) from None
    except RecursionError:
        raise InputError(path, "JSON is nested too deeply") from None


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"object of type {type(obj).__name__} is not JSON serialisable")


def _replace_non_finite(obj: Any) -> Any:
    """JSON has no NaN/inf: write them as null rather than emitting invalid JSON."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _replace_non_finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_replace_non_finite(v) for v in obj]
    return obj


def write_json(path: str | os.PathLike[str], obj: Any, *, indent: int = 2) -> None:
    """Write ``obj`` as UTF-8 JSON, atomically. numpy scalars/arrays are converted; NaN and
    infinities become ``null`` (strict JSON)."""
    text = json.dumps(
        _replace_non_finite(json.loads(json.dumps(obj, default=_json_default))),
        indent=indent,
        allow_nan=False,
        ensure_ascii=False,
    )
    write_text(path, text + "\n")


def write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write a UTF-8 text file atomically (CSV, Markdown, YAML...)."""
    with atomic_open(path, "w", encoding="utf-8", newline="") as handle:
        handle.write(text)
