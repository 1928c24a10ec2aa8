"""The predictors of every task, importable from one place (DESIGN §4): numpy in, numpy out,
two phases, ``from_checkpoint(path)`` to build one from a trained run.

* :class:`SODPredictor` (``sod``): ``set_image(rgb, aux)`` -> ``predict()``, a ``uint8 (H, W)``
  saliency map 0..255; ``predict_batch([(rgb, aux), ...])`` for many at once;
* :class:`RISPredictor` (``ris``): ``set_image(image)`` -> ``predict(sentence)``, a
  ``bool (H, W)`` mask, many times on the cached visual features;
* :class:`CosegPredictor` (``coseg``): ``set_group(images)`` -> ``predict()`` (or
  ``predict(images)``), one ``float32 (H_i, W_i)`` map in [0, 1] per image of a group of two
  or more, each at its own size.

Each lives in its task's folder (``cmseg/tasks/<task>/predictor.py``); importing this module is
cheap, the class (and torch) is imported when first used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # for type checkers and linters; at run time, __getattr__ imports lazily
    from cmseg.tasks.coseg.predictor import CosegPredictor
    from cmseg.tasks.ris.predictor import RISPredictor
    from cmseg.tasks.sod.predictor import SODPredictor

__all__ = ["SODPredictor", "RISPredictor", "CosegPredictor"]

_WHERE = {
    "SODPredictor": "cmseg.tasks.sod.predictor",
    "RISPredictor": "cmseg.tasks.ris.predictor",
    "CosegPredictor": "cmseg.tasks.coseg.predictor",
}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
