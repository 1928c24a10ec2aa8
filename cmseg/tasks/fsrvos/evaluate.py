"""``cmseg evaluate fsrvos``: J&F of the query videos of few-shot episodes.

The default protocol for ``<video>/<expression_id>/<frame>.png`` ground truth is ``cma``, what
CMA's ``test.py`` computes (reference cma_fsrvos.md §5): the per-frame J and F of the DAVIS
toolkit with a boundary tolerance of 0.010 of the diagonal, **pooled over all frames of all
(video, expression) samples** of the fold (one sum of per-frame values divided by the number
of frames: an expression weighs by its number of frames, not once), scored at CMA's
resolution (frames and GT at short side 360, GT bilinearly resized then ``> 0.5``;
``--short-side 0`` scores at the native resolution). The layouts and the ``davis``, ``mevis``
and ``ytvos`` protocols of ``rvos`` stay available (:func:`cmseg.tasks.rvos.evaluate.vos_adapter`),
with the same 0.010 tolerance by default.
"""

from __future__ import annotations

from cmseg.tasks.rvos.evaluate import vos_adapter

__all__ = ["ADAPTER"]

ADAPTER = vos_adapter(
    "fsrvos",
    default_bound_th=0.010,
    protocols=("cma", "davis", "mevis", "ytvos"),
    expression_default="cma",
    options=frozenset({"bound_th", "short_side"}),
)
