"""The weighted F-measure's fast path against its definition (scipy) and the reference.

Also the building blocks of the band's nearest-pixel search (:func:`_first_hit`,
:func:`_nearest_offsets`).
"""

from __future__ import annotations

import numpy as np
import pytest
from sod_cases import (
    PARITY_CASES,
    TOL,
    reference_of,
    soft,
)

from cmseg.metrics import sod
from cmseg.metrics.sod import score_image


@pytest.mark.parametrize("name,pred,gt", PARITY_CASES[::3], ids=[c[0] for c in PARITY_CASES[::3]])
def test_weighted_fmeasure_fast_path_equals_scipy_definition(name, pred, gt):
    pair = sod.prepare_pair(pred, gt)
    fast = sod.weighted_fmeasure(pair)
    assert fast == pytest.approx(sod.weighted_fmeasure_reference(pair.norm_map, pair.mask), abs=TOL)


@pytest.mark.parametrize(
    "shape,columns",
    [
        ((3, 4200), None),  # wider than 4096: the scipy path
        ((4, 1500), [0, 1]),  # distances up to ~1500: clipped into B's table (B = 2.0 beyond 270)
    ],
)
def test_weighted_fmeasure_far_from_the_object(shape, columns):
    rng = np.random.default_rng(3)
    gt = np.zeros(shape, np.uint8)
    gt[1, columns if columns else rng.integers(0, shape[1], 40)] = 255
    pred = soft(rng, gt)
    ref, _ = reference_of([(pred, gt)])
    assert score_image(pred, gt).scalars["wfm"] == pytest.approx(ref["wfm"], abs=TOL)


def test_nearest_foreground_tie_rule_matches_scipy():
    """The band's nearest-pixel search must pick scipy's pixel among equidistant ones
    (the reference path takes scipy's feature transform as is)."""
    rng = np.random.default_rng(4)
    for _ in range(30):
        fg = rng.random((25, 31)) < rng.uniform(0.02, 0.4)
        if not fg.any():
            continue
        # a map whose error differs between neighbours makes any other choice visible in wF
        pred = rng.permutation(np.arange(fg.size) % 256).reshape(fg.shape).astype(np.uint8)
        pair = sod.prepare_pair(pred, fg.astype(np.uint8) * 255)
        fast = sod.weighted_fmeasure(pair)
        assert fast == pytest.approx(
            sod.weighted_fmeasure_reference(pair.norm_map, pair.mask), abs=TOL
        )


def test_first_hit():
    hits = np.array(
        [[0, 0, 1, 1, 0, 0, 0, 1], [1, 0, 0, 0, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0, 0, 1]], np.uint8
    )
    assert sod._first_hit(hits).tolist() == [2, 0, 7]
    assert sod._first_hit(np.zeros((2, 8), np.uint8)) is None


def test_nearest_offsets_order():
    table = sod._nearest_offsets(100)
    # k = 1: left, up, down, right (smallest column first, then smallest row)
    assert table[1, :4].tolist() == [-1, -100, 100, 1] and table[1, 4:].tolist() == [0] * 4
    assert table[3].tolist() == [0] * 8  # 3 is not a sum of two squares
