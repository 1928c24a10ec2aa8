"""The dataset evaluator: per-unit J/F statistics for the davis, mevis, ytvos and cma protocols."""

from __future__ import annotations

from typing import Any

import numpy as np

from cmseg.metrics.vos.boundary import DEFAULT_BOUND_TH, boundary_tolerance
from cmseg.metrics.vos.cma import CMA_SHORT_SIDE, cma_scoring_shape, resize_masks
from cmseg.metrics.vos.davis import davis_sequence
from cmseg.metrics.vos.frames import _frames_jf
from cmseg.metrics.vos.inputs import _as_bool_stack, _check_pair
from cmseg.metrics.vos.stats import Stats, statistics

#: Names accepted by ``VOSEvaluator(protocol=...)``.
PROTOCOLS = ("davis", "mevis", "ytvos", "cma")

#: Per-unit sums kept for frame pooling: (sum J, sum F, frames J > 0.5, frames F > 0.5).
Sums = tuple[float, float, int, int]


def _stats_dict(s: Stats) -> dict[str, float]:
    """``{"mean", "recall", "decay"}`` of one J or F sequence."""
    return {"mean": s.mean, "recall": s.recall, "decay": s.decay}


def _entry_dict(j: Stats, f: Stats, n_frames: int) -> dict[str, Any]:
    """One unit's entry of :meth:`VOSEvaluator.per_sequence`."""
    return {
        "J&F": (j.mean + f.mean) / 2,
        "J": _stats_dict(j),
        "F": _stats_dict(f),
        "frames": n_frames,
    }


