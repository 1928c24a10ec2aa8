"""SSNM: "Deep Object Co-segmentation via Spatial-Semantic Network Modulation" (Zhang, Chen,
Liu and Liu, AAAI 2020; github.com/cj4L/SSNM-Coseg).

A group of images that share an object class in, one foreground map per image out. The package
reads in the paper's order, one file per part (reference ssnm_coseg.md §2-3):

* ``backbone.py``: VGG16-BN (or any timm pyramid) features after pool2..pool5, strides 4..32;
  the optional fusion of every level into the coarsest (the HRNet variant's figure).
* ``decoder.py`` (first half): the channel lifting of each level to W channels (>= 0).
* ``spatial.py``: the **spatial modulator**, parameter-free: the top eigenvector of the
  group's descriptor similarities at the coarsest level (closed form, or the official
  200-step Adam iteration), one mask per group, no gradient.
* ``semantic.py``: the **semantic modulator**: hierarchical second-order pooling, the group
  vector gamma, the multi-label co-category classifier.
* ``model.py``: :class:`SSNM`: shift-and-scale modulation ``y_k = lifted_k * gamma + up(s)``
  at every level, then ``decoder.py``'s top-down decoder (levels 4-2 share weights, as in
  the official code) and the two-way softmax head; the builders ``ssnm_vgg16`` (the paper,
  40.8 M parameters) and ``ssnm_tiny`` (CPU).
* ``loss.py``: :func:`ssnm_loss`: the official weighted BCE + classification BCE + smooth L1.
* ``convert.py``: :func:`convert_official_ssnm`, official checkpoints to these names.

Any group size N >= 2 and any input size with sides multiple of 32 (the official code
hard-codes 5 images of 224 px).
"""

from cmseg.models.ssnm.convert import convert_official_ssnm, official_options
from cmseg.models.ssnm.loss import ssnm_loss
from cmseg.models.ssnm.model import SSNM, SSNMOutput, build_ssnm, ssnm_tiny, ssnm_vgg16
from cmseg.models.ssnm.spatial import SPATIAL_SOLVERS, spatial_mask

__all__ = [
    "SSNM",
    "SSNMOutput",
    "build_ssnm",
    "ssnm_vgg16",
    "ssnm_tiny",
    "ssnm_loss",
    "spatial_mask",
    "SPATIAL_SOLVERS",
    "convert_official_ssnm",
    "official_options",
]
