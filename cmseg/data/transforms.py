"""Paired augmentations that keep image, auxiliary map and masks aligned.

A transform is a callable on a *sample dict* (numpy in, numpy out) that returns a new dict and
never modifies the arrays it was given::

    out = transform(sample, rng=seed_or_generator)

Every random choice comes from the ``rng`` argument (a :class:`numpy.random.Generator`, or
anything :func:`numpy.random.default_rng` accepts), so a pipeline is deterministic under a
seed. Without ``rng`` a per-process generator is used (see :func:`default_generator`); it is
seeded from ``torch.initial_seed()`` when torch is loaded, which DataLoader sets differently,
and reproducibly, in every worker. For augmentation that does not depend on which worker
loads which sample, pass ``rng=rng_for(seed, index, epoch)`` from the dataset.

Keys and roles
--------------
What a transform does to a value is decided by its key (:func:`key_role`):

========  ==================================================  ===================================
role      keys                                                 shapes
========  ==================================================  ===================================
``rgb``   ``image``, ``images``, ``frames``, ``*_image(s)``,  ``(H, W, C)`` uint8, a ``(T, H, W,
          ``*_frames``                                         C)`` stack, or a list of either
``aux``   ``aux``, ``auxes``, ``aux_*``, ``*_aux`` (not        ``(H, W)`` float, ``(T, H, W)``
          ``*valid``)                                          stack, or a list
``valid`` ``*_valid`` (``aux_valid``: validity of ``aux``)     ``(H, W)`` bool, stack, or a list
``mask``  ``mask``, ``masks``, ``*_mask(s)``                   ``(H, W)`` bool (or integer
                                                               labels), stack, or a list
``text``  ``sentence(s)``, ``caption(s)``, ``expression(s)``,  ``str`` or a list of ``str``
          ``*_sentence(s)``
========  ==================================================  ===================================

Other keys (``name``, ``set``, ids, ...) pass through untouched. This covers the sample dicts
of every task: sod ``{image, aux, aux_valid, mask}``, ris ``{image, mask, sentence}``, rvos
clips ``{frames, masks, sentence}``, coseg groups ``{images: list, masks: list}``, fsrvos
``{frames, masks, support_frames, support_masks, ...}``.

* Geometric transforms (:class:`HorizontalFlip`, :class:`RandomScaleCrop`,
  :class:`RandomCenterCrop`, :class:`RandomRotation`, :class:`Resize`) move every ``rgb``,
  ``aux``, ``valid`` and ``mask`` array with one affine map: bilinear for ``rgb`` and ``aux``,
  nearest-neighbour for ``valid`` and ``mask`` (so masks stay binary and labels stay labels).
  Pixels that come from outside the image (rotation corners) are 0: black RGB, aux 0,
  *invalid* aux, background mask.
* Random parameters are drawn once per call and do not depend on the image size, so all
  frames of a clip (a ``(T, H, W, ...)`` stack) get the identical transform, and so do all
  members of a list (for coseg groups of different sizes: the same flip, angle and *relative*
  crop window).
* :class:`Compose` fuses consecutive geometric transforms into one resampling per array: one
  interpolation instead of several, and much faster (flips and crops are slicing, crop +
  resize is ``cv2.resize``, anything with a rotation one ``cv2.warpAffine``). Parameters,
  geometry and the empty corners are the same as when the transforms run one by one (a
  rotation after a crop shows black corners, not the pixels outside the crop window).
* :class:`HorizontalFlip` swaps "left"/"right" (also "leftmost"/"rightmost", "leftward(s)",
  "left-hand", case preserved) in every ``text`` value, so it is *enabled* for ris/rvos/fsrvos
  as in SOC and CMA (the swap is by whole word; "bright" is not touched).
* :class:`ColorJitter` touches only ``rgb``; :class:`AuxNoise` only ``aux`` (and only its valid
  pixels); :class:`MaskPepper` only ``mask``.
* :class:`ToTensor` is the last step of a training pipeline and the only code here that uses
  torch (imported when it runs).

:func:`sod_train_transforms` is the XMSNet/SPNet recipe (reference xmsnet.md §3.3); its
docstring lists where it departs from the released code.
"""

from __future__ import annotations

import functools
import inspect
import math
import os
import re
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

import cv2
import numpy as np

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "Transform",
    "GeometricTransform",
    "Compose",
    "HorizontalFlip",
    "RandomScaleCrop",
    "RandomCenterCrop",
    "RandomRotation",
    "Resize",
    "ResizePad",
    "pad_placement",
    "ColorJitter",
    "AuxNoise",
    "MaskPepper",
    "ToTensor",
    "sod_train_transforms",
    "key_role",
    "swap_left_right",
    "rng_for",
    "default_generator",
    "dataloader_worker_init",
]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

RngLike = np.random.Generator | np.random.SeedSequence | int | Sequence[int] | None
Sample = dict[str, Any]
HW = tuple[int, int]

SPATIAL_ROLES = ("rgb", "aux", "valid", "mask")


# --------------------------------------------------------------------------------------------
# Random generators


_PROCESS_RNG: tuple[int, np.random.Generator] | None = None
_IMPORT_PID = os.getpid()


