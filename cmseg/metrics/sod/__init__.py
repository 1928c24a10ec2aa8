"""Salient / camouflaged object detection metrics with the conventions of PySODMetrics 1.6.

The numbers equal those of PySODMetrics 1.6.x called with ``normalize=True`` (the way
PySODEvalToolkit calls it) to 1e-10, per image and per dataset; the tests check this against
the library itself. Conventions, all inherited from that library (and from the MATLAB code it
ports):

* GT: a pixel is foreground when its grey value is ``> 128``.
* Prediction: divided by 255, then min-max stretched per image to [0, 1]; a constant map is
  left as ``value / 255``. A map that never exceeds 0.4 is therefore scored as if it reached 1.
* Threshold curves: 256 thresholds on ``q = floor(255 p)``; the map is binarised with
  ``q >= j``. Curves are averaged over the images first; "mean" and "max" are then the mean
  and the maximum of the averaged curve (not the mean of per-image maxima).
* Adaptive threshold: ``p >= min(2 mean(p), 1)`` on the unquantised map. On an empty GT with
  an all-zero prediction this marks every pixel foreground, so adpE (and wF) are 0 there.
* E-measure divides by ``H W - 1``: a perfect map scores ``N / (N - 1)``, slightly above 1.
* F-measure uses beta^2 = 0.3, the weighted F-measure beta^2 = 1, the S-measure alpha = 0.5.

One departure: when the GT centroid lies on the last row or column, one S-measure quadrant is
empty (it has weight 0). PySODMetrics (and the MATLAB original) then return NaN for the whole
S-measure; here the empty quadrant contributes 0.

Speed: every threshold curve, the adaptive scores, MAE and the S-measure come from per-grey-level
histograms (one per GT class and S-measure quadrant), so they cost a few hundred operations on
256-vectors per image whatever its size. The weighted F-measure is computed from what it
really depends on (see :func:`weighted_fmeasure`). All five of MAE, S, E, F and wF together
run about 6x faster than PySODMetrics at 320x320, single-threaded, with the same values
(``benchmarks/bench_sod_metrics.py``); OpenCV's exact distance transform is then ~40% of it.

Layout: :mod:`~cmseg.metrics.sod.inputs` (validation, normalisation, grey-level histograms),
:mod:`~cmseg.metrics.sod.curves` (the threshold curves from the joint histograms),
:mod:`~cmseg.metrics.sod.e_measure`, :mod:`~cmseg.metrics.sod.s_measure`,
:mod:`~cmseg.metrics.sod.weighted_f`, :mod:`~cmseg.metrics.sod.absolute_error` (MAE),
:mod:`~cmseg.metrics.sod.image` (all of them for one pair) and
:mod:`~cmseg.metrics.sod.evaluator` (the dataset evaluator and its additive state);
:mod:`~cmseg.metrics.sod.common` holds the constants. Every public name of the former single
module (now in ``__all__``) and the private helpers its tests and benchmark use are importable from
``cmseg.metrics.sod`` itself.

pysodmetrics is used only in the tests and the benchmark, never here.
"""

from __future__ import annotations

# The public names of the single module this package replaces, and the three private ones that
# the tests and benchmarks/bench_sod_metrics.py reach into (noqa: not in __all__).
from cmseg.metrics.sod.absolute_error import mae
from cmseg.metrics.sod.common import (
    CURVE_NAMES,
    EPS,
    F_BETA2,
    NUM_LEVELS,
    S_ALPHA,
    THRESHOLDED,
    WF_BETA2,
)
from cmseg.metrics.sod.curves import (
    _cumulative_counts,  # noqa: F401
    threshold_curves,
    threshold_metrics,
)
from cmseg.metrics.sod.e_measure import emeasure_from_counts
from cmseg.metrics.sod.evaluator import SODEvaluator, SODState
from cmseg.metrics.sod.image import SCALAR_NAMES, ImageScores, score_image
from cmseg.metrics.sod.inputs import (
    PreparedPair,
    Quadrants,
    check_pair,
    foreground_mask,
    level_histograms,
    normalized_levels,
    prepare_pair,
    resize_to,
)
from cmseg.metrics.sod.s_measure import centroid_quadrants, smeasure
from cmseg.metrics.sod.weighted_f import (
    _first_hit,  # noqa: F401
    _nearest_offsets,  # noqa: F401
    weighted_fmeasure,
    weighted_fmeasure_reference,
)

__all__ = [
    "CURVE_NAMES",
    "EPS",
    "F_BETA2",
    "NUM_LEVELS",
    "SCALAR_NAMES",
    "S_ALPHA",
    "THRESHOLDED",
    "WF_BETA2",
    "ImageScores",
    "PreparedPair",
    "Quadrants",
    "SODEvaluator",
    "SODState",
    "centroid_quadrants",
    "check_pair",
    "emeasure_from_counts",
    "foreground_mask",
    "level_histograms",
    "mae",
    "normalized_levels",
    "prepare_pair",
    "resize_to",
    "score_image",
    "smeasure",
    "threshold_curves",
    "threshold_metrics",
    "weighted_fmeasure",
    "weighted_fmeasure_reference",
]
