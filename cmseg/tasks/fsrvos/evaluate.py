"""``cmseg evaluate fsrvos``: J&F of the query videos of few-shot episodes, in the layouts and
protocols of ``rvos`` (:func:`cmseg.tasks.rvos.evaluate.vos_adapter`), with the boundary
tolerance of CMA's evaluation script (0.010 of the image diagonal instead of DAVIS's 0.008).
"""

from __future__ import annotations

from cmseg.tasks.rvos.evaluate import vos_adapter

__all__ = ["ADAPTER"]

ADAPTER = vos_adapter("fsrvos", default_bound_th=0.010)