def default_generator() -> np.random.Generator:
    """The generator used when a transform is called without ``rng``.

    One per process, created on first use:

    * in a DataLoader worker, seeded from the worker's torch seed (which DataLoader derives
      from the main process's torch generator), so ``torch.manual_seed`` makes loading
      reproducible and no two workers repeat each other's augmentation;
    * in the process that imported this module, from ``torch.initial_seed()`` when torch is
      loaded (reproducible after ``torch.manual_seed``), otherwise from OS entropy;
    * in any other forked process, from OS entropy (never a copy of the parent's stream).
    """
    global _PROCESS_RNG
    pid = os.getpid()
    if _PROCESS_RNG is None or _PROCESS_RNG[0] != pid:
        torch = sys.modules.get("torch")
        worker = torch.utils.data.get_worker_info() if torch is not None else None
        if worker is not None:
            gen = np.random.default_rng([int(worker.seed) % (1 << 63), int(worker.id)])
        elif torch is not None and pid == _IMPORT_PID:
            gen = np.random.default_rng(int(torch.initial_seed()) % (1 << 63))
        else:
            gen = np.random.default_rng()
        _PROCESS_RNG = (pid, gen)
    return _PROCESS_RNG[1]


def rng_for(seed: int, index: int, epoch: int = 0) -> np.random.Generator:
    """A generator that depends only on ``(seed, epoch, index)``.

    Pass it as ``rng`` from a dataset's ``__getitem__`` to get augmentation that is the same
    whatever the number of workers or the order in which they load samples.
    """
    return np.random.default_rng([int(seed), int(epoch), int(index)])


def _as_generator(rng: RngLike) -> np.random.Generator:
    if rng is None:
        return default_generator()
    if isinstance(rng, np.random.Generator):
        return rng
    return np.random.default_rng(rng)


def dataloader_worker_init(worker_id: int) -> None:
    """``worker_init_fn`` for DataLoaders over these transforms.

    Limits OpenCV to one thread per worker (the workers already use the cores; OpenCV's own
    thread pool would oversubscribe them) and reseeds :func:`default_generator` from the
    worker's torch seed.
    """
    global _PROCESS_RNG
    cv2.setNumThreads(1)
    _PROCESS_RNG = None
    default_generator()


# --------------------------------------------------------------------------------------------
# Key roles and sentences


@functools.lru_cache(maxsize=256)
def key_role(key: str) -> str | None:
    """The role of a sample key: ``"rgb"``, ``"aux"``, ``"valid"``, ``"mask"``, ``"text"`` or
    ``None`` (passed through untouched). See the module docstring for the rules."""
    k = key.lower()
    if k.endswith("valid"):
        return "valid"
    if k in ("aux", "auxes") or k.startswith("aux_") or k.endswith("_aux"):
        return "aux"
    if k in ("image", "images", "frames") or k.endswith(("_image", "_images", "_frames")):
        return "rgb"
    if k in ("mask", "masks") or k.endswith(("_mask", "_masks")):
        return "mask"
    if k in ("sentence", "sentences", "caption", "captions", "expression", "expressions") or (
        k.endswith(("_sentence", "_sentences"))
    ):
        return "text"
    return None


_LEFT_RIGHT = re.compile(r"\b(left|right)(most|wards?|hand)?\b", re.IGNORECASE)


def _swap_word(match: re.Match[str]) -> str:
    root, suffix = match.group(1), match.group(2) or ""
    new = "right" if root.lower() == "left" else "left"
    if root.isupper():
        new = new.upper()
    elif root[0].isupper():
        new = new.capitalize()
    return new + suffix


def swap_left_right(text: str) -> str:
    """Swap the words left and right in a referring sentence, preserving case.

    Whole words only, with the suffixes "most", "ward(s)" and "hand": "the leftmost cat, Left
    of the dog" -> "the rightmost cat, Right of the dog"; "bright" and "copyright" are kept.
    """
    return _LEFT_RIGHT.sub(_swap_word, text)


# --------------------------------------------------------------------------------------------
# Array helpers


def _spatial_hw(arr: np.ndarray, role: str) -> HW:
    """Height and width of one value (single image or stack of frames)."""
    if role == "rgb":
        if arr.ndim == 2:
            return arr.shape[0], arr.shape[1]
        if arr.ndim in (3, 4):
            return arr.shape[-3], arr.shape[-2]
    elif arr.ndim in (2, 3):
        return arr.shape[-2], arr.shape[-1]
    raise ValueError(f"unexpected shape {arr.shape} for a {role!r} array")


def _is_stack(arr: np.ndarray, role: str) -> bool:
    return arr.ndim == (4 if role == "rgb" else 3)


def _spatial_values(sample: Mapping[str, Any]) -> Iterator[tuple[str, str, Any]]:
    for key, value in sample.items():
        role = key_role(key)
        if role in SPATIAL_ROLES and value is not None:
            yield key, role, value


def _check_sizes(sample: Mapping[str, Any]) -> None:
    """All single arrays share one size; list members at the same index share one size."""
    single: dict[str, HW] = {}
    lists: dict[str, list[HW]] = {}
    for key, role, value in _spatial_values(sample):
        if isinstance(value, (list, tuple)):
            lists[key] = [_spatial_hw(np.asarray(v), role) for v in value]
        else:
            single[key] = _spatial_hw(np.asarray(value), role)
    if len(set(single.values())) > 1:
        sizes = ", ".join(f"{k} {h}x{w}" for k, (h, w) in single.items())
        raise ValueError(f"sample arrays differ in size: {sizes}")
    if lists:
        first = next(iter(lists))
        for key, sizes in lists.items():
            if len(sizes) != len(lists[first]):
                raise ValueError(
                    f"sample lists differ in length: {first} {len(lists[first])}, "
                    f"{key} {len(sizes)}"
                )
            for i, (a, b) in enumerate(zip(lists[first], sizes, strict=True)):
                if a != b:
                    raise ValueError(
                        f"member {i} differs in size: {first} {a[0]}x{a[1]}, {key} {b[0]}x{b[1]}"
                    )


