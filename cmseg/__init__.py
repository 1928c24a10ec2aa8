"""cmseg: cross-modal object segmentation (SOD, co-segmentation, RIS, RVOS, few-shot RVOS).

Importing the package is cheap on purpose: torch, timm and transformers are imported lazily by
the commands that train or predict, so that ``cmseg evaluate`` and ``cmseg data`` start fast.
"""

__version__ = "0.1.0"

TASKS = ("sod", "coseg", "ris", "rvos", "fsrvos")
