"""Predictors (DESIGN §4): numpy in, numpy out, two phases, one class per task.

* :class:`SODPredictor`: ``set_image(rgb, aux)`` -> ``predict()`` saliency map;
* :class:`RISPredictor`: ``set_image(image)`` -> ``predict(sentence)`` many times on the
  cached visual features.

Each is built from a checkpoint folder with ``from_checkpoint(path)``.
"""

from cmseg.engine.predictors.common import load_model_weights, resolve_device
from cmseg.engine.predictors.ris import RISPredictor
from cmseg.engine.predictors.sod import SODPredictor

__all__ = ["SODPredictor", "RISPredictor", "resolve_device", "load_model_weights"]