def _map_values(
    sample: Sample, roles: tuple[str, ...], fn: Callable[[np.ndarray, str, str], np.ndarray]
) -> Sample:
    """A shallow copy of ``sample`` with ``fn(array, key, role)`` applied to the arrays of the
    given roles (to each member of a list)."""
    out = dict(sample)
    for key, role, value in _spatial_values(sample):
        if role not in roles:
            continue
        if isinstance(value, (list, tuple)):
            out[key] = [fn(np.asarray(v), key, role) for v in value]
        else:
            out[key] = fn(np.asarray(value), key, role)
    return out


# --------------------------------------------------------------------------------------------
# Affine warping


def _axis_window(m: np.ndarray, in_hw: HW, out_hw: HW) -> tuple[slice, slice, bool, bool] | None:
    """When ``m`` is "crop an integer window inside the input, resize it to the output, maybe
    flip": ``(rows, cols, flip_rows, flip_cols)``; otherwise ``None``.

    Such maps (every call without a rotation) run as slicing plus ``cv2.resize``, several
    times faster than ``cv2.warpAffine`` and more precise for bilinear (OpenCV's warps
    quantise positions to 1/32 px).
    """
    if m[0, 1] != 0 or m[1, 0] != 0:
        return None
    out = []
    for a, t, n_out, n_in in (
        (m[1, 1], m[1, 2], out_hw[0], in_hw[0]),
        (m[0, 0], m[0, 2], out_hw[1], in_hw[1]),
    ):
        flip = a < 0
        if flip:  # m = flip_out @ m', with m' increasing
            a, t = -a, n_out - 1 - t
        n_win, start = n_out / a, 0.5 - (t + 0.5) / a  # x_out = a (x_in - start + 0.5) - 0.5
        if abs(n_win - round(n_win)) > 1e-6 * n_win or abs(start - round(start)) > 1e-6 * n_win:
            return None
        n_win, start = int(round(n_win)), int(round(start))
        if n_win < 1 or start < 0 or start + n_win > n_in:
            return None
        out.append((slice(start, start + n_win), flip))
    (rows, flip_rows), (cols, flip_cols) = out
    return rows, cols, flip_rows, flip_cols


def _resize_window(
    frame: np.ndarray, window: tuple[slice, slice, bool, bool], out_hw: HW, nearest: bool
) -> np.ndarray | None:
    """Crop, resize and flip one ``(H, W[, C])`` array; ``None`` when OpenCV cannot."""
    rows, cols, flip_rows, flip_cols = window
    crop = frame[rows, cols]
    out_h, out_w = out_hw
    if crop.shape[:2] == out_hw:
        out = crop
    else:
        sy, sx = out_h / crop.shape[0], out_w / crop.shape[1]
        if nearest:
            interp = cv2.INTER_NEAREST_EXACT  # = round() of the centre-aligned source position
        elif max(sx, sy) <= 1.0 and min(sx, sy) < 0.5:
            interp = cv2.INTER_AREA  # strong shrink: average, do not alias
        elif min(sx, sy) >= 0.5:
            interp = cv2.INTER_LINEAR
        else:
            return None
        if not nearest and crop.dtype.type not in (
            np.uint8,
            np.uint16,
            np.int16,
            np.float32,
            np.float64,
        ):
            return None
        out = cv2.resize(crop, (out_w, out_h), interpolation=interp)
        if out.ndim < frame.ndim:
            out = out[..., None]
    if flip_rows or flip_cols:
        return _flip(out, flip_rows, flip_cols)
    return np.ascontiguousarray(out)


def _flip(img: np.ndarray, rows: bool, cols: bool) -> np.ndarray:
    """A contiguous flipped copy of an ``(H, W[, C])`` array (``cv2.flip`` when it can)."""
    if img.ndim == 2 or (img.ndim == 3 and 1 < img.shape[2] <= 4):
        code = -1 if rows and cols else (0 if rows else 1)
        return cv2.flip(np.ascontiguousarray(img), code)
    return np.ascontiguousarray(img[:: -1 if rows else 1, :: -1 if cols else 1])


