"""IoU-family metrics on binary masks: referring image segmentation and object co-segmentation.

* :class:`RISEvaluator`: per-sentence intersection and union, then overall IoU (sum I / sum U),
  mean IoU and prec@0.5..0.9, under one of three named conventions that the field's code bases
  use (they disagree only on empty targets and on IoUs that sit exactly on a threshold).
* :class:`CosegEvaluator`: co-segmentation precision P (pixel accuracy) and Jaccard J
  (foreground IoU) per image, with SSNM's adaptive binarisation of soft maps.

Both evaluators keep one small record per item, so their state merges by concatenation:
evaluate shards of a folder in several processes, pickle the evaluators back and ``merge`` them.
Nothing here imports torch; the float32 arithmetic of the torch-based references is reproduced
with numpy.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

PREC_THRESHOLDS: tuple[float, ...] = (0.5, 0.6, 0.7, 0.8, 0.9)
"""The IoU thresholds X of prec@X, as written in the reference code (Python floats)."""

RIS_CONVENTIONS: tuple[str, ...] = ("lavt", "cris", "mttr")
"""Names accepted by ``RISEvaluator(convention=...)``; see :class:`RISEvaluator`."""

COSEG_EMPTY_GT: tuple[str, ...] = ("zero", "match")
"""Names accepted by ``CosegEvaluator(empty_gt=...)``; see :class:`CosegEvaluator`."""

_EPS = 1e-6  # the smoothing term of the CRIS and MTTR IoU formulas


# --------------------------------------------------------------------------------------------
# Binary masks and counts


def to_bool_mask(mask: Any, name: str = "mask") -> np.ndarray:
    """Return ``mask`` as a 2-D bool array, refusing anything that is not clearly binary.

    Args:
        mask: (H, W) array: bool, or numbers holding only 0 and 1, or uint8 holding only 0
            and 255 (a PNG mask as read from disk).
        name: what to call the array in error messages.

    Returns:
        (H, W) bool array (no copy when ``mask`` is already bool).

    Raises:
        ValueError: not 2-D, or values other than the binary ones above (a soft map passed
            by mistake would otherwise be binarised silently at > 0).
    """
    array = np.asarray(mask)
    if array.ndim != 2 or array.size == 0:
        raise ValueError(f"{name} must be a non-empty 2-D (H, W) array, got shape {array.shape}")
    if array.dtype == np.bool_:
        return array
    if array.dtype.kind not in "uif":
        raise ValueError(f"{name} must be bool or numeric, got dtype {array.dtype}")
    foreground = array != 0
    on_values = array[foreground]
    if on_values.size and not (
        np.all(on_values == 1) or (array.dtype == np.uint8 and np.all(on_values == 255))
    ):
        raise ValueError(f"{name} is not binary: expected values 0/1 (or 0/255 for uint8)")
    return foreground


def intersection_union(pred: Any, gt: Any) -> tuple[int, int]:
    """Pixel counts |pred & gt| and |pred | gt| of two binary masks.

    Args:
        pred, gt: (H, W) binary masks of the same shape (see :func:`to_bool_mask`).

    Returns:
        (intersection, union), Python ints, 0 <= intersection <= union <= H*W.
    """
    pred_b, gt_b = _bool_pair(pred, gt)
    inter = int(np.count_nonzero(pred_b & gt_b))
    union = int(np.count_nonzero(pred_b | gt_b))
    return inter, union


def _bool_pair(pred: Any, gt: Any) -> tuple[np.ndarray, np.ndarray]:
    pred_b = to_bool_mask(pred, "pred")
    gt_b = to_bool_mask(gt, "gt")
    if pred_b.shape != gt_b.shape:
        raise ValueError(f"pred has shape {pred_b.shape} but gt has shape {gt_b.shape}")
    return pred_b, gt_b


# --------------------------------------------------------------------------------------------
# RIS conventions


def _iou_lavt(inter: np.ndarray, union: np.ndarray) -> np.ndarray:
    # LAVT: I/U in float64, and an explicit 0 when the union is empty.
    safe_union = np.maximum(union, 1)
    return np.where(union > 0, inter / safe_union, 0.0)


def _iou_cris(inter: np.ndarray, union: np.ndarray) -> np.ndarray:
    # CRIS: np.sum(I) / (np.sum(U) + 1e-6) in float64, so empty/empty -> 0 and a perfect
    # mask scores slightly below 1.
    return inter / (union + _EPS)


def _iou_mttr(inter: np.ndarray, union: np.ndarray) -> np.ndarray:
    # MTTR/ReferFormer compute (I + 1e-6) / (U + 1e-6) on float32 torch tensors; float32
    # matters at exact ratios (70/100 -> 0.69999999 < 0.7), so it is reproduced here (like
    # torch float32 sums, counts above 2**24 are no longer exact).
    eps = np.float32(_EPS)
    iou32 = (inter.astype(np.float32) + eps) / (union.astype(np.float32) + eps)
    return iou32.astype(np.float64)


def _cris_thresholds() -> np.ndarray:
    """The values of ``torch.arange(0.5, 1.0, 0.1)`` (float32), widened to float64.

    CRIS compares its float64 IoUs with these float32 thresholds; torch promotes the
    0-dim float32 threshold to float64, so the comparison is against e.g. 0.699999988.
    ``np.arange(..., dtype=np.float32)`` would NOT reproduce them (it gives 0.70000005);
    start + i * step rounded to float32 does.
    """
    steps = np.arange(len(PREC_THRESHOLDS), dtype=np.float64)
    return (0.5 + steps * 0.1).astype(np.float32).astype(np.float64)


@dataclass(frozen=True)
class _RISConvention:
    iou: Callable[[np.ndarray, np.ndarray], np.ndarray]
    thresholds: np.ndarray  # float64 values the IoUs are compared with
    strict: bool  # True: IoU > X counts; False: IoU >= X counts
    empty_value: float  # the IoU of an empty target with an empty prediction


_CONVENTIONS: dict[str, _RISConvention] = {
    "lavt": _RISConvention(_iou_lavt, np.asarray(PREC_THRESHOLDS), strict=False, empty_value=0.0),
    "cris": _RISConvention(_iou_cris, _cris_thresholds(), strict=True, empty_value=0.0),
    "mttr": _RISConvention(_iou_mttr, np.asarray(PREC_THRESHOLDS), strict=True, empty_value=1.0),
}


def ris_iou(intersection: Any, union: Any, convention: str = "lavt") -> np.ndarray:
    """Per-item IoU under a RIS convention (vectorised).

    Args:
        intersection, union: (N,) non-negative integer pixel counts.
        convention: one of :data:`RIS_CONVENTIONS`.

    Returns:
        (N,) float64 IoUs in [0, 1].
    """
    rule = _convention(convention)
    inter = np.asarray(intersection, dtype=np.int64)
    uni = np.asarray(union, dtype=np.int64)
    return rule.iou(inter, uni)


def ris_hits(ious: Any, convention: str = "lavt") -> np.ndarray:
    """Which items pass each prec@X threshold under a convention.

    Args:
        ious: (N,) IoUs as returned by :func:`ris_iou` for the same convention.
        convention: one of :data:`RIS_CONVENTIONS`.

    Returns:
        (N, 5) bool array, column k for threshold ``PREC_THRESHOLDS[k]``.
    """
    rule = _convention(convention)
    values = np.asarray(ious, dtype=np.float64)[:, None]
    if rule.strict:
        return values > rule.thresholds[None, :]
    return values >= rule.thresholds[None, :]


def ris_scores(intersection: Any, union: Any, convention: str = "lavt") -> dict[str, float]:
    """oIoU, mIoU and prec@X of a set of items from their counts.

    Args:
        intersection, union: (N,) integer pixel counts, N >= 1.
        convention: one of :data:`RIS_CONVENTIONS`.

    Returns:
        {"oIoU", "mIoU", "prec@0.5", ..., "prec@0.9", "num_items"}; every score in [0, 1].
        oIoU is sum I / sum U in every convention; when every union is empty it takes the
        convention's empty/empty IoU (0 for lavt and cris, 1 for mttr).
    """
    rule = _convention(convention)
    inter = np.asarray(intersection, dtype=np.int64)
    uni = np.asarray(union, dtype=np.int64)
    if inter.size == 0:
        raise ValueError("no items to score: call update() first")
    ious = rule.iou(inter, uni)
    hits = ris_hits(ious, convention)
    total_union = int(uni.sum())
    overall = int(inter.sum()) / total_union if total_union else rule.empty_value
    scores = {"oIoU": float(overall), "mIoU": float(ious.mean())}
    for k, threshold in enumerate(PREC_THRESHOLDS):
        scores[f"prec@{threshold}"] = float(hits[:, k].mean())
    scores["num_items"] = int(inter.size)
    return scores


def _convention(name: str) -> _RISConvention:
    try:
        return _CONVENTIONS[name]
    except KeyError:
        raise ValueError(
            f"unknown RIS convention {name!r}; choose one of {', '.join(RIS_CONVENTIONS)}"
        ) from None


class RISEvaluator:
    """Referring image segmentation scores: oIoU, mIoU, prec@0.5..0.9 (one item per sentence).

    Conventions (reference notes: metrics_anchors.md 4.1, cmpc_refseg.md 5):

    ========  ==========================  =====================  ======================
    name      IoU of one item             empty target & pred    prec@X counts when
    ========  ==========================  =====================  ======================
    "lavt"    I / U (float64)             0                      IoU >= X
    "cris"    I / (U + 1e-6) (float64)    0                      IoU > float32(X)
    "mttr"    (I + 1e-6) / (U + 1e-6),    1                      IoU > X
              computed in float32
    ========  ==========================  =====================  ======================

    oIoU = sum I / sum U is the same in all three. They differ only when a target is empty or
    an IoU lands exactly on a threshold: I/U = 1/2 passes prec@0.5 under lavt and mttr but not
    cris (1/(2+1e-6) < 0.5); 70/100 passes prec@0.7 under lavt and cris (0.7 > 0.699999988)
    but not mttr (float32 rounds the ratio to 0.699999988 < 0.7).

    The default is "lavt" because it is the convention of the oIoU lineage cmseg's RIS method
    belongs to: CMPC/RRN compute I/U with prec ``>=`` (identical to lavt on RefCOCO, whose
    targets are never empty), and LAVT's code is the one later RefCOCO papers report with.
    Use "cris" to compare with CRIS-derived mIoU tables and "mttr" for A2D/JHMDB-style numbers.
    """

    def __init__(self, convention: str = "lavt") -> None:
        """Args: convention: one of :data:`RIS_CONVENTIONS` (default "lavt", see above)."""
        _convention(convention)  # fail early on a typo
        self.convention = convention
        self.reset()

    def reset(self) -> None:
        """Forget every item."""
        self._inter: list[int] = []
        self._union: list[int] = []
        self._names: list[str | None] = []

    def __len__(self) -> int:
        return len(self._inter)

    def update(self, pred: Any, gt: Any, name: str | None = None) -> None:
        """Add one sentence.

        Args:
            pred: (H, W) binary predicted mask (bool, 0/1, or uint8 0/255).
            gt: (H, W) binary target mask, same shape.
            name: optional identifier kept for :meth:`per_item`.
        """
        inter, union = intersection_union(pred, gt)
        self.update_counts(inter, union, name)

    def update_counts(self, intersection: int, union: int, name: str | None = None) -> None:
        """Add one sentence from counts already computed elsewhere (e.g. from RLE masks).

        Args:
            intersection, union: pixel counts, 0 <= intersection <= union.
            name: optional identifier kept for :meth:`per_item`.
        """
        inter, uni = int(intersection), int(union)
        if not 0 <= inter <= uni:
            raise ValueError(f"need 0 <= intersection <= union, got {inter} and {uni}")
        self._inter.append(inter)
        self._union.append(uni)
        self._names.append(name)

    def merge(self, other: RISEvaluator) -> None:
        """Append the items of ``other`` (same convention) after this evaluator's items."""
        if not isinstance(other, RISEvaluator) or other.convention != self.convention:
            raise ValueError("can only merge a RISEvaluator with the same convention")
        self._inter.extend(other._inter)
        self._union.extend(other._union)
        self._names.extend(other._names)

    def compute(self) -> dict[str, float]:
        """Scores over every item added so far.

        Returns:
            {"oIoU", "mIoU", "prec@0.5", "prec@0.6", "prec@0.7", "prec@0.8", "prec@0.9",
            "num_items"}: Python floats in [0, 1] (num_items an int).

        Raises:
            ValueError: no item was added.
        """
        return ris_scores(self._inter, self._union, self.convention)

    def per_item(self) -> list[dict[str, Any]]:
        """One dict per item in insertion order: {"name", "intersection", "union", "iou"}."""
        if not self._inter:
            return []
        ious = ris_iou(self._inter, self._union, self.convention)
        return [
            {"name": name, "intersection": inter, "union": uni, "iou": float(iou)}
            for name, inter, uni, iou in zip(
                self._names, self._inter, self._union, ious, strict=True
            )
        ]


