"""Sample keys and their roles, and the helpers that walk the spatial values of a sample.

A sample is a dict; what a transform does to a value is decided by its key
(:func:`key_role`; the table is in the :mod:`cmseg.data.transforms` docstring).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import numpy as np

#: A sample dict: numpy arrays (or lists of them) and plain values, by key.
Sample = dict[str, Any]
#: ``(height, width)`` in pixels.
HW = tuple[int, int]

#: The roles whose values are images, moved together by the geometric transforms.
SPATIAL_ROLES = ("rgb", "aux", "valid", "mask")


@functools.lru_cache(maxsize=256)
def key_role(key: str) -> str | None:
    """The role of a sample key: ``"rgb"``, ``"aux"``, ``"valid"``, ``"mask"``, ``"text"`` or
    ``None`` (passed through untouched). The rules are in the :mod:`cmseg.data.transforms`
    docstring."""
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
    """Whether ``arr`` is a stack of frames (``(T, H, W, C)`` RGB, ``(T, H, W)`` otherwise)."""
    return arr.ndim == (4 if role == "rgb" else 3)


def _spatial_values(sample: Mapping[str, Any]) -> Iterator[tuple[str, str, Any]]:
    """``(key, role, value)`` of every non-None value of a spatial role, in key order."""
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
