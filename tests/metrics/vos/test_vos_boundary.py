"""Boundary building blocks of cmseg.metrics.vos: tolerance radius, disk, boundary map.

Expected values are worked out by hand in the comments.
"""

from __future__ import annotations

import numpy as np
import pytest
from vos_cases import brute_boundary

from cmseg.metrics.vos import (
    boundary_map,
    boundary_tolerance,
    disk,
)


def test_boundary_tolerance_examples():
    # ceil(0.008 * 979.24) = ceil(7.83) = 8; 720p: ceil(11.75) = 12; 360x640: ceil(5.87) = 6.
    assert boundary_tolerance(480, 854) == 8
    assert boundary_tolerance(720, 1280) == 12
    assert boundary_tolerance(360, 640) == 6
    assert boundary_tolerance(360, 640, 0.010) == 8  # CMA
    assert boundary_tolerance(10, 10, 3) == 3  # >= 1: pixels
    with pytest.raises(ValueError):
        boundary_tolerance(10, 10, 0)
    with pytest.raises(ValueError):
        boundary_tolerance(10, 10, 2.5)


def test_disk_matches_skimage():
    sk = pytest.importorskip("skimage.morphology")
    for r in range(0, 13):
        assert np.array_equal(disk(r), sk.disk(r).astype(np.uint8))


def test_boundary_map_single_pixel():
    # A pixel at (1, 1) differs from its E/S/SE neighbours and is the E, S, SE neighbour of
    # (1, 0), (0, 1), (0, 0): the boundary is the 2x2 block towards the origin.
    m = np.zeros((4, 4), bool)
    m[1, 1] = True
    expected = np.zeros((4, 4), bool)
    expected[0:2, 0:2] = True
    assert np.array_equal(boundary_map(m), expected)


def test_boundary_map_frame_edges():
    # Full frame: no boundary at all. Bottom-right pixel alone: its W, N, NW neighbours are
    # boundary, the pixel itself never is.
    assert not boundary_map(np.ones((5, 6), bool)).any()
    m = np.zeros((3, 3), bool)
    m[2, 2] = True
    expected = np.zeros((3, 3), bool)
    expected[1, 1] = expected[1, 2] = expected[2, 1] = True
    assert np.array_equal(boundary_map(m), expected)
    # Vectorised over a leading axis, and equal to the definition on random masks.
    rng = np.random.default_rng(0)
    stack = rng.random((3, 7, 9)) < 0.5
    assert np.array_equal(boundary_map(stack), np.stack([brute_boundary(s) for s in stack]))