# --------------------------------------------------------------------------------------------
# Co-segmentation


def soft_map_to_float(pred: Any) -> np.ndarray:
    """A predicted co-segmentation map as float32 probabilities in [0, 1].

    Args:
        pred: (H, W) uint8 0..255 (divided by 255 in float32, as torchvision's ToTensor does
            when SSNM's PNGs are read back), float in [0, 1], or bool.

    Returns:
        (H, W) float32 array in [0, 1].
    """
    array = np.asarray(pred)
    if array.ndim != 2 or array.size == 0:
        raise ValueError(f"pred must be a non-empty 2-D (H, W) array, got shape {array.shape}")
    if array.dtype == np.uint8:
        return array.astype(np.float32) / np.float32(255.0)
    if array.dtype == np.bool_:
        return array.astype(np.float32)
    if array.dtype.kind != "f":
        raise ValueError(f"pred must be uint8 0..255, float in [0, 1] or bool, got {array.dtype}")
    if not np.all(np.isfinite(array)):
        raise ValueError("pred contains NaN or infinity")
    if array.min() < 0.0 or array.max() > 1.0:
        raise ValueError("float pred must lie in [0, 1]")
    return array.astype(np.float32, copy=False)


def adaptive_threshold(prob: np.ndarray, cap: float = 0.8) -> np.float32:
    """SSNM's per-image threshold t = min(mean + std, cap).

    Computed like SSNM's tools.py: ``np.mean`` and ``np.std`` (population std, ddof=0) of the
    float32 probability map on the 0..1 scale, float32 throughout.

    Args:
        prob: (H, W) float32 probabilities in [0, 1] (see :func:`soft_map_to_float`).
        cap: upper bound of the threshold (SSNM 0.8; UFO uses 0.5).

    Returns:
        The threshold as a float32 scalar; foreground is ``prob > t`` (strict).
    """
    threshold = prob.mean() + prob.std()
    if threshold > cap:
        threshold = np.float32(cap)
    return np.float32(threshold)


