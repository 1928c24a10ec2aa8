"""The dataset evaluator: per-unit J/F statistics for the davis, mevis and ytvos protocols."""

from __future__ import annotations

from typing import Any

import numpy as np

from cmseg.metrics.vos.boundary import DEFAULT_BOUND_TH, boundary_tolerance
from cmseg.metrics.vos.davis import davis_sequence
from cmseg.metrics.vos.frames import _frames_jf
from cmseg.metrics.vos.inputs import _check_pair
from cmseg.metrics.vos.stats import Stats, statistics

#: Names accepted by ``VOSEvaluator(protocol=...)``.
PROTOCOLS = ("davis", "mevis", "ytvos")


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
    """Accumulates J/F statistics over sequences (davis) or expressions (mevis, ytvos).

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

    The state is a dict of per-unit Stats (small, picklable); evaluators built in several
    processes are combined with ``merge``.

    Args:
        protocol: ``"davis"``, ``"mevis"`` or ``"ytvos"`` (see :mod:`cmseg.metrics.vos`).
        bound_th: F tolerance; ``None`` = 0.008 (DAVIS). CMA's protocol uses 0.010.
    """

    def __init__(self, protocol: str = "davis", bound_th: float | None = None) -> None:
        if protocol not in PROTOCOLS:
            raise ValueError(f"unknown protocol {protocol!r}; expected one of {PROTOCOLS}")
        self.protocol = protocol
        self.bound_th = DEFAULT_BOUND_TH if bound_th is None else float(bound_th)
        boundary_tolerance(480, 854, self.bound_th)  # validate early
        # name -> {object id: (J Stats, F Stats, n_frames)} for davis,
        # name -> (J Stats, F Stats, n_frames) otherwise.
        self._units: dict[str, Any] = {}

    def reset(self) -> None:
        """Forget everything accumulated so far."""
        self._units = {}

    def __len__(self) -> int:
        """Number of sequences / expressions seen."""
        return len(self._units)

    def update(self, pred: np.ndarray, gt: np.ndarray, name: str) -> dict[str, Any]:
        """Score one sequence (davis) or one expression (mevis, ytvos).

        Args:
            pred, gt: ``(T, H, W)``. davis: integer index masks (``uint8``/``uint16``; GT 255 =
                void), ``T >= 3``. mevis/ytvos: bool or integer binary masks (nonzero =
                foreground), ``T >= 1``; ytvos: annotated frames only.
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
        else:
            p, g = _check_pair(pred, gt)
            if p.ndim != 3 or p.shape[0] == 0:
                raise ValueError(
                    f"pred and gt must have shape (T, H, W) with T >= 1, got {p.shape}"
                )
            j, f = _frames_jf(p, g, boundary_tolerance(p.shape[1], p.shape[2], self.bound_th))
            self._units[name] = (statistics(j), statistics(f), p.shape[0])
        return self._entry(name)

    def merge(self, other: VOSEvaluator) -> VOSEvaluator:
        """Add the units of ``other`` (same protocol and bound_th, disjoint names); returns self."""
        if not isinstance(other, VOSEvaluator):
            raise TypeError(f"cannot merge {type(other).__name__} into VOSEvaluator")
        if (other.protocol, other.bound_th) != (self.protocol, self.bound_th):
            raise ValueError(
                f"cannot merge {other.protocol}/bound_th={other.bound_th} into "
                f"{self.protocol}/bound_th={self.bound_th}"
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
            of that unit's statistic; ``J&F = (J.mean + F.mean) / 2``.

        Raises:
            RuntimeError: nothing scored yet (or, davis, no sequence had an object).
        """
        units = self._unit_list()
        if not units:
            raise RuntimeError("VOSEvaluator.compute() called before any object was scored")
        arr = np.array([[*j, *f] for j, f in units], dtype=np.float64)  # (units, 6)
        # np.mean over each column, as the toolkit's np.mean over its per-object lists.
        jm, jr, jd, fm, fr, fd = (float(np.mean(arr[:, i])) for i in range(6))
        return {
            "J&F": (jm + fm) / 2,
            "J": {"mean": jm, "recall": jr, "decay": jd},
            "F": {"mean": fm, "recall": fr, "decay": fd},
        }

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
        return _entry_dict(*unit)

    def __getstate__(self) -> dict[str, Any]:
        return {"protocol": self.protocol, "bound_th": self.bound_th, "units": self._units}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.protocol = state["protocol"]
        self.bound_th = state["bound_th"]
        self._units = state["units"]

    def __repr__(self) -> str:
        return (
            f"VOSEvaluator(protocol={self.protocol!r}, bound_th={self.bound_th}, "
            f"units={len(self._units)})"
        )
