"""Tests of cmseg.metrics.vos (DAVIS J&F, statistics, protocols, evaluator).

Expected values are worked out by hand in the comments; a brute-force boundary F written from
the definition (loops and explicit distances, no OpenCV) checks the fast path on random masks.
"""

from __future__ import annotations

import json
import math
import pickle

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from cmseg.metrics.vos import (
    DEFAULT_BOUND_TH,
    Stats,
    VOSEvaluator,
    boundary_f,
    boundary_map,
    boundary_tolerance,
    davis_sequence,
    disk,
    jaccard,
    jaccard_and_f,
    statistics,
)

# --------------------------------------------------------------------------------------------
# Helpers


def square(h: int, w: int, top: int, left: int, size: int) -> np.ndarray:
    m = np.zeros((h, w), bool)
    m[top : top + size, left : left + size] = True
    return m


def brute_boundary(m: np.ndarray) -> np.ndarray:
    """Boundary from the definition: differs from an in-frame E, S or SE neighbour."""
    h, w = m.shape
    b = np.zeros_like(m, dtype=bool)
    for i in range(h):
        for j in range(w):
            for di, dj in ((0, 1), (1, 0), (1, 1)):
                if i + di < h and j + dj < w and m[i, j] != m[i + di, j + dj]:
                    b[i, j] = True
    return b


def brute_f(pred: np.ndarray, gt: np.ndarray, radius: int) -> float:
    bp, bg = brute_boundary(pred), brute_boundary(gt)
    pts_p, pts_g = np.argwhere(bp), np.argwhere(bg)
    if len(pts_p) == 0 and len(pts_g) == 0:
        return 1.0
    if len(pts_p) == 0 or len(pts_g) == 0:
        return 0.0
    d2 = ((pts_p[:, None, :] - pts_g[None, :, :]) ** 2).sum(-1)
    precision = np.count_nonzero((d2 <= radius * radius).any(1)) / len(pts_p)
    recall = np.count_nonzero((d2 <= radius * radius).any(0)) / len(pts_g)
    if precision + recall == 0:
        return 0.0
    return 2 * precision * recall / (precision + recall)


# --------------------------------------------------------------------------------------------
# Building blocks


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


# --------------------------------------------------------------------------------------------
# Statistics


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


# --------------------------------------------------------------------------------------------
# DAVIS protocol


def davis_gt_pred():
    """5 frames 20x24, objects 1 (square) and 2 (bar); frames 0 and 4 are not scored."""
    t, h, w = 5, 20, 24
    gt = np.zeros((t, h, w), np.uint8)
    gt[:, 2:8, 2:8] = 1
    gt[:, 12:16, 4:20] = 2
    gt[:, 0, :] = 255  # void row: background for scoring, not an object
    pred = gt.copy()
    pred[pred == 255] = 0
    return gt, pred


def test_davis_first_and_last_frames_ignored():
    gt, pred = davis_gt_pred()
    pred[0] = 0  # garbage in the unscored frames changes nothing
    pred[-1] = 0
    pred[-1, 5:10, 5:10] = 1
    j, f = davis_sequence(pred, gt)
    assert j.shape == (2, 3) and np.all(j == 1) and np.all(f == 1)


def test_davis_missing_object_is_empty():
    gt, pred = davis_gt_pred()
    pred[pred == 2] = 0
    gt[2, gt[2] == 2] = 0  # object 2 absent from GT frame 2 -> empty/empty there
    j, f = davis_sequence(pred, gt)
    assert j[0].tolist() == [1, 1, 1]
    assert j[1].tolist() == [0, 1, 0] and f[1].tolist() == [0, 1, 0]


def test_davis_extra_object_is_an_error_only_in_scored_frames():
    gt, pred = davis_gt_pred()
    pred0 = pred.copy()
    pred0[0, 1, 1] = 3  # unscored frame: never read by the toolkit
    davis_sequence(pred0, gt)
    pred[2, 1, 1] = 3
    with pytest.raises(ValueError, match="object id 3"):
        davis_sequence(pred, gt)


def test_davis_objects_from_first_frame_only():
    gt, pred = davis_gt_pred()
    gt[0][gt[0] == 2] = 0  # first frame has object 1 only -> K = 1
    j, f = davis_sequence(np.where(pred == 2, 0, pred), gt)
    assert j.shape == (1, 3)
    with pytest.raises(ValueError):  # predicting id 2 is now "extra"
        davis_sequence(pred, gt)


def test_davis_needs_three_frames():
    gt, pred = davis_gt_pred()
    with pytest.raises(ValueError):
        davis_sequence(pred[:2], gt[:2])


