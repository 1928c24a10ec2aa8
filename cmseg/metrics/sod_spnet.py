"""The ``spnet`` SOD protocol: the four numbers of SPNet's evaluator, quirks included.

SPNet's ``test_evaluation_maps.py`` (with ``Code/utils/evaluator.py`` and ``EvalDataset``;
XMSNet ships the same files) reports MAE, S-measure, max F-measure and a "max E-measure".
This module computes exactly those, with the evaluator's conventions, which differ from
PySODMetrics' (:mod:`cmseg.metrics.sod`) in many ways:

* Inputs: both images are converted to grey with PIL's ``convert("L")`` (ITU-R 601-2 luma,
  :func:`to_grey`) and a prediction of another size is resized to the GT with PIL's bilinear
  filter (:func:`resize_to`); the caller does both. Then both are divided by 255 and nothing
  else: **no min-max stretching of the prediction and no binarisation of the GT**. A grey
  (anti-aliased) GT stays soft, in [0, 1].
* Pairing: SPNet pairs the two folders by sorted position, so one missing file shifts every
  later pair. That is **not** replicated: the caller pairs files by name.
* MAE: mean |P - G| per image, averaged over the images whose MAE is not NaN.
* S-measure (alpha 0.5) on the soft GT. With y = mean(G): y == 0 gives 1 - mean(P), y == 1
  gives mean(P); otherwise 0.5 S_object + 0.5 S_region:

  - S_object uses only the pixels where G is exactly 1 (foreground term, on P) and exactly 0
    (background term, on 1 - P), weighted by y and 1 - y; ``2 m / (m^2 + 1 + s + 1e-20)``
    with the sample standard deviation s (torch's default). One such pixel gives s = NaN,
    none gives m = NaN: the image's S is then NaN.
  - S_region splits at the GT centroid ``(round(sum_i i * rowmass_i / mass), ...)``, 0-based
    and rounded half to even, with no "+1" (unlike PySODMetrics); a centroid in row or column
    0 leaves a quadrant empty, whose NaN SSIM makes the image's S NaN.
  - NaN S values are **not** skipped: they make the dataset's S NaN, as in SPNet.
  - A negative S would crash SPNet (``torch.FLoatTensor`` typo on the clipping line); here it
    is clipped to 0, which is what that line means.
* max F (beta^2 0.3): 255 thresholds ``linspace(0, 1 - 1e-10, 255)`` in float32 (i.e.
  i / 254, the last one 1.0), binarisation ``P >= t``; with the **soft** G,
  TP = sum(binary * G), precision = TP / (#binary + 1e-20), recall = TP / (sum G + 1e-20).
  Precision and recall are averaged over all images first; F of the mean curves, NaN set to
  0, and its maximum is reported. An empty GT has recall 0 at every threshold.
* "max E": despite the name and the loop over 255 thresholds, every iteration computes the same
  unthresholded value, the enhanced alignment of the continuous maps:
  ``sum(((xi + 1) / 2)^2) / (N - 1 + 1e-20)`` with ``xi = 2 phiG phiP / (phiG^2 + phiP^2 +
  1e-20)``, phi = map minus its mean. No special case for an empty or full GT: an empty
  prediction on an empty GT scores 0.25 (and a perfect map on a full GT too), a perfect map
  N / (N - 1) (1.0002 at 60x80). Averaged over the images whose value is not NaN.

Arithmetic: SPNet runs float32 torch (on the GPU by default); this module uses float64 with
means computed exactly from integer sums. Values agree to float32 rounding (~1e-6), except where
SPNet's own result hinges on rounding noise: in a region where both maps are constant the
float32 mean need not equal the constant, and the SSIM branch ``alpha == 0 and beta == 0``
then flips between 1 and 0. Here a constant region has exactly zero variance.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from cmseg.metrics.sod import check_pair

NUM_THRESHOLDS: int = 255
"""Thresholds of SPNet's PR curve."""

F_BETA2: float = 0.3
"""beta^2 of the F-measure."""

_SMOOTH = 1e-20  # the constant SPNet adds to denominators
_ALPHA = 0.5  # S-measure weight of the object term


def to_grey(image: np.ndarray) -> np.ndarray:
    """Convert an image to grey exactly as PIL's ``Image.convert("L")`` (SPNet's loader).

    Args:
        image: (H, W) uint8 (returned as is), (H, W, 3) RGB or (H, W, 4) RGBA uint8.

    Returns:
        (H, W) uint8, L = R * 299/1000 + G * 587/1000 + B * 114/1000 (PIL's integer rounding).
    """
    from PIL import Image

    if image.ndim == 2:
        return image
    return np.asarray(Image.fromarray(np.ascontiguousarray(image)).convert("L"))


