"""Base classes (:class:`Transform`, :class:`GeometricTransform`) and :class:`Compose`."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from cmseg.data.transforms.generators import RngLike, _as_generator
from cmseg.data.transforms.roles import (
    HW,
    SPATIAL_ROLES,
    Sample,
    _check_sizes,
    _map_values,
    _spatial_hw,
)
from cmseg.data.transforms.warp import _Plan


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
    """Run geometric steps (each with its drawn parameters) as one warp per array, then let
    each step edit the non-pixel values (sentences)."""
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
    """Whether :class:`Compose` should pass ``rng=`` to the step ``fn``."""
    if isinstance(fn, Transform):
        return True
    try:
        return "rng" in inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False


def _check_p(p: float) -> float:
    """``p`` as a float, after checking it is a probability in ``[0, 1]``."""
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"probability must be in [0, 1], got {p}")
    return float(p)
