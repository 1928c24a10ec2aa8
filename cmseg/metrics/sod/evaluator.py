"""The dataset evaluator and its additive, picklable state."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from cmseg.metrics.sod.common import CURVE_NAMES, NUM_LEVELS
from cmseg.metrics.sod.image import SCALAR_NAMES, ImageScores, _summary, score_image


@dataclass
class SODState:
    """Additive state of :class:`SODEvaluator` (picklable; two states add up field by field).

    Attributes:
        count: images scored.
        scalar_sums: (7,) sums over images of :data:`SCALAR_NAMES`.
        curve_sums: (6, 256) sums over images of the curves (rows :data:`CURVE_NAMES`,
            ascending thresholds).
        items: ``(name or None, per-image scores)`` in scoring order.
    """

    count: int = 0
    scalar_sums: np.ndarray = field(default_factory=lambda: np.zeros(len(SCALAR_NAMES)))
    curve_sums: np.ndarray = field(default_factory=lambda: np.zeros((len(CURVE_NAMES), NUM_LEVELS)))
    items: list[tuple[str | None, dict[str, Any]]] = field(default_factory=list)


class SODEvaluator:
    """Dataset-level SOD/COD metrics, PySODMetrics 1.6 conventions (see :mod:`~cmseg.metrics.sod`).

    ``update`` each (prediction, GT) pair, then ``compute``. Evaluators filled in different
    processes combine with ``merge`` (the state is sums plus the per-image list).
    """

    def __init__(self) -> None:
        self.state = SODState()
        self._names: set[str] = set()

    def reset(self) -> None:
        """Forget every image."""
        self.state = SODState()
        self._names = set()

    def __len__(self) -> int:
        return self.state.count

    def update(self, pred: np.ndarray, gt: np.ndarray, name: str | None = None) -> ImageScores:
        """Score one pair and add it.

        Args:
            pred: (H, W) uint8 map 0..255 (resize it to the GT first:
                :func:`~cmseg.metrics.sod.inputs.resize_to`).
            gt: (H, W) uint8 mask, > 128 is foreground.
            name: the item's name in :meth:`per_item` (default: its position, ``"000000"``...).

        Returns:
            The image's scores.

        Raises:
            TypeError, ValueError: bad arrays (see
                :func:`~cmseg.metrics.sod.inputs.check_pair`) or a repeated name.
        """
        if name is not None and name in self._names:
            raise ValueError(f"item {name!r} was already scored")
        scores = score_image(pred, gt)
        state = self.state
        state.count += 1
        state.scalar_sums += [scores.scalars[k] for k in SCALAR_NAMES]
        state.curve_sums += scores.curves
        state.items.append((name, scores.as_item()))
        if name is not None:
            self._names.add(name)
        return scores

    def merge(self, other: SODEvaluator) -> None:
        """Add the images of ``other`` (e.g. filled in a worker process) to this evaluator.

        Raises:
            ValueError: both evaluators scored an item of the same name.
        """
        clash = self._names & other._names
        if clash:
            raise ValueError(f"items scored twice: {sorted(clash)[:5]}")
        self.state.count += other.state.count
        self.state.scalar_sums += other.state.scalar_sums
        self.state.curve_sums += other.state.curve_sums
        self.state.items.extend(other.state.items)
        self._names |= other._names

    def _means(self) -> tuple[dict[str, float], np.ndarray]:
        if self.state.count == 0:
            raise ValueError("no image was scored")
        count = self.state.count
        scalars = dict(zip(SCALAR_NAMES, (self.state.scalar_sums / count).tolist(), strict=True))
        return scalars, self.state.curve_sums / count

    def compute(self) -> dict[str, Any]:
        """Dataset results (means over images; mean/max of the mean curves).

        Returns:
            ``{"mae", "sm", "wfm", "em": {"adp", "mean", "max"}, "fm": {...}, "iou": {...},
            "dice": {...}}``, Python floats. MAE in [0, 1] (lower is better); the rest in
            [0, 1] except E, which can reach N / (N - 1).

        Raises:
            ValueError: no image was scored.
        """
        return _summary(*self._means())

    def curves(self) -> dict[str, list[float]]:
        """Dataset-mean curves over the 256 thresholds, in ascending threshold order.

        Returns:
            ``{"thresholds", "precision", "recall", "fm", "em", "iou", "dice"}``, lists of 256
            Python floats. Entry j is the map binarised with ``floor(255 p) >= j``, i.e. at
            threshold ``thresholds[j] = j / 255`` (0.0 ... 1.0). PySODMetrics stores the same
            curves in the reverse (descending) order.
        """
        _, curves = self._means()
        out = {"thresholds": (np.arange(NUM_LEVELS) / 255).tolist()}
        out.update({name: curves[i].tolist() for i, name in enumerate(CURVE_NAMES)})
        return out

    def per_item(self) -> dict[str, dict[str, Any]]:
        """Per-image scores, ``{name: <same schema as compute()>}`` in scoring order.

        "mean" and "max" are those of the image's own curves. Unnamed items are called by
        their position (``"000000"``, ``"000001"``...).
        """
        return {
            name if name is not None else f"{i:06d}": item
            for i, (name, item) in enumerate(self.state.items)
        }
