"""``cmseg evaluate fsrvos``: J&F of the query videos of few-shot episodes, in the layouts and
protocols of ``rvos`` (:class:`cmseg.tasks.rvos.evaluate.VOSAdapter`), with the boundary
tolerance of CMA's evaluation script (0.010 of the image diagonal instead of DAVIS's 0.008).
"""

from __future__ import annotations

from cmseg.tasks.rvos.evaluate import VOSAdapter

__all__ = ["ADAPTER"]

ADAPTER = VOSAdapter("fsrvos", default_bound_th=0.010)
