"""The DAVIS 2017 semi-supervised protocol for one sequence: per-object, per-frame J and F."""

from __future__ import annotations

import numpy as np

from cmseg.metrics.vos.boundary import DEFAULT_BOUND_TH, boundary_tolerance
from cmseg.metrics.vos.frames import _frames_jf, _label_boxes
from cmseg.metrics.vos.inputs import _index_masks

# GT value the DAVIS toolkit treats as "void" (not an object); set to background for scoring.
_VOID = 255


def davis_sequence(
    pred: np.ndarray, gt: np.ndarray, bound_th: float = DEFAULT_BOUND_TH
) -> tuple[np.ndarray, np.ndarray]:
    """Per-object, per-frame J and F of one sequence under the DAVIS semi-supervised protocol.

    Args:
        pred: ``(T, H, W)`` integer index mask (0 = background, k = object k), ``T >= 3``.
        gt: same shape; 255 = void, treated as background (the toolkit does not pass void
            masks for this task).
        bound_th: F tolerance (DAVIS 0.008).

    Returns:
        ``(J, F)``: ``float64`` arrays of shape ``(K, T - 2)`` in ``[0, 1]``, K = max id of the
        first GT frame (after void removal); the first and last frames are not scored, and
        object ids that first appear later in the GT are ignored, as in the toolkit.

    Raises:
        ValueError: shapes differ, ``T < 3``, or the prediction uses an id above K in a scored
            frame (the toolkit exits on such results; it never reads the unscored frames).
    """
    p = _index_masks(pred, "pred")
    g = _index_masks(gt, "gt")
    if p.shape != g.shape:
        raise ValueError(f"pred and gt shapes differ: {p.shape} vs {g.shape}")
    t_all, h, w = g.shape
    if t_all < 3:
        raise ValueError(
            "the davis protocol needs at least 3 frames (first and last are not scored), "
            f"got {t_all}"
        )
    # GT void (255) is background: object ids are 1..max of the first frame without it.
    first = g[0]
    n_obj = int(np.where(first == _VOID, 0, first).max())
    p_in, g_in = p[1:-1], g[1:-1]
    # The toolkit reads predictions only for the scored frames, so only they are checked.
    pred_max = int(p_in.max())
    if pred_max > n_obj:
        raise ValueError(
            f"prediction has object id {pred_max} but the first GT frame has {n_obj} object(s)"
        )
    radius = boundary_tolerance(h, w, bound_th)
    j_all = np.empty((n_obj, t_all - 2), dtype=np.float64)
    f_all = np.empty((n_obj, t_all - 2), dtype=np.float64)
    all_boxes = _label_boxes(p_in, g_in, n_obj) if n_obj else None
    for k in range(1, n_obj + 1):
        # Objects are compared with k only inside their boxes (bool, 1 byte/pixel); a missing
        # predicted object is simply never equal to k (the toolkit's zero padding). GT ids
        # above n_obj (objects that appear later) and void never equal k either.
        boxes = None if all_boxes is None else all_boxes[k - 1]
        j_all[k - 1], f_all[k - 1] = _frames_jf(p_in, g_in, radius, label=k, boxes=boxes)
    return j_all, f_all
