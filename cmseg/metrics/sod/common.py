"""Constants of the PySODMetrics conventions and the per-thread scratch arrays.

Shared by every metric module of :mod:`cmseg.metrics.sod`.
"""

from __future__ import annotations

import math
import threading
from typing import Any

import numpy as np

EPS: float = float(np.spacing(1))
"""MATLAB's ``eps`` (2.2e-16), the smoothing term of every formula here."""

F_BETA2: float = 0.3
"""beta^2 of the F-measure (precision weighted more than recall)."""

WF_BETA2: float = 1.0
"""beta^2 of the weighted F-measure."""

S_ALPHA: float = 0.5
"""Weight of the object term against the region term in the S-measure."""

NUM_LEVELS: int = 256
"""Grey levels, thresholds and curve length."""

CURVE_NAMES: tuple[str, ...] = ("precision", "recall", "fm", "em", "iou", "dice")
"""The per-threshold curves, in the order of the evaluator's internal curve array."""

THRESHOLDED: tuple[str, ...] = ("em", "fm", "iou", "dice")
"""Metrics reported as ``{"adp", "mean", "max"}``."""


class _Scratch(threading.local):
    """Work arrays reused from image to image, one set per thread.

    Fresh temporaries of a megabyte or so are returned to the OS when freed and page-faulted
    back on the next image; on the measuring machine that doubled the weighted F-measure's
    time. Arrays above ``max_size`` elements are not kept (a huge image should not pin memory).
    """

    max_size = 1 << 21  # elements: 16 MB of float64, images up to ~1400 x 1400

    def __init__(self) -> None:
        self._flat: dict[str, np.ndarray] = {}

    def array(self, key: str, shape: tuple[int, ...], dtype: Any) -> np.ndarray:
        """An uninitialised C-contiguous array; valid until the next request for ``key``."""
        size = math.prod(shape)
        if size > self.max_size:
            return np.empty(shape, dtype)
        flat = self._flat.get(key)
        if flat is None or flat.dtype != dtype or flat.size < size:
            flat = np.empty(max(size, 1), dtype)
            self._flat[key] = flat
        return flat[:size].reshape(shape)


_SCRATCH = _Scratch()
