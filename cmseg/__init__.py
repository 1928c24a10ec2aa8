"""cmseg: cross-modal object segmentation (SOD, co-segmentation, RIS, RVOS, few-shot RVOS).

Importing the package is cheap on purpose: torch, timm and transformers are imported lazily by
the commands that train or predict, so that ``cmseg evaluate`` and ``cmseg data`` start fast.
The tasks and what is built for each are in :data:`cmseg.tasks.TASKS`.
"""

__version__ = "0.1.0"
