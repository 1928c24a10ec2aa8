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

Four evaluation protocols are available through :class:`VOSEvaluator`:

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
``"cma"``
    CMA's few-shot test.py: the per-frame values of ``"ytvos"``, but J and F pooled over all
    frames of all expressions (one sum divided by the number of frames), at CMA's scoring
    resolution (short side 360, GT bilinearly resized then ``> 0.5``;
    :mod:`~cmseg.metrics.vos.cma`).

Masks stay ``bool``/``uint8`` throughout; the work per frame is restricted to the bounding box
of the two masks (plus one pixel), which gives exactly the full-frame result (see
``_frames_jf``) at a fraction of the cost.

Layout: :mod:`~cmseg.metrics.vos.region` (J), :mod:`~cmseg.metrics.vos.boundary` (tolerance,
disk, boundary map), :mod:`~cmseg.metrics.vos.frames` (J and F of every frame on bounding-box
windows, the boundary F), :mod:`~cmseg.metrics.vos.stats` (Mean / Recall / Decay),
:mod:`~cmseg.metrics.vos.davis` (one DAVIS sequence), :mod:`~cmseg.metrics.vos.cma` (CMA's
scoring resolution), :mod:`~cmseg.metrics.vos.evaluator`
(:class:`VOSEvaluator`) and :mod:`~cmseg.metrics.vos.inputs` (mask validation). Every name of
``__all__`` is importable from ``cmseg.metrics.vos`` itself, as when this package was one
module.

Nothing here imports torch.
"""

from __future__ import annotations

from cmseg.metrics.vos.boundary import DEFAULT_BOUND_TH, boundary_map, boundary_tolerance, disk
from cmseg.metrics.vos.cma import CMA_SHORT_SIDE, cma_scoring_shape
from cmseg.metrics.vos.davis import davis_sequence
from cmseg.metrics.vos.evaluator import PROTOCOLS, VOSEvaluator
from cmseg.metrics.vos.frames import boundary_f, jaccard_and_f
from cmseg.metrics.vos.region import jaccard
from cmseg.metrics.vos.stats import Stats, statistics

__all__ = [
    "DEFAULT_BOUND_TH",
    "CMA_SHORT_SIDE",
    "cma_scoring_shape",
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