def binarize_soft_map(
    pred: Any, threshold: float | None = None, cap: float = 0.8
) -> tuple[np.ndarray, float]:
    """Binarise a predicted map the way SSNM does, or at a fixed threshold.

    Args:
        pred: (H, W) uint8 0..255, float in [0, 1], or bool.
        threshold: fixed threshold in [0, 1] on the 0..1 scale; None for SSNM's adaptive
            ``min(mean + std, cap)``.
        cap: cap of the adaptive threshold.

    Returns:
        ((H, W) bool foreground ``prob > t``, t as a Python float).
    """
    prob = soft_map_to_float(pred)
    t = adaptive_threshold(prob, cap) if threshold is None else np.float32(threshold)
    return prob > t, float(t)


def precision_jaccard(mask: Any, gt: Any, empty_gt: str = "zero") -> tuple[float, float]:
    """Co-segmentation P and J of one binarised prediction.

    Args:
        mask: (H, W) binary prediction.
        gt: (H, W) binary ground truth, same shape.
        empty_gt: J when the ground truth is empty: "zero" -> 0 whatever the prediction
            (SSNM: I / (U + 1e-10) = 0); "match" -> 1 if the prediction is empty too, else 0.

    Returns:
        (P, J): P = (TP + TN) / (H * W), pixel accuracy in [0, 1]; J = |S & G| / |S | G|
        in [0, 1].
    """
    if empty_gt not in COSEG_EMPTY_GT:
        raise ValueError(f"empty_gt must be one of {', '.join(COSEG_EMPTY_GT)}, got {empty_gt!r}")
    mask_b, gt_b = _bool_pair(mask, gt)
    inter = int(np.count_nonzero(mask_b & gt_b))
    union = int(np.count_nonzero(mask_b | gt_b))
    precision = int(np.count_nonzero(mask_b == gt_b)) / gt_b.size
    if not gt_b.any():
        jaccard = 1.0 if (empty_gt == "match" and union == 0) else 0.0
    else:
        jaccard = inter / union
    return precision, jaccard