def _resize_prefilter(img: np.ndarray, m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Area-average an image first when ``m`` shrinks it by more than 2x (no aliasing).

    Returns the (possibly) smaller image and the matrix that maps *it* to the output.
    """
    sx = float(np.hypot(m[0, 0], m[1, 0]))  # stretch of the input x axis
    sy = float(np.hypot(m[0, 1], m[1, 1]))
    if min(sx, sy) >= 0.5:
        return img, m
    h, w = img.shape[:2]
    new_w = max(1, round(w * min(sx, 1.0)))
    new_h = max(1, round(h * min(sy, 1.0)))
    small = cv2.resize(img, (new_w, new_h), interpolation=cv2.INTER_AREA)
    if small.ndim < img.ndim:
        small = small[..., None]
    fx, fy = new_w / w, new_h / h
    pre = np.array([[fx, 0, 0.5 * fx - 0.5], [0, fy, 0.5 * fy - 0.5], [0, 0, 1]])
    return small, m @ np.linalg.inv(pre)


_CV_DTYPES = (np.uint8, np.int8, np.uint16, np.int16, np.int32, np.float32, np.float64)


def _warp_plane(img: np.ndarray, m: np.ndarray, out_hw: HW, nearest: bool) -> np.ndarray:
    """Warp one ``(H, W)`` or ``(H, W, C)`` array with the 3x3 forward matrix ``m``.

    Linear warps replicate the edge (so a resize does not darken the border); the pixels
    that come from outside the image are zeroed afterwards (:meth:`_Plan.coverage`).
    """
    if not nearest:
        img, m = _resize_prefilter(img, m)
    out_h, out_w = out_hw
    out = cv2.warpAffine(
        img,
        m[:2].astype(np.float64),
        (out_w, out_h),
        flags=cv2.INTER_NEAREST if nearest else cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT if nearest else cv2.BORDER_REPLICATE,
        borderValue=0,
    )
    if out.ndim < img.ndim:  # OpenCV drops a trailing channel axis of size 1
        out = out[..., None]
    return out


def _inside(m: np.ndarray, in_hw: HW, out_hw: HW) -> np.ndarray | None:
    """``uint8`` (H, W): 1 where the output pixel comes from inside an ``in_hw`` rectangle
    under ``m``; ``None`` when every output pixel does (checked on the four corners, the map
    being affine)."""
    out_h, out_w = out_hw
    corners = np.array([[0, 0, 1], [out_w - 1, 0, 1], [0, out_h - 1, 1], [out_w - 1, out_h - 1, 1]])
    src = corners @ np.linalg.inv(m)[:2].T
    eps = 1e-3
    if (
        src[:, 0].min() >= -0.5 + eps
        and src[:, 0].max() <= in_hw[1] - 0.5 - eps
        and src[:, 1].min() >= -0.5 + eps
        and src[:, 1].max() <= in_hw[0] - 0.5 - eps
    ):
        return None
    return _warp_plane(np.ones(in_hw, np.uint8), m, out_hw, nearest=True)


class _Plan:
    """The fused warp of a run of geometric steps for one input size.

    ``matrix`` maps input to output pixel centres (``None``: identity). ``coverage()`` is the
    ``uint8`` map of output pixels whose pre-image lies inside the input *and* inside every
    intermediate image (a crop followed by a rotation shows black corners, exactly as when
    the steps run one by one), or ``None`` when that is every pixel.
    """

    def __init__(self, ops: Sequence[tuple[GeometricTransform, Any]], hw: HW) -> None:
        self.in_hw = hw
        stages: list[tuple[HW, np.ndarray]] = []
        size = hw
        for op, params in ops:
            m, new_size = op.matrix(params, size)
            if m is not None:
                stages.append((size, m))
            size = new_size
        self.out_hw = size
        self._stages = stages
        self.matrix: np.ndarray | None = None
        for _, m in stages:
            self.matrix = m if self.matrix is None else m @ self.matrix
        self._coverage: np.ndarray | None = None
        self._coverage_done = False

    def coverage(self) -> np.ndarray | None:
        if not self._coverage_done:
            after = np.eye(3)
            inside = None
            for size, m in reversed(self._stages):
                after = after @ m  # maps this stage's input to the final output
                stage_inside = _inside(after, size, self.out_hw)
                if stage_inside is not None:
                    inside = stage_inside if inside is None else inside & stage_inside
            self._coverage, self._coverage_done = inside, True
        return self._coverage

    def warp(self, arr: np.ndarray, role: str) -> np.ndarray:
        """Warp a single array or a stack of frames; dtype and layout are kept."""
        if self.matrix is None and self.out_hw == self.in_hw:
            return arr
        m = np.eye(3) if self.matrix is None else self.matrix
        stack = _is_stack(arr, role)
        inside = self.coverage()
        if role == "valid" and arr.dtype == np.bool_ and arr.all():
            # all valid (most depth maps): the result is the coverage, no need to warp
            shape = (arr.shape[0], *self.out_hw) if stack else self.out_hw
            if inside is None:
                return np.ones(shape, dtype=bool)
            return np.repeat(inside.astype(bool)[None], arr.shape[0], 0) if stack else inside > 0
        window = _axis_window(m, self.in_hw, self.out_hw) if inside is None else None
        nearest = role in ("valid", "mask")
        if (
            window is not None
            and window[0].stop - window[0].start == self.out_hw[0]
            and (window[1].stop - window[1].start == self.out_hw[1])
        ):  # flips and integer crops: exact, no interpolation, any dtype
            ys, xs, flip_y, flip_x = window
            ys = slice(ys.stop - 1, ys.start - 1 if ys.start else None, -1) if flip_y else ys
            xs = slice(xs.stop - 1, xs.start - 1 if xs.start else None, -1) if flip_x else xs
            return np.ascontiguousarray(arr[:, ys, xs] if stack else arr[ys, xs])

        dtype = arr.dtype
        work = arr
        if dtype == np.bool_:
            work = arr.view(np.uint8)
        elif dtype == np.float16:
            work = arr.astype(np.float32)
        elif dtype.type not in _CV_DTYPES:
            if dtype.kind in "iu" and arr.size and (arr.min() < -(2**31) or arr.max() >= 2**31):
                raise ValueError(f"cannot warp a {dtype} array with values outside int32")
            work = arr.astype(np.int32 if dtype.kind in "iub" else np.float32)

        results = []
        for frame in work if stack else [work]:
            resized = None
            if window is not None:
                resized = _resize_window(frame, window, self.out_hw, nearest)
            if resized is None:
                resized = _warp_plane(frame, m, self.out_hw, nearest)
            if inside is not None:
                resized *= inside.reshape(inside.shape + (1,) * (resized.ndim - 2)).astype(
                    resized.dtype
                )
            results.append(resized)
        out = np.stack(results) if stack else results[0]
        if dtype == np.bool_:
            return out.view(np.bool_)
        return out if out.dtype == dtype else out.astype(dtype)


# --------------------------------------------------------------------------------------------
# Base classes


class Transform:
    """Base class: ``transform(sample, rng=None) -> new sample``."""

    def __call__(self, sample: Mapping[str, Any], rng: RngLike = None) -> Sample:
        return self.apply(dict(sample), _as_generator(rng))

    def apply(self, sample: Sample, rng: np.random.Generator) -> Sample:
        raise NotImplementedError

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.startswith("_"))
        return f"{type(self).__name__}({args})"


class GeometricTransform(Transform):
    """A transform that moves pixels with an affine map.

    Subclasses implement :meth:`sample` (draw size-independent parameters) and :meth:`matrix`
    (the 3x3 forward map in pixel-centre coordinates and the output size for an input size);
    :class:`Compose` multiplies the matrices of consecutive geometric steps and warps once.
    """

    def sample(self, rng: np.random.Generator) -> Any:
        """Draw this call's parameters (``None`` for "do nothing")."""
        return None

    def matrix(self, params: Any, hw: HW) -> tuple[np.ndarray | None, HW]:
        """``(3x3 matrix or None for identity, output (H, W))`` for an input of size ``hw``."""
        raise NotImplementedError

    def edit(self, params: Any, sample: Sample) -> None:
        """Change non-pixel values in place (e.g. the words of a sentence)."""

    def apply(self, sample: Sample, rng: np.random.Generator) -> Sample:
        return _apply_geometry(sample, [(self, self.sample(rng))])


def _apply_geometry(sample: Sample, ops: Sequence[tuple[GeometricTransform, Any]]) -> Sample:
    _check_sizes(sample)
    plans: dict[HW, _Plan] = {}

    def warp(arr: np.ndarray, key: str, role: str) -> np.ndarray:
        hw = _spatial_hw(arr, role)
        if hw not in plans:
            plans[hw] = _Plan(ops, hw)
        return plans[hw].warp(arr, role)

    out = _map_values(sample, SPATIAL_ROLES, warp)
    for op, params in ops:
        op.edit(params, out)
    return out


class Compose(Transform):
    """Apply transforms in order, all drawing from one generator.

    Consecutive :class:`GeometricTransform` steps are fused into one warp per array (their
    parameters are drawn in order, as if they ran one by one). Other steps may be any callable
    ``fn(sample) -> sample``; it gets the generator as ``rng=`` when its signature has an
    ``rng`` parameter.
    """

    def __init__(self, transforms: Iterable[Callable[..., Any]]) -> None:
        self.transforms = list(transforms)
        self._takes_rng = [_takes_rng(t) for t in self.transforms]

    def apply(self, sample: Sample, rng: np.random.Generator) -> Sample:
        run: list[tuple[GeometricTransform, Any]] = []
        for t, takes_rng in zip(self.transforms, self._takes_rng, strict=True):
            if isinstance(t, GeometricTransform):
                run.append((t, t.sample(rng)))
                continue
            if run:
                sample = _apply_geometry(sample, run)
                run = []
            sample = t(sample, rng=rng) if takes_rng else t(sample)
        if run:
            sample = _apply_geometry(sample, run)
        return sample

    def __repr__(self) -> str:
        inner = "".join(f"\n    {t!r}," for t in self.transforms)
        return f"Compose([{inner}\n])"


def _takes_rng(fn: Callable[..., Any]) -> bool:
    if isinstance(fn, Transform):
        return True
    try:
        return "rng" in inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False


# --------------------------------------------------------------------------------------------
# Geometric transforms


def _check_p(p: float) -> float:
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"probability must be in [0, 1], got {p}")
    return float(p)