class VOSEvaluator:
    """Accumulates J/F statistics over sequences (davis) or expressions (mevis, ytvos, cma).

    Usage::

        ev = VOSEvaluator("davis")
        for name, pred, gt in sequences:
            ev.update(pred, gt, name)
        ev.compute()   # {"J&F": .., "J": {"mean", "recall", "decay"}, "F": {...}}

    Dataset-level numbers (as the DAVIS toolkit and MeViS's script compute them): every
    *unit* -- an object of a sequence for ``"davis"``, an expression for ``"mevis"``/``"ytvos"``
    -- has its own Stats for J and for F; each dataset number is the plain mean over units of
    that unit-level number (J-mean, J-recall, J-decay, F-...), every unit weighted equally
    whatever its length, and ``J&F = (J-mean + F-mean) / 2``. Units are averaged in sorted
    ``(name, object id)`` order so the result does not depend on the order of ``update`` or
    ``merge`` calls (another order could only change the last bits).

    ``"cma"`` (CMA's test.py) pools instead: J-mean and F-mean are the sums of the per-frame
    values over **all frames of all expressions** divided by the number of frames, and the
    recalls the fraction of all frames above 0.5 (an expression weighs by its length); the
    decays, which CMA does not report, are the means over expressions. Frames and GT are
    scored at short side ``short_side`` (:mod:`cmseg.metrics.vos.cma`).

    The state is a dict of per-unit Stats (small, picklable); evaluators built in several
    processes are combined with ``merge``.

    Args:
        protocol: ``"davis"``, ``"mevis"``, ``"ytvos"`` or ``"cma"`` (see
            :mod:`cmseg.metrics.vos`).
        bound_th: F tolerance; ``None`` = 0.008 (DAVIS). CMA's protocol uses 0.010.
        short_side: ``"cma"`` only: the scoring resolution's short side (``None``: CMA's 360;
            0: the native resolution).
    """

    def __init__(
        self, protocol: str = "davis", bound_th: float | None = None, short_side: int | None = None
    ) -> None:
        if protocol not in PROTOCOLS:
            raise ValueError(f"unknown protocol {protocol!r}; expected one of {PROTOCOLS}")
        if short_side is not None and protocol != "cma":
            raise ValueError(f"short_side applies to the cma protocol only, not {protocol!r}")
        if short_side is not None and (int(short_side) != short_side or short_side < 0):
            raise ValueError(f"short_side must be a whole number >= 0, got {short_side!r}")
        self.protocol = protocol
        self.bound_th = DEFAULT_BOUND_TH if bound_th is None else float(bound_th)
        self.short_side = 0
        if protocol == "cma":
            self.short_side = CMA_SHORT_SIDE if short_side is None else int(short_side)
        boundary_tolerance(480, 854, self.bound_th)  # validate early
        # name -> {object id: (J Stats, F Stats, n_frames)} for davis,
        # name -> (J Stats, F Stats, n_frames, Sums) otherwise.
        self._units: dict[str, Any] = {}

    def _settings(self) -> tuple[str, float, int]:
        return (self.protocol, self.bound_th, self.short_side)

    def scoring_shape(self, height: int, width: int) -> tuple[int, int]:
        """The size frames of ``height x width`` are scored at (changed only by ``"cma"``)."""
        return cma_scoring_shape(height, width, self.short_side)

    def reset(self) -> None:
        """Forget everything accumulated so far."""
        self._units = {}

    def __len__(self) -> int:
        """Number of sequences / expressions seen."""
        return len(self._units)

    def update(self, pred: np.ndarray, gt: np.ndarray, name: str) -> dict[str, Any]:
        """Score one sequence (davis) or one expression (mevis, ytvos, cma).

        Args:
            pred, gt: ``(T, H, W)``. davis: integer index masks (``uint8``/``uint16``; GT 255 =
                void), ``T >= 3``. mevis/ytvos/cma: bool or integer binary masks (nonzero =
                foreground), ``T >= 1``; ytvos/cma: annotated frames only; cma: ``pred`` at the
                GT's size or already at :meth:`scoring_shape`.
            name: unique key of the sequence / expression (e.g. ``"video/exp_id"``).

        Returns:
            The entry that ``per_sequence()[name]`` will hold.

        Raises:
            ValueError: bad shapes, a repeated name, or (davis) predicted ids above the number
                of GT objects.
        """
        if name in self._units:
            raise ValueError(f"{name!r} was already evaluated")
        if self.protocol == "davis":
            j_all, f_all = davis_sequence(pred, gt, self.bound_th)
            n = j_all.shape[1]
            self._units[name] = {
                k + 1: (statistics(j_all[k]), statistics(f_all[k]), n)
                for k in range(j_all.shape[0])
            }
            return self._entry(name)
        p, g = self._at_scoring_size(pred, gt) if self.protocol == "cma" else _check_pair(pred, gt)
        if p.ndim != 3 or p.shape[0] == 0:
            raise ValueError(f"pred and gt must have shape (T, H, W) with T >= 1, got {p.shape}")
        j, f = _frames_jf(p, g, boundary_tolerance(p.shape[1], p.shape[2], self.bound_th))
        self._add(name, j, f)
        return self._entry(name)

    def add_zero(self, name: str, n_frames: int) -> dict[str, Any]:
        """Score expression ``name`` J = F = 0 on ``n_frames`` frames without masks (MeViS's
        script does this for an expression without predictions); not for ``"davis"``."""
        if self.protocol == "davis":
            raise ValueError("add_zero needs an expression protocol, not 'davis'")
        if name in self._units:
            raise ValueError(f"{name!r} was already evaluated")
        zeros = np.zeros(max(int(n_frames), 1), dtype=np.float64)
        self._add(name, zeros, zeros)
        return self._entry(name)

    def _add(self, name: str, j: np.ndarray, f: np.ndarray) -> None:
        sums = (float(j.sum()), float(f.sum()), int((j > 0.5).sum()), int((f > 0.5).sum()))
        self._units[name] = (statistics(j), statistics(f), int(j.size), sums)

    def _at_scoring_size(self, pred: np.ndarray, gt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """cma: both stacks at :meth:`scoring_shape` of the GT (see :mod:`.cma`)."""
        p, g = _as_bool_stack(pred, "pred"), _as_bool_stack(gt, "gt")
        if g.ndim != 3 or p.ndim != 3 or p.shape[0] != g.shape[0]:
            raise ValueError(f"pred and gt shapes differ: {p.shape} vs {g.shape}")
        target = self.scoring_shape(g.shape[1], g.shape[2])
        if p.shape[1:] not in (g.shape[1:], target):
            raise ValueError(
                f"pred shape {p.shape} is neither the gt's {g.shape} nor the scoring size {target}"
            )
        return resize_masks(p, target), resize_masks(g, target)

    def merge(self, other: VOSEvaluator) -> VOSEvaluator:
        """Add the units of ``other`` (same protocol and bound_th, disjoint names); returns self."""
        if not isinstance(other, VOSEvaluator):
            raise TypeError(f"cannot merge {type(other).__name__} into VOSEvaluator")
        if other._settings() != self._settings():
            raise ValueError(
                f"cannot merge {other.protocol}/bound_th={other.bound_th}/short_side="
                f"{other.short_side} into {self.protocol}/bound_th={self.bound_th}/short_side="
                f"{self.short_side}"
            )
        common = self._units.keys() & other._units.keys()
        if common:
            raise ValueError(f"both evaluators scored {sorted(common)[:3]}")
        self._units.update(other._units)
        return self

    def _unit_list(self) -> list[tuple[Stats, Stats]]:
        units: list[tuple[Stats, Stats]] = []
        for name in sorted(self._units):
            entry = self._units[name]
            if self.protocol == "davis":
                units.extend(entry[k][:2] for k in sorted(entry))
            else:
                units.append(entry[:2])
        return units

    def compute(self) -> dict[str, Any]:
        """Dataset-level numbers (Python floats).

        Returns:
            ``{"J&F": float, "J": {"mean", "recall", "decay"}, "F": {"mean", "recall", "decay"}}``;
            each J/F value is the mean over units (objects for davis, expressions otherwise)
            of that unit's statistic, except for cma's means and recalls, pooled over all
            frames; ``J&F = (J.mean + F.mean) / 2``.

        Raises:
            RuntimeError: nothing scored yet (or, davis, no sequence had an object).
        """
        units = self._unit_list()
        if not units:
            raise RuntimeError("VOSEvaluator.compute() called before any object was scored")
        arr = np.array([[*j, *f] for j, f in units], dtype=np.float64)  # (units, 6)
        # np.mean over each column, as the toolkit's np.mean over its per-object lists.
        jm, jr, jd, fm, fr, fd = (float(np.mean(arr[:, i])) for i in range(6))
        if self.protocol == "cma":
            jm, fm, jr, fr = self._pooled()
        return {
            "J&F": (jm + fm) / 2,
            "J": {"mean": jm, "recall": jr, "decay": jd},
            "F": {"mean": fm, "recall": fr, "decay": fd},
        }

    def _pooled(self) -> tuple[float, float, float, float]:
        """cma: (J mean, F mean, J recall, F recall) over all frames of all expressions."""
        entries = [self._units[name] for name in sorted(self._units)]
        frames = sum(entry[2] for entry in entries)
        j_sum, f_sum, j_hits, f_hits = (sum(entry[3][i] for entry in entries) for i in range(4))
        return j_sum / frames, f_sum / frames, j_hits / frames, f_hits / frames

    def per_sequence(self) -> dict[str, Any]:
        """Per-unit results, sorted by name.

        Returns:
            davis: ``{name: {object_id (int): entry}}``; mevis/ytvos: ``{name: entry}``, where
            ``entry = {"J&F": float, "J": {"mean", "recall", "decay"}, "F": {...},
            "frames": int}`` (``frames`` = number of scored frames).
        """
        return {name: self._entry(name) for name in sorted(self._units)}

    def _entry(self, name: str) -> dict[Any, Any]:
        unit = self._units[name]
        if self.protocol == "davis":
            return {k: _entry_dict(*unit[k]) for k in sorted(unit)}
        return _entry_dict(*unit[:3])

    def __getstate__(self) -> dict[str, Any]:
        return {
            "protocol": self.protocol,
            "bound_th": self.bound_th,
            "short_side": self.short_side,
            "units": self._units,
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.protocol = state["protocol"]
        self.bound_th = state["bound_th"]
        self.short_side = state.get("short_side", 0)
        self._units = state["units"]

    def __repr__(self) -> str:
        return (
            f"VOSEvaluator(protocol={self.protocol!r}, bound_th={self.bound_th}, "
            f"short_side={self.short_side}, units={len(self._units)})"
        )
