"""Video object segmentation metrics: region similarity J and boundary accuracy F.

The per-frame definitions are those of the DAVIS 2017 evaluation toolkit
(davisvideochallenge/davis2017-evaluation), re-implemented here from their description:

* **J** (region): ``|P & G| / |P | G|``, and 1 when the union is empty (both masks empty).
* **F** (boundary): both masks are reduced to one-pixel boundary maps (``boundary_map``, the
  BSDS ``seg2bmap`` rule); each map is dilated by a disk of radius ``r`` pixels with
  ``r = ceil(bound_th * sqrt(H**2 + W**2))`` when ``bound_th < 1`` and ``r = bound_th`` otherwise.
  Precision = fraction of predicted boundary pixels inside the dilated GT boundary, recall =
  fraction of GT boundary pixels inside the dilated predicted boundary, ``F = 2PR / (P + R)``
  (0 when ``P + R == 0``). With no predicted boundary pixel ``P = 1``; with no GT boundary pixel
  ``R = 1``; so empty/empty gives F = 1 and exactly one empty side gives F = 0.
* Per sequence (or per object, or per expression) the per-frame values are summarised by
  ``statistics``: Mean, Recall (fraction of frames above 0.5) and Decay (first quarter minus
  last quarter), as the toolkit defines them, with its uint8 overflow fixed (see there).

Three evaluation protocols are available through :class:`VOSEvaluator`:

``"davis"``
    Semi-supervised DAVIS 2017. Index masks ``(T, H, W)``: 0 = background, k = object k, GT 255
    = void (treated as background, as the toolkit does for this task). Objects are
    ``1 .. max(first GT frame)``; the first and the last frame are not scored; a predicted
    object that is missing counts as an empty mask; a predicted id above the number of GT
    objects is an error (the toolkit exits). Statistics per object; the dataset numbers are
    means over all objects of all sequences.
``"mevis"``
    MeViS (tools/eval_mevis.py): one binary ``(T, H, W)`` GT per expression (the union of the
    referred objects, built by the caller), every frame scored, including frames whose GT is
    empty (J = F = 1 there if the prediction is empty, else 0 -- see the note in
    ``boundary_f`` for the one exception the boundary rule makes). Dataset numbers are means
    over expressions.
``"ytvos"``
    Ref-YouTube-VOS style: like ``"mevis"`` but only annotated frames are scored, which is the
    caller's job (pass only frames that have a GT file).

Masks stay ``bool``/``uint8`` throughout; the work per frame is restricted to the bounding box
of the two masks (plus one pixel), which gives exactly the full-frame result (see
``_frames_jf``) at a fraction of the cost.

Nothing here imports torch.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable
from functools import lru_cache
from typing import Any, NamedTuple

import cv2
import numpy as np

__all__ = [
    "DEFAULT_BOUND_TH",
    "PROTOCOLS",
    "Stats",
    "boundary_tolerance",
    "disk",
    "boundary_map",
    "jaccard",
    "boundary_f",
    "jaccard_and_f",
    "statistics",
    "davis_sequence",
    "VOSEvaluator",
]

#: DAVIS default boundary tolerance (fraction of the image diagonal). CMA uses 0.010.
DEFAULT_BOUND_TH = 0.008
#: Names accepted by ``VOSEvaluator(protocol=...)``.
PROTOCOLS = ("davis", "mevis", "ytvos")

# GT value the DAVIS toolkit treats as "void" (not an object); set to background for scoring.
_VOID = 255


class Stats(NamedTuple):
    """Summary of one per-frame score sequence (all Python floats, NaN only for no frames)."""

    mean: float
    """nanmean of the values, in [0, 1]."""
    recall: float
    """Fraction of frames with value > 0.5 (NaN frames count as misses), in [0, 1]."""
    decay: float
    """Mean of the first quarter minus mean of the last quarter, in [-1, 1]."""


# --------------------------------------------------------------------------------------------
# Small building blocks


def boundary_tolerance(height: int, width: int, bound_th: float = DEFAULT_BOUND_TH) -> int:
    """Dilation radius in pixels used by the boundary F measure.

    Args:
        height, width: frame size (the full frame, not a crop).
        bound_th: ``< 1``: fraction of the diagonal (DAVIS 0.008, CMA 0.010); ``>= 1``: a
            whole number of pixels.

    Returns:
        ``ceil(bound_th * sqrt(height**2 + width**2))`` if ``bound_th < 1`` else ``bound_th``;
        e.g. 8 for 480x854 at 0.008, 12 for 720x1280, 6 for 360x640 (8 at 0.010).
    """
    if not bound_th > 0:
        raise ValueError(f"bound_th must be > 0, got {bound_th!r}")
    if bound_th >= 1:
        if bound_th != int(bound_th):
            raise ValueError(f"bound_th >= 1 is a pixel count and must be whole, got {bound_th!r}")
        return int(bound_th)
    # Integer h*h + w*w is exact, and sqrt is correctly rounded, so this reproduces the
    # toolkit's np.ceil(bound_th * np.linalg.norm((h, w))) bit for bit.
    return math.ceil(bound_th * math.sqrt(height * height + width * width))


@lru_cache(maxsize=64)
def _disk_cached(radius: int) -> np.ndarray:
    offsets = np.arange(-radius, radius + 1)
    kernel = (offsets[:, None] ** 2 + offsets[None, :] ** 2 <= radius * radius).astype(np.uint8)
    kernel.setflags(write=False)
    return kernel


def disk(radius: int) -> np.ndarray:
    """Disk structuring element: ``uint8 (2r+1, 2r+1)``, 1 where ``dy**2 + dx**2 <= r**2``.

    The same set of offsets as ``skimage.morphology.disk(r)``, which the toolkit uses.
    """
    if radius < 0:
        raise ValueError(f"radius must be >= 0, got {radius}")
    return _disk_cached(int(radius)).copy()


def _as_bool_stack(mask: np.ndarray, name: str) -> np.ndarray:
    """Any bool/integer array ``(..., H, W)`` -> bool, nonzero = foreground (no copy for bool)."""
    mask = np.asarray(mask)
    if mask.ndim < 2:
        raise ValueError(f"{name} must have shape (..., H, W), got {mask.shape}")
    if mask.dtype == np.bool_:
        return mask
    if not np.issubdtype(mask.dtype, np.integer):
        # Probabilities or logits must be thresholded by the caller: the toolkit casts with
        # astype(bool), which would silently turn 0.01 into foreground.
        raise TypeError(f"{name} must be a bool or integer mask, got dtype {mask.dtype}")
    return mask != 0


def _check_pair(pred: np.ndarray, gt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    p = _as_bool_stack(pred, "pred")
    g = _as_bool_stack(gt, "gt")
    if p.shape != g.shape:
        raise ValueError(f"pred and gt shapes differ: {p.shape} vs {g.shape}")
    return p, g


def boundary_map(mask: np.ndarray) -> np.ndarray:
    """One-pixel boundary of binary masks (BSDS ``seg2bmap``, as in the DAVIS toolkit).

    Pixel ``(i, j)`` is a boundary pixel when it differs from its east, south or south-east
    neighbour, considering only neighbours inside the frame. So the boundary sits half a pixel
    towards the origin, the last row compares only with the east neighbour, the last column only
    with the south one, the bottom-right pixel is never a boundary, and a mask covering the
    whole frame has no boundary at all.

    Args:
        mask: ``(..., H, W)`` bool or integer (nonzero = foreground).

    Returns:
        ``bool`` array of the same shape.
    """
    m = _as_bool_stack(mask, "mask")
    return _bmap(m)


def _bmap(m: np.ndarray) -> np.ndarray:
    b = np.zeros(m.shape, dtype=bool)
    np.not_equal(m[..., :, :-1], m[..., :, 1:], out=b[..., :, :-1])
    b[..., :-1, :] |= m[..., :-1, :] != m[..., 1:, :]
    b[..., :-1, :-1] |= m[..., :-1, :-1] != m[..., 1:, 1:]
    return b


def jaccard(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """Region similarity J per frame, vectorised over all leading axes.

    Args:
        pred, gt: ``(..., H, W)`` bool or integer masks (nonzero = foreground), same shape.

    Returns:
        ``float64`` array of shape ``(...)`` in ``[0, 1]``; 1 where both masks are empty.
    """
    p, g = _check_pair(pred, gt)
    inter = np.count_nonzero(p & g, axis=(-2, -1))
    union = np.count_nonzero(p | g, axis=(-2, -1))
    out = np.ones(np.shape(union), dtype=np.float64)
    np.divide(inter, union, out=out, where=union > 0)
    return out


def boundary_f(pred: np.ndarray, gt: np.ndarray, bound_th: float = DEFAULT_BOUND_TH) -> np.ndarray:
    """Boundary F measure per frame, vectorised over all leading axes.

    Args:
        pred, gt: ``(..., H, W)`` bool or integer masks (nonzero = foreground), same shape.
        bound_th: tolerance, see ``boundary_tolerance``.

    Returns:
        ``float64`` array of shape ``(...)`` in ``[0, 1]``. Note the toolkit's rule is about
        boundary pixels, not foreground pixels: a mask that covers the whole frame has no
        boundary, so it scores F = 1 against an empty mask (J is 0 there).
    """
    return jaccard_and_f(pred, gt, bound_th)[1]


def jaccard_and_f(
    pred: np.ndarray, gt: np.ndarray, bound_th: float = DEFAULT_BOUND_TH
) -> tuple[np.ndarray, np.ndarray]:
    """J and F per frame in one pass (cheaper than ``jaccard`` + ``boundary_f``).

    Args:
        pred, gt: ``(..., H, W)`` bool or integer masks (nonzero = foreground), same shape.
        bound_th: tolerance, see ``boundary_tolerance``.

    Returns:
        ``(J, F)``: two ``float64`` arrays of shape ``(...)`` in ``[0, 1]``.
    """
    p, g = _check_pair(pred, gt)
    lead = p.shape[:-2]
    h, w = p.shape[-2:]
    radius = boundary_tolerance(h, w, bound_th)
    j, f = _frames_jf(p.reshape(-1, h, w), g.reshape(-1, h, w), radius)
    return j.reshape(lead), f.reshape(lead)


def _boxes_from_rows_cols(
    rows: np.ndarray, cols: np.ndarray
) -> list[tuple[int, int, int, int, int]]:
    """``(t, y0, y1, x0, x1)`` (inclusive) of every frame with foreground, from (N, H) / (N, W)."""
    h, w = rows.shape[1], cols.shape[1]
    present = np.flatnonzero(rows.any(axis=1))
    rows, cols = rows[present], cols[present]
    y0s = rows.argmax(axis=1).tolist()
    y1s = (h - 1 - rows[:, ::-1].argmax(axis=1)).tolist()
    x0s = cols.argmax(axis=1).tolist()
    x1s = (w - 1 - cols[:, ::-1].argmax(axis=1)).tolist()
    return list(zip(present.tolist(), y0s, y1s, x0s, x1s, strict=True))


def _bool_boxes(p: np.ndarray, g: np.ndarray) -> list[tuple[int, int, int, int, int]]:
    """Union bounding boxes of two bool stacks ``(N, H, W)``: three cheap passes."""
    union = p | g
    return _boxes_from_rows_cols(union.any(axis=2), union.any(axis=1))


def _label_boxes(
    p: np.ndarray, g: np.ndarray, n_obj: int
) -> list[list[tuple[int, int, int, int, int]]] | None:
    """Union boxes of objects ``1..n_obj`` of two index stacks in one pass, or None.

    Each pixel becomes the bit ``1 << id`` (ids of 16 and more, 255 included, shift out to 0),
    so one OR-reduction over rows and one over columns give the rows/columns where each object
    occurs, instead of a compare and three passes per object.
    """
    if n_obj > 15 or p.dtype not in (np.uint8, np.uint16) or g.dtype not in (np.uint8, np.uint16):
        return None
    one = np.uint8(1) if n_obj <= 7 else np.uint16(1)
    bits = np.left_shift(one, p)
    bits |= np.left_shift(one, g)
    rows = np.bitwise_or.reduce(bits, axis=2)
    cols = np.bitwise_or.reduce(bits, axis=1)
    del bits
    return [
        _boxes_from_rows_cols(((rows >> k) & 1) != 0, ((cols >> k) & 1) != 0)
        for k in range(1, n_obj + 1)
    ]


def _frames_jf(
    p: np.ndarray,
    g: np.ndarray,
    radius: int,
    label: int | None = None,
    boxes: list[tuple[int, int, int, int, int]] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """J and F of each frame of two stacks ``(N, H, W)``; ``radius`` from the full frame.

    ``p``, ``g`` are bool masks (``label`` None) or index masks of which object ``label`` is
    scored. ``boxes``: the union boxes from ``_bool_boxes`` / ``_label_boxes`` (computed here
    when None); frames without a box are empty in both masks and keep J = F = 1.

    Why cropping is exact: all foreground of both masks lies in their union bounding box
    ``[y0, y1] x [x0, x1]``; a boundary pixel differs from a neighbour to its east/south, so
    every boundary pixel lies in the window ``[y0-1, y1] x [x0-1, x1]``. J only needs the
    foreground; F only needs the dilated maps *at* boundary pixels, and a dilation evaluated
    inside the window only sees boundary pixels, which are all inside the window. The boundary
    of the window's last row/column needs the row/column after it, so the boundary is computed
    on the window extended by one row and one column (where the frame has them); where the
    window touches the frame edge the frame-edge rule of ``boundary_map`` applies unchanged.
    OpenCV pads dilations with "nothing", exactly like the full-frame dilation at frame edges.
    """
    n, h, w = p.shape
    j_out = np.ones(n, dtype=np.float64)
    f_out = np.ones(n, dtype=np.float64)
    kernel = _disk_cached(radius)
    if boxes is None:
        boxes = _bool_boxes(p, g) if label is None else _bool_boxes(p == label, g == label)

    for t, y0, y1, x0, x1 in boxes:
        wy0 = max(y0 - 1, 0)
        wx0 = max(x0 - 1, 0)
        wy1 = y1 + 1  # exclusive end of the boundary window
        wx1 = x1 + 1
        ey1 = min(wy1 + 1, h)  # extended by one row / column where the frame has it
        ex1 = min(wx1 + 1, w)
        pc = p[t, wy0:ey1, wx0:ex1]
        gc = g[t, wy0:ey1, wx0:ex1]
        if label is not None:
            pc = pc == label  # GT void (255) is never a label: background, as in the toolkit
            gc = gc == label

        inter = np.count_nonzero(pc & gc)
        uni = np.count_nonzero(pc | gc)
        j_out[t] = inter / uni  # uni > 0: the frame has foreground

        both = _bmap(np.stack((pc, gc)))[:, : wy1 - wy0, : wx1 - wx0]
        bp, bg = both[0], both[1]
        n_p = np.count_nonzero(bp)
        n_g = np.count_nonzero(bg)
        if n_p == 0 and n_g == 0:
            continue  # P = R = 1 -> F = 1 (e.g. both masks cover the whole frame)
        if n_p == 0 or n_g == 0:
            f_out[t] = 0.0  # (P, R) = (1, 0) or (0, 1) -> F = 0
            continue
        dil_g = cv2.dilate(bg.view(np.uint8), kernel)
        dil_p = cv2.dilate(bp.view(np.uint8), kernel)
        m_p = np.count_nonzero(bp & dil_g.view(bool))
        m_g = np.count_nonzero(bg & dil_p.view(bool))
        # Same float operations, in the same order, as the toolkit: identical results.
        precision = m_p / n_p
        recall = m_g / n_g
        if precision + recall == 0:
            f_out[t] = 0.0
        else:
            f_out[t] = 2 * precision * recall / (precision + recall)
    return j_out, f_out


# --------------------------------------------------------------------------------------------
# Statistics


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


# --------------------------------------------------------------------------------------------
# DAVIS protocol for one sequence


def _index_masks(mask: np.ndarray, name: str) -> np.ndarray:
    mask = np.asarray(mask)
    if mask.ndim != 3:
        raise ValueError(f"{name} must have shape (T, H, W), got {mask.shape}")
    if mask.dtype == np.bool_:
        return mask.view(np.uint8)
    if not np.issubdtype(mask.dtype, np.integer):
        raise TypeError(f"{name} must be an integer index mask, got dtype {mask.dtype}")
    if mask.dtype in (np.uint8, np.uint16):
        return mask
    if mask.size and mask.min() < 0:
        raise ValueError(f"{name} has negative object ids")
    return mask


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
            f"the davis protocol needs at least 3 frames (first and last are not scored), got {t_all}"
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


# --------------------------------------------------------------------------------------------
# Evaluator


def _stats_dict(s: Stats) -> dict[str, float]:
    return {"mean": s.mean, "recall": s.recall, "decay": s.decay}


def _entry_dict(j: Stats, f: Stats, n_frames: int) -> dict[str, Any]:
    return {
        "J&F": (j.mean + f.mean) / 2,
        "J": _stats_dict(j),
        "F": _stats_dict(f),
        "frames": n_frames,
    }


class VOSEvaluator:
    """Accumulates J/F statistics over sequences (davis) or expressions (mevis, ytvos).

    Usage::

        ev = VOSEvaluator("davis")
        for name, pred, gt in sequences:
            ev.update(pred, gt, name)
        ev.compute()   # {"J&F": .., "J": {"mean", "recall", "decay"}, "F": {...}}

    Dataset-level numbers (as the DAVIS toolkit and MeViS's script compute them): every
    *unit* -- an object of a sequence for ``"davis"``, an expression for ``"mevis"``/``"ytvos"``
    -- has its own Stats for J and for F; each dataset number is the plain mean over units of
    that unit-level number (J-mean, J-recall, J-decay, F-...), every unit weighted equally
    whatever its length, and ``J&F = (J-mean + F-mean) / 2``. Units are averaged in sorted
    ``(name, object id)`` order so the result does not depend on the order of ``update`` or
    ``merge`` calls (another order could only change the last bits).

    The state is a dict of per-unit Stats (small, picklable); evaluators built in several
    processes are combined with ``merge``.

    Args:
        protocol: ``"davis"``, ``"mevis"`` or ``"ytvos"`` (see the module docstring).
        bound_th: F tolerance; ``None`` = 0.008 (DAVIS). CMA's protocol uses 0.010.
    """

    def __init__(self, protocol: str = "davis", bound_th: float | None = None) -> None:
        if protocol not in PROTOCOLS:
            raise ValueError(f"unknown protocol {protocol!r}; expected one of {PROTOCOLS}")
        self.protocol = protocol
        self.bound_th = DEFAULT_BOUND_TH if bound_th is None else float(bound_th)
        boundary_tolerance(480, 854, self.bound_th)  # validate early
        # name -> {object id: (J Stats, F Stats, n_frames)} for davis,
        # name -> (J Stats, F Stats, n_frames) otherwise.
        self._units: dict[str, Any] = {}

    def reset(self) -> None:
        """Forget everything accumulated so far."""
        self._units = {}

    def __len__(self) -> int:
        """Number of sequences / expressions seen."""
        return len(self._units)

    def update(self, pred: np.ndarray, gt: np.ndarray, name: str) -> dict[str, Any]:
        """Score one sequence (davis) or one expression (mevis, ytvos).

        Args:
            pred, gt: ``(T, H, W)``. davis: integer index masks (``uint8``/``uint16``; GT 255 =
                void), ``T >= 3``. mevis/ytvos: bool or integer binary masks (nonzero =
                foreground), ``T >= 1``; ytvos: annotated frames only.
            name: unique key of the sequence / expression (e.g. ``"video/exp_id"``).

        Returns:
            The entry that ``per_sequence()[name]`` will hold.

        Raises:
            ValueError: bad shapes, a repeated name, or (davis) predicted ids above the number
                of GT objects.
        """
        if name in self._units:
            raise ValueError(f"{name!r} was already evaluated")
        if self.protocol == "davis":
            j_all, f_all = davis_sequence(pred, gt, self.bound_th)
            n = j_all.shape[1]
            self._units[name] = {
                k + 1: (statistics(j_all[k]), statistics(f_all[k]), n)
                for k in range(j_all.shape[0])
            }
        else:
            p, g = _check_pair(pred, gt)
            if p.ndim != 3 or p.shape[0] == 0:
                raise ValueError(
                    f"pred and gt must have shape (T, H, W) with T >= 1, got {p.shape}"
                )
            j, f = _frames_jf(p, g, boundary_tolerance(p.shape[1], p.shape[2], self.bound_th))
            self._units[name] = (statistics(j), statistics(f), p.shape[0])
        return self._entry(name)

    def merge(self, other: VOSEvaluator) -> VOSEvaluator:
        """Add the units of ``other`` (same protocol and bound_th, disjoint names); returns self."""
        if not isinstance(other, VOSEvaluator):
            raise TypeError(f"cannot merge {type(other).__name__} into VOSEvaluator")
        if (other.protocol, other.bound_th) != (self.protocol, self.bound_th):
            raise ValueError(
                f"cannot merge {other.protocol}/bound_th={other.bound_th} into "
                f"{self.protocol}/bound_th={self.bound_th}"
            )
        common = self._units.keys() & other._units.keys()
        if common:
            raise ValueError(f"both evaluators scored {sorted(common)[:3]}")
        self._units.update(other._units)
        return self

    def _unit_list(self) -> list[tuple[Stats, Stats]]:
        units: list[tuple[Stats, Stats]] = []
        for name in sorted(self._units):
            entry = self._units[name]
            if self.protocol == "davis":
                units.extend(entry[k][:2] for k in sorted(entry))
            else:
                units.append(entry[:2])
        return units

    def compute(self) -> dict[str, Any]:
        """Dataset-level numbers (Python floats).

        Returns:
            ``{"J&F": float, "J": {"mean", "recall", "decay"}, "F": {"mean", "recall", "decay"}}``;
            each J/F value is the mean over units (objects for davis, expressions otherwise)
            of that unit's statistic; ``J&F = (J.mean + F.mean) / 2``.

        Raises:
            RuntimeError: nothing scored yet (or, davis, no sequence had an object).
        """
        units = self._unit_list()
        if not units:
            raise RuntimeError("VOSEvaluator.compute() called before any object was scored")
        arr = np.array([[*j, *f] for j, f in units], dtype=np.float64)  # (units, 6)
        # np.mean over each column, as the toolkit's np.mean over its per-object lists.
        jm, jr, jd, fm, fr, fd = (float(np.mean(arr[:, i])) for i in range(6))
        return {
            "J&F": (jm + fm) / 2,
            "J": {"mean": jm, "recall": jr, "decay": jd},
            "F": {"mean": fm, "recall": fr, "decay": fd},
        }

    def per_sequence(self) -> dict[str, Any]:
        """Per-unit results, sorted by name.

        Returns:
            davis: ``{name: {object_id (int): entry}}``; mevis/ytvos: ``{name: entry}``, where
            ``entry = {"J&F": float, "J": {"mean", "recall", "decay"}, "F": {...},
            "frames": int}`` (``frames`` = number of scored frames).
        """
        return {name: self._entry(name) for name in sorted(self._units)}

    def _entry(self, name: str) -> dict[Any, Any]:
        unit = self._units[name]
        if self.protocol == "davis":
            return {k: _entry_dict(*unit[k]) for k in sorted(unit)}
        return _entry_dict(*unit)

    def __getstate__(self) -> dict[str, Any]:
        return {"protocol": self.protocol, "bound_th": self.bound_th, "units": self._units}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.protocol = state["protocol"]
        self.bound_th = state["bound_th"]
        self._units = state["units"]

    def __repr__(self) -> str:
        return f"VOSEvaluator(protocol={self.protocol!r}, bound_th={self.bound_th}, units={len(self._units)})"