class CosegEvaluator:
    """Object co-segmentation precision P and Jaccard J (Rubinstein et al. 2013 measures).

    Per image: P = (TP + TN) / (H * W) (pixel accuracy, not detection precision) and
    J = foreground IoU. Soft maps are binarised per image at SSNM's adaptive threshold
    ``prob > min(mean + std, cap)`` (reference: ssnm_coseg.md 6; mean and population std of the
    float32 map on the 0..1 scale, strict ``>``), or at ``prob > threshold`` when one is given.
    SSNM evaluates at 224 x 224 (prediction and ground truth resized); resize before
    :meth:`update` to reproduce its tables, as ``cmseg evaluate coseg`` does under its default
    ``ssnm`` protocol (the coseg task's ``evaluate.py``).

    Averages (compute()):

    * "P", "J": mean over all images, pooled across classes. This is what SSNM's val.py does
      and what its paper's "Ave." columns report.
    * "P_classes", "J_classes": mean over classes of the per-class means, the convention of
      some older rows in the same tables (e.g. Rubinstein et al. on iCoseg). Equal to the
      above when every class has the same number of images (MSRC).

    Empty ground truth (Internet "noise" images): with ``empty_gt="zero"`` (default, SSNM) J
    is 0 whatever the prediction; ``"match"`` gives J = 1 when the prediction is empty too.
    P needs no special case.
    """

    def __init__(
        self, threshold: float | None = None, cap: float = 0.8, empty_gt: str = "zero"
    ) -> None:
        """Args:
        threshold: fixed binarisation threshold in [0, 1], or None for SSNM's adaptive one.
        cap: upper bound of the adaptive threshold (SSNM 0.8).
        empty_gt: "zero" or "match", see the class docstring.
        """
        if threshold is not None and not 0.0 <= threshold <= 1.0:
            raise ValueError(f"threshold must lie in [0, 1], got {threshold}")
        if not 0.0 <= cap <= 1.0:
            raise ValueError(f"cap must lie in [0, 1], got {cap}")
        if empty_gt not in COSEG_EMPTY_GT:
            raise ValueError(f"empty_gt must be one of {', '.join(COSEG_EMPTY_GT)}")
        self.threshold = threshold
        self.cap = cap
        self.empty_gt = empty_gt
        self.reset()

    def _settings(self) -> tuple[float | None, float, str]:
        return (self.threshold, self.cap, self.empty_gt)

    def reset(self) -> None:
        """Forget every image."""
        self._items: list[tuple[str, str, float, float, float]] = []  # cls, name, P, J, t

    def __len__(self) -> int:
        return len(self._items)

    def update(self, pred: Any, gt: Any, cls: str, name: str) -> None:
        """Add one image.

        Args:
            pred: (H, W) soft map, uint8 0..255 or float in [0, 1] (bool also accepted).
            gt: (H, W) binary ground truth (bool, 0/1, or uint8 0/255), same shape.
            cls: the image's class (group) name.
            name: the image's name, kept for :meth:`per_item`.
        """
        mask, t = binarize_soft_map(pred, self.threshold, self.cap)
        precision, jaccard = precision_jaccard(mask, gt, self.empty_gt)
        self._items.append((str(cls), str(name), precision, jaccard, t))

    def merge(self, other: CosegEvaluator) -> None:
        """Append the images of ``other`` (same settings) after this evaluator's images."""
        if not isinstance(other, CosegEvaluator) or other._settings() != self._settings():
            raise ValueError("can only merge a CosegEvaluator with the same settings")
        self._items.extend(other._items)

    def per_class(self) -> dict[str, dict[str, float]]:
        """{class: {"P", "J", "num_items"}}, classes in order of first appearance."""
        groups: dict[str, list[tuple[float, float]]] = {}
        for cls, _name, precision, jaccard, _t in self._items:
            groups.setdefault(cls, []).append((precision, jaccard))
        result = {}
        for cls, values in groups.items():
            array = np.asarray(values, dtype=np.float64)
            result[cls] = {
                "P": float(array[:, 0].mean()),
                "J": float(array[:, 1].mean()),
                "num_items": len(values),
            }
        return result

    def per_item(self) -> list[dict[str, Any]]:
        """One dict per image in insertion order: {"class", "name", "P", "J", "threshold"}."""
        return [
            {"class": cls, "name": name, "P": p, "J": j, "threshold": t}
            for cls, name, p, j, t in self._items
        ]

    def compute(self) -> dict[str, float]:
        """Scores over every image added so far.

        Returns:
            {"P", "J" (mean over images, SSNM), "P_classes", "J_classes" (mean over
            classes), "num_classes", "num_items"}; scores are Python floats in [0, 1].

        Raises:
            ValueError: no image was added.
        """
        if not self._items:
            raise ValueError("no items to score: call update() first")
        scores = np.asarray([(p, j) for _c, _n, p, j, _t in self._items], dtype=np.float64)
        classes = self.per_class()
        return {
            "P": float(scores[:, 0].mean()),
            "J": float(scores[:, 1].mean()),
            "P_classes": float(np.mean([c["P"] for c in classes.values()])),
            "J_classes": float(np.mean([c["J"] for c in classes.values()])),
            "num_classes": len(classes),
            "num_items": len(self._items),
        }
