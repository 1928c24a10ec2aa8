"""Per-frame J and F of cmseg.metrics.vos: hand-computed cases and properties.

Expected values are worked out by hand in the comments; a brute-force boundary F written from
the definition checks the fast (cropped) path on random masks.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from vos_cases import brute_f, square

from cmseg.metrics.vos import (
    DEFAULT_BOUND_TH,
    boundary_f,
    jaccard,
    jaccard_and_f,
)


def test_jaccard_tiny():
    gt = np.zeros((4, 5), np.uint8)
    gt[1:3, 1:3] = 1  # 4 pixels
    pred = np.zeros((4, 5), np.uint8)
    pred[1:3, 1:4] = 7  # 6 pixels, nonzero = foreground, contains gt
    assert jaccard(pred, gt) == pytest.approx(4 / 6)
    # one pixel off: I = 1, U = 2 + 2 - 1 ... pred {(0,0),(0,1)}, gt {(0,1),(1,1)}: I=1, U=3.
    p = np.zeros((2, 2), bool)
    g = np.zeros((2, 2), bool)
    p[0, :] = True
    g[:, 1] = True
    assert jaccard(p, g) == pytest.approx(1 / 3)
    # Vectorised: (2, 4, 5) -> (2,)
    out = jaccard(np.stack([pred, pred]), np.stack([gt, np.zeros_like(gt)]))
    assert out.shape == (2,) and out.tolist() == pytest.approx([4 / 6, 0.0])


def test_empty_empty_and_one_side_empty():
    z = np.zeros((2, 12, 15), bool)
    one = z.copy()
    one[:, 3:6, 4:9] = True
    j, f = jaccard_and_f(z, z)
    assert j.tolist() == [1.0, 1.0] and f.tolist() == [1.0, 1.0]
    for a, b in ((one, z), (z, one)):
        j, f = jaccard_and_f(a, b)
        assert j.tolist() == [0.0, 0.0] and f.tolist() == [0.0, 0.0]


def test_full_frame_mask_has_no_boundary():
    # The toolkit's rule works on boundary pixels: a whole-frame mask has none, so against an
    # empty mask P = R = 1 -> F = 1 while J = 0. Documented quirk, kept for identical numbers.
    full = np.ones((1, 6, 6), bool)
    j, f = jaccard_and_f(full, np.zeros_like(full))
    assert j[0] == 0.0 and f[0] == 1.0


def test_one_pixel_shift():
    # Single pixel at (1,1) vs (1,2), r = 1. Boundaries: {(0,0),(0,1),(1,0),(1,1)} and
    # {(0,1),(0,2),(1,1),(1,2)}; every pixel of each is within 1 of the other -> F = 1, J = 0.
    g = np.zeros((5, 6), bool)
    p = np.zeros((5, 6), bool)
    g[1, 1] = True
    p[1, 2] = True
    j, f = jaccard_and_f(p, g, bound_th=1)
    assert (j, f) == (0.0, 1.0)
    # Shift by 2: pred boundary {(0,2),(0,3),(1,2),(1,3)}: (0,2),(1,2) are 1 away from gt's
    # (0,1),(1,1); (0,3),(1,3) are 2 away -> P = 1/2, and R = 1/2 by symmetry -> F = 1/2.
    p2 = np.zeros((5, 6), bool)
    p2[1, 3] = True
    assert boundary_f(p2, g, bound_th=1) == 0.5
    # With the default relative tolerance a 5x6 frame gets r = ceil(0.008 * 7.8) = 1 as well.
    assert boundary_f(p2, g) == 0.5


def test_shift_inside_and_outside_tolerance_half_plane():
    # GT = columns 0..9 of a 20x30 frame: boundary = column 9 (20 pixels). Pred = columns
    # 0..9+s: boundary = column 9+s. Every boundary pixel is exactly s from the other boundary.
    r = 3
    gt = np.zeros((20, 30), bool)
    gt[:, :10] = True
    for s, expected in ((r, 1.0), (r + 1, 0.0)):
        pred = np.zeros_like(gt)
        pred[:, : 10 + s] = True
        assert boundary_f(pred, gt, bound_th=r) == expected
        assert jaccard(pred, gt) == pytest.approx(10 / (10 + s))


def test_shift_inside_and_outside_tolerance_square():
    # GT: 10x10 square at rows/cols 10..19 of 32x40 -> boundary = ring (9,9)..(19,19), 40 px.
    # Pred: the same square shifted right by s, ring columns 9+s..19+s. r = 2.
    # s = 2: every pred ring pixel is within 2 of the gt ring -> P = R = 1, F = 1.
    # s = 3: top row (row 9, cols 12..22): cols 12..19 lie on the gt ring, 20 and 21 are 1 and 2
    #   from (9, 19), 22 is 3 away -> 10 of 11; bottom row likewise 10 of 11; left side (col 12,
    #   rows 10..18) is 3 from gt col 9 but within 2 of gt rows 9 / 19 for rows 10, 11, 17, 18
    #   -> 4 of 9; right side (col 22) is 3 from gt col 19 -> 0 of 9. P = 24/40 = 0.6, R = 0.6
    #   by mirror symmetry, F = 0.6. J = 70 / 130.
    r = 2
    gt = square(32, 40, 10, 10, 10)
    pred = square(32, 40, 10, 10 + r, 10)
    assert boundary_f(pred, gt, bound_th=r) == 1.0
    pred = square(32, 40, 10, 10 + r + 1, 10)
    j, f = jaccard_and_f(pred, gt, bound_th=r)
    assert f == pytest.approx(0.6, abs=1e-15)
    assert j == pytest.approx(70 / 130)


def test_masks_touching_frame_edges_match_brute_force():
    rng = np.random.default_rng(3)
    for _ in range(60):
        h, w = rng.integers(2, 12, 2)
        p = rng.random((h, w)) < 0.6
        g = rng.random((h, w)) < 0.6
        p[-1, :] |= rng.random() < 0.5  # often touch the last row / column
        g[:, -1] |= rng.random() < 0.5
        r = int(rng.integers(1, 4))
        assert boundary_f(p, g, bound_th=r) == brute_f(p, g, r)


def test_input_validation():
    with pytest.raises(ValueError):
        jaccard(np.zeros((3, 4), bool), np.zeros((4, 3), bool))
    with pytest.raises(TypeError):
        boundary_f(np.zeros((3, 4)), np.zeros((3, 4)))  # float probabilities
    with pytest.raises(ValueError):
        jaccard(np.zeros(4, bool), np.zeros(4, bool))


masks = st.tuples(st.integers(1, 3), st.integers(1, 14), st.integers(1, 14)).flatmap(
    lambda shape: st.tuples(arrays(np.bool_, shape), arrays(np.bool_, shape))
)


@settings(max_examples=150, deadline=None)
@given(masks, st.sampled_from([DEFAULT_BOUND_TH, 0.1, 1, 2, 3]))
def test_property_range_and_perfect(pair, bound_th):
    pred, gt = pair
    j, f = jaccard_and_f(pred, gt, bound_th)
    assert j.shape == f.shape == pred.shape[:1]
    assert np.all((j >= 0) & (j <= 1)) and np.all((f >= 0) & (f <= 1))
    jp, fp = jaccard_and_f(gt, gt, bound_th)
    assert np.all(jp == 1) and np.all(fp == 1)
    # Symmetric in (pred, gt), and equal to the plain J.
    j2, f2 = jaccard_and_f(gt, pred, bound_th)
    assert np.array_equal(j, j2) and np.array_equal(f, f2)
    assert np.array_equal(j, jaccard(pred, gt))


@settings(max_examples=150, deadline=None)
@given(masks, st.integers(1, 4))
def test_property_fast_f_equals_brute_force(pair, radius):
    pred, gt = pair
    f = boundary_f(pred, gt, bound_th=radius)
    for t in range(pred.shape[0]):
        assert f[t] == brute_f(pred[t], gt[t], radius)