def resize_to(pred: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Resize a grey prediction to the GT's (H, W) with PIL's bilinear filter, as SPNet does.

    Returns:
        (H, W) uint8, or ``pred`` itself when the size already matches.
    """
    from PIL import Image

    height, width = int(shape[0]), int(shape[1])
    if pred.shape[:2] == (height, width):
        return pred
    return np.asarray(Image.fromarray(pred).resize((width, height), Image.BILINEAR))


# --------------------------------------------------------------------------------------------
# Statistics of (prediction, GT) grey-level pairs


@dataclass(frozen=True)
class LevelPairs:
    """The distinct (prediction level, GT level) pairs of a region and their pixel counts.

    Every quantity here is a sum over pixels of a function of the two levels, so summing over
    the distinct pairs is exact and cheap.
    """

    pred: np.ndarray  # (K,) prediction levels 0..255, int64
    gt: np.ndarray  # (K,) GT levels 0..255, int64
    count: np.ndarray  # (K,) pixels, int64

    @staticmethod
    def of(pred: np.ndarray, gt: np.ndarray) -> LevelPairs:
        """The pairs of two same-shaped uint8 arrays (one 65536-bin histogram of both)."""
        keys = pred.astype(np.int64).ravel() | (gt.astype(np.int64).ravel() << 8)
        counts = np.bincount(keys, minlength=1 << 16)
        nonzero = np.flatnonzero(counts)
        return LevelPairs(pred=nonzero & 255, gt=nonzero >> 8, count=counts[nonzero])

    @property
    def n(self) -> int:
        """Pixels in the region."""
        return int(self.count.sum())

    def means(self) -> tuple[float, float]:
        """Exact means of P and G (integer sums, one rounding); NaN for an empty region."""
        n = self.n
        if n == 0:
            return float("nan"), float("nan")
        return int(self.count @ self.pred) / (255 * n), int(self.count @ self.gt) / (255 * n)


def _ssim(region: LevelPairs) -> float:
    """SPNet's ``_ssim`` of one S-measure quadrant (soft GT); NaN for an empty quadrant."""
    n = region.n
    if n == 0:
        return float("nan")
    x, y = region.means()
    dx, dy = region.pred / 255 - x, region.gt / 255 - y
    den = n - 1 + _SMOOTH
    var_x = region.count @ (dx * dx) / den
    var_y = region.count @ (dy * dy) / den
    cov = region.count @ (dx * dy) / den
    alpha = 4 * x * y * cov
    beta = (x * x + y * y) * (var_x + var_y)
    if alpha != 0:
        return float(alpha / (beta + _SMOOTH))
    return 1.0 if beta == 0 else 0.0


def _object_term(values: np.ndarray, counts: np.ndarray) -> float:
    """``2 m / (m^2 + 1 + s + 1e-20)`` over some pixels; NaN for fewer than two pixels.

    m is the mean, s the sample standard deviation (torch's ``std()``): NaN for one pixel,
    and the mean of no pixel is NaN too.
    """
    n = int(counts.sum())
    if n < 2:
        return float("nan")
    mean = counts @ values / n
    std = np.sqrt(counts @ (values - mean) ** 2 / (n - 1))
    return float(2 * mean / (mean * mean + 1 + std + _SMOOTH))


def _centroid(gt: np.ndarray) -> tuple[int, int]:
    """SPNet's 0-based GT centroid (row Y, column X) of the soft GT mass, rounded half to even."""
    mass = int(gt.sum(dtype=np.int64))
    rows = gt.sum(axis=1, dtype=np.int64)
    cols = gt.sum(axis=0, dtype=np.int64)
    y = int(rows @ np.arange(rows.size)) / mass
    x = int(cols @ np.arange(cols.size)) / mass
    return int(round(y)), int(round(x))


def smeasure(pred: np.ndarray, gt: np.ndarray, pairs: LevelPairs | None = None) -> float:
    """SPNet's S-measure of one image (may be NaN, see the module docstring).

    Args:
        pred, gt: (H, W) uint8 grey maps (the GT may be soft).
        pairs: the image's level pairs, if already computed.
    """
    pairs = pairs if pairs is not None else LevelPairs.of(pred, gt)
    mean_p, mean_g = pairs.means()
    if mean_g == 0:
        return 1.0 - mean_p
    if mean_g == 1:
        return mean_p
    values = pairs.pred / 255
    fg, bg = pairs.gt == 255, pairs.gt == 0  # the pixels where G is exactly 1 / exactly 0
    s_object = mean_g * _object_term(values[fg], pairs.count[fg]) + (1 - mean_g) * _object_term(
        1 - values[bg], pairs.count[bg]
    )

    height, width = gt.shape
    cy, cx = _centroid(gt)
    area = height * width
    w1 = cx * cy / area
    w2 = (width - cx) * cy / area
    w3 = cx * (height - cy) / area
    weights = (w1, w2, w3, 1 - w1 - w2 - w3)
    parts = [
        (slice(0, cy), slice(0, cx)),
        (slice(0, cy), slice(cx, width)),
        (slice(cy, height), slice(0, cx)),
        (slice(cy, height), slice(cx, width)),
    ]
    s_region = sum(
        w * _ssim(LevelPairs.of(pred[rs, cs], gt[rs, cs]))
        for w, (rs, cs) in zip(weights, parts, strict=True)
    )
    score = _ALPHA * s_object + (1 - _ALPHA) * s_region
    return max(score, 0.0) if not np.isnan(score) else float("nan")


def enhanced_alignment(pairs: LevelPairs) -> float:
    """SPNet's "max E" of one image: the enhanced alignment of the continuous maps."""
    mean_p, mean_g = pairs.means()
    phi_p, phi_g = pairs.pred / 255 - mean_p, pairs.gt / 255 - mean_g
    align = 2 * phi_g * phi_p / (phi_g * phi_g + phi_p * phi_p + _SMOOTH)
    return float(pairs.count @ ((align + 1) ** 2 / 4) / (pairs.n - 1 + _SMOOTH))


def pr_curve(pairs: LevelPairs) -> tuple[np.ndarray, np.ndarray]:
    """SPNet's per-image precision and recall at its 255 thresholds, with the soft GT.

    Threshold i is i / 254 in float32 (``linspace(0, 1 - 1e-10, 255)``; 1 - 1e-10 rounds to
    1.0). Level v passes it when v / 255 >= i / 254, i.e. 254 v >= 255 i: the two sides are
    either equal (i = 0 or 254) or at least 1.5e-5 apart, far more than float32 rounding, so
    the integer test decides exactly as SPNet does.

    Returns:
        (precision, recall), each (255,) float64 in [0, 1], thresholds ascending.
    """
    count_per_level = np.bincount(pairs.pred, weights=pairs.count, minlength=256)
    gt_per_level = np.bincount(pairs.pred, weights=pairs.count * pairs.gt, minlength=256)
    # pixels (and GT mass, in 1/255 units) at level >= v, for v = 0..255, then at threshold i
    count_at_least = np.cumsum(count_per_level[::-1])[::-1]
    gt_at_least = np.cumsum(gt_per_level[::-1])[::-1]
    first_level = -(-255 * np.arange(NUM_THRESHOLDS) // 254)  # ceil(255 i / 254)
    tp = gt_at_least[first_level] / 255
    predicted = count_at_least[first_level]
    gt_total = gt_per_level.sum() / 255
    return tp / (predicted + _SMOOTH), tp / (gt_total + _SMOOTH)


def _f_of(precision: np.ndarray, recall: np.ndarray) -> np.ndarray:
    """F (beta^2 0.3) of precision/recall curves, 0 where it is 0/0 (SPNet's NaN rule)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        score = (1 + F_BETA2) * precision * recall / (F_BETA2 * precision + recall)
    return np.nan_to_num(score, nan=0.0)


# --------------------------------------------------------------------------------------------
# Evaluator


@dataclass
class SPNetState:
    """Additive state of :class:`SPNetEvaluator` (picklable).

    Attributes:
        count: images scored (all of them: S and the PR curves average over all).
        mae_sum, mae_count: sum and number of the non-NaN per-image MAEs; same for E.
        sm_sum: sum of the per-image S values (NaN propagates, as in SPNet).
        precision_sum, recall_sum: (255,) sums of the per-image curves.
        items: ``(name or None, per-image scores)`` in scoring order.
    """

    count: int = 0
    mae_sum: float = 0.0
    mae_count: int = 0
    sm_sum: float = 0.0
    e_sum: float = 0.0
    e_count: int = 0
    precision_sum: np.ndarray = field(default_factory=lambda: np.zeros(NUM_THRESHOLDS))
    recall_sum: np.ndarray = field(default_factory=lambda: np.zeros(NUM_THRESHOLDS))
    items: list[tuple[str | None, dict[str, float]]] = field(default_factory=list)


class SPNetEvaluator:
    """SPNet's four SOD numbers (see the module docstring for every convention).

    ``compute()`` returns ``{"mae", "sm", "maxf", "maxe"}``: mean MAE, mean S-measure, the max
    over thresholds of the F-measure of the dataset-mean PR curve, and the mean of SPNet's
    "max E" (the unthresholded enhanced alignment). Evaluators combine with ``merge``.
    """

    def __init__(self) -> None:
        self.state = SPNetState()
        self._names: set[str] = set()

    def reset(self) -> None:
        """Forget every image."""
        self.state = SPNetState()
        self._names = set()

    def __len__(self) -> int:
        return self.state.count

    def update(self, pred: np.ndarray, gt: np.ndarray, name: str | None = None) -> dict[str, float]:
        """Score one pair and add it.

        Args:
            pred: (H, W) uint8 grey prediction (see :func:`to_grey`, :func:`resize_to`).
            gt: (H, W) uint8 grey GT, used as is (divided by 255; not binarised).
            name: the item's name in :meth:`per_item` (default: its position).

        Returns:
            The image's ``{"mae", "sm", "maxe", "maxf"}``; "maxf" is the max F of this
            image's own PR curve (for inspection; the dataset "maxf" is not their mean).

        Raises:
            TypeError: not uint8. ValueError: not 2-D, empty, different shapes, repeated name.
        """
        pred, gt = check_pair(pred, gt)  # the same checks as PySODMetrics' evaluator
        if name is not None and name in self._names:
            raise ValueError(f"item {name!r} was already scored")

        pairs = LevelPairs.of(pred, gt)
        mae = int(pairs.count @ np.abs(pairs.pred - pairs.gt)) / (255 * pairs.n)
        sm = smeasure(pred, gt, pairs)
        e = enhanced_alignment(pairs)
        precision, recall = pr_curve(pairs)

        state = self.state
        state.count += 1
        if not np.isnan(mae):
            state.mae_sum += mae
            state.mae_count += 1
        if not np.isnan(e):
            state.e_sum += e
            state.e_count += 1
        state.sm_sum += sm
        state.precision_sum += precision
        state.recall_sum += recall
        item = {"mae": mae, "sm": sm, "maxe": e, "maxf": float(_f_of(precision, recall).max())}
        state.items.append((name, item))
        if name is not None:
            self._names.add(name)
        return item

    def merge(self, other: SPNetEvaluator) -> None:
        """Add the images of ``other``; ValueError if both scored an item of the same name."""
        clash = self._names & other._names
        if clash:
            raise ValueError(f"items scored twice: {sorted(clash)[:5]}")
        mine, theirs = self.state, other.state
        mine.count += theirs.count
        mine.mae_sum += theirs.mae_sum
        mine.mae_count += theirs.mae_count
        mine.sm_sum += theirs.sm_sum
        mine.e_sum += theirs.e_sum
        mine.e_count += theirs.e_count
        mine.precision_sum += theirs.precision_sum
        mine.recall_sum += theirs.recall_sum
        mine.items.extend(theirs.items)
        self._names |= other._names

    def compute(self) -> dict[str, float]:
        """``{"mae", "sm", "maxf", "maxe"}`` as SPNet reports them (Python floats).

        MAE in [0, 1] (lower is better); S and maxF in [0, 1]; maxE in [0, N / (N - 1)].
        S is NaN when any image's S is NaN (see the module docstring); MAE or maxE are NaN
        only when every image's value is.

        Raises:
            ValueError: no image was scored.
        """
        state = self.state
        if state.count == 0:
            raise ValueError("no image was scored")
        nan = float("nan")
        precision = state.precision_sum / state.count
        recall = state.recall_sum / state.count
        return {
            "mae": state.mae_sum / state.mae_count if state.mae_count else nan,
            "sm": state.sm_sum / state.count,
            "maxf": float(_f_of(precision, recall).max()),
            "maxe": state.e_sum / state.e_count if state.e_count else nan,
        }

    def per_item(self) -> dict[str, dict[str, float]]:
        """``{name: {"mae", "sm", "maxe", "maxf"}}`` in scoring order (see :meth:`update`)."""
        return {
            name if name is not None else f"{i:06d}": item
            for i, (name, item) in enumerate(self.state.items)
        }