def test_davis_evaluator_global_numbers():
    # Sequence "a": object 1 perfect (J = F = 1 on 3 frames), object 2 missing (0 on 3 frames).
    # Sequence "b": one object, perfect. Per object J-Mean: 1, 0, 1 -> mean 2/3, same for F;
    # J&F = 2/3. Recall 1, 0, 1 -> 2/3. Decay 0 everywhere.
    gt, pred = davis_gt_pred()
    ev = VOSEvaluator("davis")
    ev.update(np.where(pred == 2, 0, pred), gt, "a")
    gt_b = np.where(gt == 2, 0, gt)  # keeps the void row
    ev.update(np.where(gt_b == 255, 0, gt_b), gt_b, "b")
    res = ev.compute()
    assert res["J&F"] == pytest.approx(2 / 3)
    assert res["J"] == pytest.approx({"mean": 2 / 3, "recall": 2 / 3, "decay": 0.0})
    assert res["F"] == pytest.approx({"mean": 2 / 3, "recall": 2 / 3, "decay": 0.0})
    assert type(res["J&F"]) is float and all(type(x) is float for x in res["F"].values())
    per = ev.per_sequence()
    assert list(per) == ["a", "b"] and list(per["a"]) == [1, 2] and list(per["b"]) == [1]
    assert per["a"][2]["J"]["mean"] == 0.0 and per["a"][2]["frames"] == 3
    json.dumps({"global": res, "per_sequence": per})  # plain Python types only


# --------------------------------------------------------------------------------------------
# MeViS / Ref-YouTube-VOS protocols


def test_mevis_empty_gt_frames_count():
    # Frame 0: GT empty, pred empty -> 1. Frame 1: GT empty, pred not -> 0. Frame 2: equal -> 1.
    gt = np.zeros((3, 16, 16), bool)
    pred = np.zeros_like(gt)
    pred[1, 4:8, 4:8] = True
    gt[2, 2:9, 3:7] = True
    pred[2] = gt[2]
    ev = VOSEvaluator("mevis")
    entry = ev.update(pred, gt, "v/0")
    assert entry["J"]["mean"] == pytest.approx(2 / 3)
    assert entry["F"]["mean"] == pytest.approx(2 / 3)
    assert entry["frames"] == 3
    # A second expression, perfect: dataset J = mean over expressions = (2/3 + 1) / 2.
    ev.update(gt, gt, "v/1")
    res = ev.compute()
    assert res["J"]["mean"] == pytest.approx(5 / 6) and res["J&F"] == pytest.approx(5 / 6)


def test_ytvos_scores_every_frame_given_and_accepts_uint8():
    gt = np.zeros((2, 10, 10), np.uint8)
    gt[:, 2:5, 2:5] = 1
    pred = gt * 255  # nonzero = foreground
    pred[1] = 0
    ev = VOSEvaluator("ytvos", bound_th=0.010)
    entry = ev.update(pred, gt, "x")
    assert entry["J"]["mean"] == 0.5 and entry["J"]["recall"] == 0.5 and entry["frames"] == 2


# --------------------------------------------------------------------------------------------
# Evaluator state


def test_evaluator_merge_pickle_reset():
    rng = np.random.default_rng(7)
    data = []
    for i in range(4):
        gt = rng.random((4, 12, 14)) < 0.3
        pred = gt ^ (rng.random(gt.shape) < 0.1)
        data.append((f"s{i}", pred, gt))
    whole = VOSEvaluator("mevis")
    for name, p, g in data:
        whole.update(p, g, name)
    a, b = VOSEvaluator("mevis"), VOSEvaluator("mevis")
    for name, p, g in data[2:]:
        a.update(p, g, name)  # other order on purpose
    for name, p, g in data[:2]:
        b.update(p, g, name)
    b = pickle.loads(pickle.dumps(b))
    a.merge(b)
    assert a.compute() == whole.compute()
    assert a.per_sequence() == whole.per_sequence()
    with pytest.raises(ValueError):
        a.merge(b)  # names already present
    with pytest.raises(ValueError):
        a.merge(VOSEvaluator("ytvos"))
    with pytest.raises(ValueError):
        a.update(data[0][1], data[0][2], "s0")
    a.reset()
    assert len(a) == 0
    with pytest.raises(RuntimeError):
        a.compute()
    with pytest.raises(ValueError):
        VOSEvaluator("davis2016")
    assert VOSEvaluator().bound_th == DEFAULT_BOUND_TH


# --------------------------------------------------------------------------------------------
# Properties

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


@pytest.mark.parametrize("n_obj", [3, 9, 17])
def test_davis_fast_paths_agree_with_per_object_masks(n_obj):
    # uint8 ids use one bit-packed pass (<= 7 objects: uint8 bits, <= 15: uint16), more objects
    # or other dtypes compare per object; all must equal J/F of the explicit binary masks.
    rng = np.random.default_rng(n_obj)
    t, h, w = 6, 24, 30
    gt = rng.integers(0, n_obj + 1, (t, 6, 6), dtype=np.uint8).repeat(4, 1).repeat(5, 2)
    gt[0, 0, : n_obj + 1] = np.arange(n_obj + 1)  # every object in the first frame
    gt[2, 5:9, 5:9] = 255  # void
    pred = rng.integers(0, n_obj + 1, (t, h, w), dtype=np.uint8)
    pred[:, 10:] = gt[:, 10:]
    pred[pred == 255] = 0
    j, f = davis_sequence(pred, gt)
    j64, f64 = davis_sequence(pred.astype(np.int64), gt.astype(np.int64))
    assert np.array_equal(j, j64) and np.array_equal(f, f64)
    for k in range(1, n_obj + 1):
        jk, fk = jaccard_and_f(pred[1:-1] == k, gt[1:-1] == k)
        assert np.array_equal(j[k - 1], jk) and np.array_equal(f[k - 1], fk)
