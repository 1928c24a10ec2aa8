"""Mean / Recall / Decay of cmseg.metrics.vos, against hand-computed values and the toolkit."""

from __future__ import annotations

import math

import numpy as np
import pytest

from cmseg.metrics.vos import (
    Stats,
    statistics,
)


def test_statistics_five_values():
    # mean = 3.1 / 5; recall: 0.6, 0.9, 1.0 are > 0.5 -> 3/5.
    # n = 5: linspace(1, 5, 5) = 1..5 -> ids 0..4, bins [v0,v1] [v1,v2] [v2,v3] [v3,v4];
    # decay = mean(0.2, 0.6) - mean(0.4, 1.0) = 0.4 - 0.7 = -0.3.
    s = statistics([0.2, 0.6, 0.9, 0.4, 1.0])
    assert isinstance(s, Stats) and all(type(x) is float for x in s)
    assert s.mean == pytest.approx(0.62)
    assert s.recall == pytest.approx(0.6)
    assert s.decay == pytest.approx(-0.3)


def test_statistics_ten_values_bins():
    # n = 10: linspace(1, 10, 5) = 1, 3.25, 5.5, 7.75, 10; +1e-10 and round -> 1, 3, 6, 8, 10
    # (5.5 rounds up thanks to the 1e-10); -1 -> ids 0, 2, 5, 7, 9.
    # Bins v[0:3], v[2:6], v[5:8], v[7:10]. v = 0.9, 0.8, ..., 0.0:
    # decay = mean(0.9, 0.8, 0.7) - mean(0.2, 0.1, 0.0) = 0.8 - 0.1 = 0.7.
    v = [0.9 - 0.1 * i for i in range(10)]
    s = statistics(v)
    assert s.decay == pytest.approx(0.7)
    assert s.recall == pytest.approx(0.4)  # 0.9, 0.8, 0.7, 0.6 (0.5 itself is not > 0.5)
    assert s.mean == pytest.approx(0.45)


def test_statistics_threshold_is_strict_and_edge_lengths():
    assert statistics([0.5, 0.5]).recall == 0.0
    assert statistics([0.7]) == Stats(0.7, 1.0, 0.0)  # n = 1: every bin is v[0:1]
    empty = statistics([])
    assert all(math.isnan(x) for x in empty)


def test_statistics_nan_frames():
    # nanmean ignores NaN for Mean/Decay; Recall counts a NaN frame as a miss (toolkit rule).
    s = statistics([math.nan, 1.0])
    assert s.mean == 1.0 and s.recall == 0.5


def toolkit_decay_uint8(v: list[float]) -> float:
    """The toolkit's Decay with its uint8 ids, for n < 256 where it is correct."""
    arr = np.asarray(v, dtype=np.float64)
    ids = (np.round(np.linspace(1, len(arr), 5) + 1e-10) - 1).astype(np.uint8)
    bins = [arr[ids[i] : ids[i + 1] + 1] for i in range(4)]
    return float(np.nanmean(bins[0]) - np.nanmean(bins[3]))


@pytest.mark.parametrize("n", [2, 3, 4, 7, 80, 101, 254, 255])
def test_decay_equals_toolkit_below_256(n):
    rng = np.random.default_rng(n)
    v = rng.random(n).tolist()
    assert statistics(v).decay == toolkit_decay_uint8(v)


def test_decay_fixed_for_300_frame_ramp():
    # The toolkit's uint8 ids wrap for n >= 256 (NaN here). Plain-Python expectation:
    n = 300
    v = [1 - i / (n - 1) for i in range(n)]
    ids = [round(1 + (n - 1) * i / 4 + 1e-10) - 1 for i in range(5)]
    assert ids == [0, 75, 150, 224, 299]
    first = v[ids[0] : ids[1] + 1]
    last = v[ids[3] : ids[4] + 1]
    expected = sum(first) / len(first) - sum(last) / len(last)
    # = (mean index of last bin - mean index of first bin) / 299 = (261.5 - 37.5) / 299
    assert expected == pytest.approx(224 / 299)
    assert statistics(v).decay == pytest.approx(expected, rel=1e-12)
    assert math.isfinite(statistics([0.5] * 256).decay)
