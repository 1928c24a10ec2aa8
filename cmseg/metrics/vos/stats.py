"""Per-sequence statistics of per-frame scores: Mean, Recall and Decay (DAVIS toolkit)."""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable
from typing import NamedTuple

import numpy as np


class Stats(NamedTuple):
    """Summary of one per-frame score sequence (all Python floats, NaN only for no frames)."""

    mean: float
    """nanmean of the values, in [0, 1]."""
    recall: float
    """Fraction of frames with value > 0.5 (NaN frames count as misses), in [0, 1]."""
    decay: float
    """Mean of the first quarter minus mean of the last quarter, in [-1, 1]."""


def statistics(values: Iterable[float] | np.ndarray) -> Stats:
    """Mean / Recall / Decay of one per-frame sequence, as the DAVIS toolkit defines them.

    * mean = ``nanmean(v)``;
    * recall = ``mean(v > 0.5)`` (strictly above; a NaN frame counts as a miss, as in the
      toolkit, whose nanmean of a boolean array is a plain mean);
    * decay: ``ids = round(linspace(1, n, 5) + 1e-10) - 1``; bin ``i`` is
      ``v[ids[i] : ids[i+1] + 1]`` (neighbouring bins share their boundary frame);
      decay = ``nanmean(bin 0) - nanmean(bin 3)``. Positive = the score drops over time.

    Fix of the toolkit's Decay overflow: the toolkit casts ``ids`` to ``uint8``. For
    ``n >= 256`` that wraps (and under NumPy 2 ``ids[4] + 1`` overflows at 255), so Decay is
    NaN or wrong for sequences of 256 frames or more (n = 300 linear ramp: NaN instead of
    224/299). Here ``ids`` are ``int64``; for ``n < 256`` every index, and so every number, is
    identical to the toolkit's.

    Args:
        values: 1-D per-frame scores (J or F), usually in ``[0, 1]``; NaN allowed.

    Returns:
        ``Stats(mean, recall, decay)`` as Python floats; all NaN for an empty sequence.
    """
    v = np.asarray(values, dtype=np.float64).ravel()
    n = v.size
    if n == 0:
        return Stats(math.nan, math.nan, math.nan)
    ids = (np.round(np.linspace(1, n, 5) + 1e-10) - 1).astype(np.int64)
    bins = [v[ids[i] : ids[i + 1] + 1] for i in range(4)]
    with warnings.catch_warnings():
        # All-NaN slices give NaN, which is the intended answer; the warning is noise.
        warnings.simplefilter("ignore", category=RuntimeWarning)
        mean = float(np.nanmean(v))
        decay = float(np.nanmean(bins[0]) - np.nanmean(bins[3]))
    recall = float(np.mean(v > 0.5))
    return Stats(mean, recall, decay)