class HorizontalFlip(GeometricTransform):
    """Mirror left-right with probability ``p``; swaps left/right in sentences when it does."""

    def __init__(self, p: float = 0.5, swap_text: bool = True) -> None:
        self.p = _check_p(p)
        self.swap_text = swap_text

    def sample(self, rng: np.random.Generator) -> bool:
        return bool(rng.random() < self.p)

    def matrix(self, params: bool, hw: HW) -> tuple[np.ndarray | None, HW]:
        if not params:
            return None, hw
        return np.array([[-1.0, 0.0, hw[1] - 1.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]), hw

    def edit(self, params: bool, sample: Sample) -> None:
        if not (params and self.swap_text):
            return
        for key, value in sample.items():
            if key_role(key) != "text" or value is None:
                continue
            if isinstance(value, str):
                sample[key] = swap_left_right(value)
            elif isinstance(value, (list, tuple)):
                sample[key] = [swap_left_right(v) if isinstance(v, str) else v for v in value]


def _crop_matrix(x0: int, y0: int) -> np.ndarray:
    return np.array([[1.0, 0.0, -x0], [0.0, 1.0, -y0], [0.0, 0.0, 1.0]])


class RandomScaleCrop(GeometricTransform):
    """Crop a random window (a random scale and position), as in RandomResizedCrop.

    The window covers a fraction of the image area drawn uniformly from ``scale``, with an
    aspect ratio (relative to the image's own, log-uniform) from ``ratio``, clipped to the
    image, at a uniform random position. Output is the window at its own size; follow with
    :class:`Resize` for a fixed size (in a :class:`Compose` the two are one warp).
    Applied with probability ``p``.
    """

    def __init__(
        self,
        scale: tuple[float, float] = (0.5, 1.0),
        ratio: tuple[float, float] = (3 / 4, 4 / 3),
        p: float = 1.0,
    ) -> None:
        if not 0 < scale[0] <= scale[1] <= 1:
            raise ValueError(f"scale must satisfy 0 < low <= high <= 1, got {scale}")
        if not 0 < ratio[0] <= ratio[1]:
            raise ValueError(f"ratio must satisfy 0 < low <= high, got {ratio}")
        self.scale = (float(scale[0]), float(scale[1]))
        self.ratio = (float(ratio[0]), float(ratio[1]))
        self.p = _check_p(p)

    def sample(self, rng: np.random.Generator) -> tuple[float, float, float, float] | None:
        u = rng.random(5)
        if u[0] >= self.p:
            return None
        s = self.scale[0] + u[1] * (self.scale[1] - self.scale[0])
        log_lo, log_hi = math.log(self.ratio[0]), math.log(self.ratio[1])
        r = math.exp(log_lo + u[2] * (log_hi - log_lo))
        return s, r, float(u[3]), float(u[4])

    def window(self, params: tuple[float, float, float, float], hw: HW) -> tuple[int, ...]:
        """``(x0, y0, w, h)`` of the crop for an image of size ``hw``."""
        s, r, u, v = params
        height, width = hw
        w = min(width, max(1, round(width * math.sqrt(s * r))))
        h = min(height, max(1, round(height * math.sqrt(s / r))))
        x0 = min(int(u * (width - w + 1)), width - w)
        y0 = min(int(v * (height - h + 1)), height - h)
        return x0, y0, w, h

    def matrix(self, params: Any, hw: HW) -> tuple[np.ndarray | None, HW]:
        if params is None:
            return None, hw
        x0, y0, w, h = self.window(params, hw)
        if (w, h) == (hw[1], hw[0]):
            return None, hw
        return _crop_matrix(x0, y0), (h, w)


class RandomCenterCrop(GeometricTransform):
    """XMSNet/SPNet "randomCrop": a centred window ``max_shrink`` px smaller at most.

    Width and height are drawn independently as ``W - d`` with ``d`` uniform in
    ``{1, ..., max_shrink}`` (numpy's ``randint(W - 30, W)`` in the reference code, whose
    upper bound is exclusive), and the window is centred. Applied with probability ``p``.
    """

    def __init__(self, max_shrink: int = 30, p: float = 1.0) -> None:
        if max_shrink < 1:
            raise ValueError(f"max_shrink must be >= 1, got {max_shrink}")
        self.max_shrink = int(max_shrink)
        self.p = _check_p(p)

    def sample(self, rng: np.random.Generator) -> tuple[int, int] | None:
        coin = rng.random()
        dw, dh = (int(d) for d in rng.integers(1, self.max_shrink + 1, size=2))
        return (dw, dh) if coin < self.p else None

    def matrix(self, params: tuple[int, int] | None, hw: HW) -> tuple[np.ndarray | None, HW]:
        if params is None:
            return None, hw
        height, width = hw
        w, h = max(1, width - params[0]), max(1, height - params[1])
        return _crop_matrix((width - w) // 2, (height - h) // 2), (h, w)


class RandomRotation(GeometricTransform):
    """Rotate about the image centre by an angle from ``degrees`` with probability ``p``.

    Positive angles turn counter-clockwise (as PIL and OpenCV). The output keeps the input
    size; corners that come from outside the image are black / aux 0 / invalid / background.
    ``integer=True`` draws whole degrees from ``degrees`` inclusive (XMSNet: ``randint(-15,
    15)``, i.e. -15..14, with p = 0.2).
    """

    def __init__(
        self,
        degrees: float | tuple[float, float] = 15.0,
        p: float = 1.0,
        integer: bool = False,
    ) -> None:
        if isinstance(degrees, (int, float)):
            degrees = (-abs(float(degrees)), abs(float(degrees)))
        if degrees[0] > degrees[1]:
            raise ValueError(f"degrees must be (low, high) with low <= high, got {degrees}")
        self.degrees = (float(degrees[0]), float(degrees[1]))
        self.p = _check_p(p)
        self.integer = integer

    def sample(self, rng: np.random.Generator) -> float | None:
        coin = rng.random()
        lo, hi = self.degrees
        if self.integer:
            angle = float(rng.integers(math.ceil(lo), math.floor(hi) + 1))
        else:
            angle = float(lo + rng.random() * (hi - lo))
        return angle if coin < self.p and angle != 0.0 else None

    def matrix(self, params: float | None, hw: HW) -> tuple[np.ndarray | None, HW]:
        if params is None:
            return None, hw
        height, width = hw
        centre = ((width - 1) / 2.0, (height - 1) / 2.0)
        m = cv2.getRotationMatrix2D(centre, params, 1.0)
        return np.vstack([m, [0.0, 0.0, 1.0]]), hw


class Resize(GeometricTransform):
    """Resize to ``size`` (an int for a square, or ``(H, W)``); aspect ratio is not kept."""

    def __init__(self, size: int | tuple[int, int]) -> None:
        size = (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))
        if min(size) < 1:
            raise ValueError(f"size must be positive, got {size}")
        self.size = size

    def matrix(self, params: Any, hw: HW) -> tuple[np.ndarray | None, HW]:
        if hw == self.size:
            return None, hw
        sy, sx = self.size[0] / hw[0], self.size[1] / hw[1]
        m = np.array([[sx, 0.0, 0.5 * sx - 0.5], [0.0, sy, 0.5 * sy - 0.5], [0.0, 0.0, 1.0]])
        return m, self.size


def pad_placement(hw: HW, size: int) -> tuple[int, int, int, int]:
    """Where :class:`ResizePad` puts an ``(H, W)`` image inside its ``size x size`` output.

    The longer side becomes ``size`` and the other keeps the aspect ratio (rounded, at least
    1 px); the image is centred (extra pixel of an odd margin at the bottom/right).

    Returns:
        ``(top, left, height, width)`` of the image inside the square, in output pixels.
    """
    h, w = int(hw[0]), int(hw[1])
    if min(h, w) < 1 or size < 1:
        raise ValueError(f"need a non-empty image and size >= 1, got {hw} and {size}")
    scale = size / max(h, w)
    height = min(size, max(1, round(h * scale)))
    width = min(size, max(1, round(w * scale)))
    return (size - height) // 2, (size - width) // 2, height, width


class ResizePad(GeometricTransform):
    """Aspect-preserving resize into a ``size x size`` square, centred, zero padding around.

    CMPC's (and RRN's) ``resize_and_pad``: the longer side becomes ``size``; the margins are
    black RGB, aux 0 / invalid, and background in masks. :func:`pad_placement` says where the
    image lands, which is how predictions are cropped back.
    """

    def __init__(self, size: int) -> None:
        if int(size) < 1:
            raise ValueError(f"size must be positive, got {size}")
        self.size = int(size)

    def matrix(self, params: Any, hw: HW) -> tuple[np.ndarray | None, HW]:
        top, left, height, width = pad_placement(hw, self.size)
        if (height, width) == tuple(hw) and top == left == 0:
            return None, hw
        sy, sx = height / hw[0], width / hw[1]
        m = np.array(
            [[sx, 0.0, 0.5 * sx - 0.5 + left], [0.0, sy, 0.5 * sy - 0.5 + top], [0.0, 0.0, 1.0]]
        )
        return m, (self.size, self.size)


# --------------------------------------------------------------------------------------------
# Photometric and noise transforms

# ITU-R 601 luma, as PIL's convert("L").
_LUMA = np.array([0.299, 0.587, 0.114])
# PIL's SMOOTH filter is [[1, 1, 1], [1, 5, 1], [1, 1, 1]] / 13 = (9 * box3x3 + 4 * identity) / 13.
_SMOOTH_BOX, _SMOOTH_SELF = 9.0 / 13.0, 4.0 / 13.0


class ColorJitter(Transform):
    """PIL-style colour enhancement of the RGB arrays only (XMSNet's ``colorEnhance``).

    In order: brightness ``b`` (``b * x``), contrast ``c`` (towards the mean grey level),
    colour/saturation ``s`` (towards the pixel's grey value), sharpness ``k`` (towards PIL's
    3x3 SMOOTH blur; ``k > 1`` sharpens). Each factor is drawn uniformly from its range, or
    from the grid ``low, low + step, ..., high`` when ``step`` is given (XMSNet: step 0.1);
    ``None`` skips it. One set of factors per call, shared by every frame of a clip (the
    contrast mean is each frame's own). Applied with probability ``p``.

    Brightness, contrast and colour combine into one 3x4 colour matrix (one pass through the
    image); unlike PIL's chain of enhancers, values are clipped to 0..255 once at the end of
    that pass rather than after each step.
    """

    def __init__(
        self,
        brightness: tuple[float, float] | None = (0.5, 1.5),
        contrast: tuple[float, float] | None = (0.5, 1.5),
        saturation: tuple[float, float] | None = (0.0, 2.0),
        sharpness: tuple[float, float] | None = (0.0, 3.0),
        step: float | None = None,
        p: float = 1.0,
    ) -> None:
        for name, rng_ in (
            ("brightness", brightness),
            ("contrast", contrast),
            ("saturation", saturation),
            ("sharpness", sharpness),
        ):
            if rng_ is not None and not 0 <= rng_[0] <= rng_[1]:
                raise ValueError(f"{name} must be (low, high) with 0 <= low <= high, got {rng_}")
        self.brightness = brightness
        self.contrast = contrast
        self.saturation = saturation
        self.sharpness = sharpness
        self.step = step
        self.p = _check_p(p)

    def _draw(self, rng: np.random.Generator, bounds: tuple[float, float] | None) -> float:
        if bounds is None:
            return 1.0
        lo, hi = bounds
        if self.step:
            n = int(round((hi - lo) / self.step)) + 1
            return float(lo + int(rng.integers(0, n)) * self.step)
        return float(lo + rng.random() * (hi - lo))

    def apply(self, sample: Sample, rng: np.random.Generator) -> Sample:
        coin = rng.random()
        factors = [self._draw(rng, r) for r in (self.brightness, self.contrast, self.saturation)]
        k = self._draw(rng, self.sharpness)
        if coin >= self.p:
            return sample
        b, c, s = factors

        def jitter(img: np.ndarray, key: str, role: str) -> np.ndarray:
            if img.dtype != np.uint8 or img.ndim < 3 or img.shape[-1] != 3:
                raise ValueError(f"{key}: ColorJitter needs uint8 RGB, got {img.shape} {img.dtype}")
            frames = img if img.ndim == 4 else img[None]
            out = np.empty_like(frames)
            for i, frame in enumerate(frames):
                out[i] = _enhance(frame, b, c, s, k)
            return out if img.ndim == 4 else out[0]

        return _map_values(sample, ("rgb",), jitter)


def _enhance(img: np.ndarray, b: float, c: float, s: float, k: float) -> np.ndarray:
    """Brightness, contrast, colour, sharpness on one uint8 HxWx3 image."""
    out = img
    if (b, c, s) != (1.0, 1.0, 1.0):
        # grey = luma; saturation: s*x + (1-s)*grey; brightness then contrast with the mean
        # grey of the brightened image (rounded like PIL): c*b*x + (1-c)*mean.
        colour = s * np.eye(3) + (1.0 - s) * np.outer(np.ones(3), _LUMA)
        mean = 0.0
        if c != 1.0:
            mean_rgb = cv2.mean(img)[:3]
            mean = float(int(b * float(np.dot(_LUMA, mean_rgb)) + 0.5))
        m = np.empty((3, 4))
        m[:, :3] = c * b * colour
        m[:, 3] = (1.0 - c) * mean  # colour rows sum to 1, so the offset is unchanged
        out = cv2.transform(out, m)  # uint8 in, uint8 out (rounded, saturated)
    if k != 1.0:
        # k * x + (1 - k) * smooth(x), with smooth = (9 box + 4 x) / 13: one box filter and
        # one weighted sum. PIL leaves the one-pixel border as it was; so do we.
        box = cv2.blur(out, (3, 3), borderType=cv2.BORDER_REPLICATE)
        alpha = k + (1.0 - k) * _SMOOTH_SELF
        sharp = cv2.addWeighted(out, alpha, box, (1.0 - k) * _SMOOTH_BOX, 0.0)
        sharp[0], sharp[-1], sharp[:, 0], sharp[:, -1] = out[0], out[-1], out[:, 0], out[:, -1]
        out = sharp
    return out


def _valid_key(key: str) -> str:
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


# --------------------------------------------------------------------------------------------
# To torch


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


# --------------------------------------------------------------------------------------------
# Ready-made pipelines


def sod_train_transforms(
    size: int = 384,
    *,
    mask_pepper: bool = True,
    aux_noise: float = 0.0,
    to_tensor: bool = True,
) -> Compose:
    """The XMSNet/SPNet training augmentation (reference xmsnet.md §3.3), for sod samples.

    Steps: horizontal flip (p 0.5) -> centred random crop (up to 30 px less per axis) ->
    rotation (p 0.2, whole degrees -15..14) -> resize to ``size`` x ``size`` -> colour
    enhancement on RGB (brightness 0.5..1.5, contrast 0.5..1.5, colour 0..2, sharpness 0..3,
    steps of 0.1) -> pepper noise on the GT (0.15 % of the pixels set to 0 or 1) ->
    ``ToTensor`` (RGB ImageNet-normalised, aux in [0, 1] unnormalised, mask 0/1 float).

    Departures from the released code, all for speed or for cmseg's conventions:

    * flip, crop, rotation and resize are one bilinear warp (PIL rotates with bicubic and
      torchvision resizes with antialiased bilinear; the geometry is the same);
    * masks are warped nearest-neighbour and stay binary, where the reference resizes and
      rotates the GT bilinearly/bicubically and trains on soft values;
    * colour enhancement and pepper noise run after the resize (on the ``size`` image)
      instead of before it at the original resolution, so the pepper count is
      ``int(0.0015 * size**2)`` and its pixels stay hard 0/1 instead of being blurred by the
      later resize;
    * the three colour enhancers are clipped once, not after each step (see
      :class:`ColorJitter`);
    * ``aux_noise`` (off by default, not in the reference) adds :class:`AuxNoise` with that
      maximum std; ``mask_pepper=False`` drops the label noise.
    """
    steps: list[Transform] = [
        HorizontalFlip(p=0.5),
        RandomCenterCrop(max_shrink=30),
        RandomRotation(degrees=(-15, 14), p=0.2, integer=True),
        Resize(size),
        ColorJitter(
            brightness=(0.5, 1.5),
            contrast=(0.5, 1.5),
            saturation=(0.0, 2.0),
            sharpness=(0.0, 3.0),
            step=0.1,
        ),
    ]
    if aux_noise > 0:
        steps.append(AuxNoise(std=(0.0, aux_noise)))
    if mask_pepper:
        steps.append(MaskPepper(fraction=0.0015))
    if to_tensor:
        steps.append(ToTensor())
    return Compose(steps)
