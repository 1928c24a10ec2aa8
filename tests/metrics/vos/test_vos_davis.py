"""The DAVIS 2017 semi-supervised protocol of one sequence (cmseg.metrics.vos.davis_sequence)."""

from __future__ import annotations

import numpy as np
import pytest
from vos_cases import davis_gt_pred

from cmseg.metrics.vos import (
    davis_sequence,
    jaccard_and_f,
)


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
