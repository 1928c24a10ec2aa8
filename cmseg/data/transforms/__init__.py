"""Paired augmentations that keep image, auxiliary map and masks aligned.

A transform is a callable on a *sample dict* (numpy in, numpy out) that returns a new dict and
never modifies the arrays it was given::

    out = transform(sample, rng=seed_or_generator)

Every random choice comes from the ``rng`` argument (a :class:`numpy.random.Generator`, or
anything :func:`numpy.random.default_rng` accepts), so a pipeline is deterministic under a
seed. Without ``rng`` a per-process generator is used (see :func:`default_generator`); it is
seeded from ``torch.initial_seed()`` when torch is loaded, which DataLoader sets differently,
and reproducibly, in every worker. For augmentation that does not depend on which worker
loads which sample, pass ``rng=rng_for(seed, index, epoch)`` from the dataset.

Keys and roles
--------------
What a transform does to a value is decided by its key (:func:`key_role`):

========  ==================================================  ===================================
role      keys                                                 shapes
========  ==================================================  ===================================
``rgb``   ``image``, ``images``, ``frames``, ``*_image(s)``,  ``(H, W, C)`` uint8, a ``(T, H, W,
          ``*_frames``                                         C)`` stack, or a list of either
``aux``   ``aux``, ``auxes``, ``aux_*``, ``*_aux`` (not        ``(H, W)`` float, ``(T, H, W)``
          ``*valid``)                                          stack, or a list
``valid`` ``*_valid`` (``aux_valid``: validity of ``aux``)     ``(H, W)`` bool, stack, or a list
``mask``  ``mask``, ``masks``, ``*_mask(s)``                   ``(H, W)`` bool (or integer
                                                               labels), stack, or a list
``text``  ``sentence(s)``, ``caption(s)``, ``expression(s)``,  ``str`` or a list of ``str``
          ``*_sentence(s)``
========  ==================================================  ===================================

Other keys (``name``, ``set``, ids, ...) pass through untouched. This covers the sample dicts
of every task: sod ``{image, aux, aux_valid, mask}``, ris ``{image, mask, sentence}``, rvos
clips ``{frames, masks, sentence}``, coseg groups ``{images: list, masks: list}``, fsrvos
``{frames, masks, support_frames, support_masks, ...}``.

* Geometric transforms (:class:`HorizontalFlip`, :class:`RandomScaleCrop`,
  :class:`RandomCenterCrop`, :class:`RandomRotation`, :class:`Resize`) move every ``rgb``,
  ``aux``, ``valid`` and ``mask`` array with one affine map: bilinear for ``rgb`` and ``aux``,
  nearest-neighbour for ``valid`` and ``mask`` (so masks stay binary and labels stay labels).
  Pixels that come from outside the image (rotation corners) are 0: black RGB, aux 0,
  *invalid* aux, background mask.
* Random parameters are drawn once per call and do not depend on the image size, so all
  frames of a clip (a ``(T, H, W, ...)`` stack) get the identical transform, and so do all
  members of a list (for coseg groups of different sizes: the same flip, angle and *relative*
  crop window).
* :class:`Compose` fuses consecutive geometric transforms into one resampling per array: one
  interpolation instead of several, and much faster (flips and crops are slicing, crop +
  resize is ``cv2.resize``, anything with a rotation one ``cv2.warpAffine``). Parameters,
  geometry and the empty corners are the same as when the transforms run one by one (a
  rotation after a crop shows black corners, not the pixels outside the crop window).
* :class:`HorizontalFlip` swaps "left"/"right" (also "leftmost"/"rightmost", "leftward(s)",
  "left-hand", case preserved) in every ``text`` value, so it is *enabled* for ris/rvos/fsrvos
  as in SOC and CMA (the swap is by whole word; "bright" is not touched).
* :class:`ColorJitter` touches only ``rgb``; :class:`AuxNoise` only ``aux`` (and only its valid
  pixels); :class:`MaskPepper` only ``mask``.
* :class:`ToTensor` is the last step of a training pipeline and the only code here that uses
  torch (imported when it runs).

:func:`sod_train_transforms` is the XMSNet/SPNet recipe (reference xmsnet.md §3.3); its
docstring lists where it departs from the released code.

Modules (every name below is importable from :mod:`cmseg.data.transforms` itself):

=====================  =========================================================================
module                 contents
=====================  =========================================================================
:mod:`.base`           :class:`Transform`, :class:`GeometricTransform`, :class:`Compose`
:mod:`.geometric`      :class:`HorizontalFlip`, :class:`RandomScaleCrop`, :class:`RandomCenterCrop`,
                       :class:`RandomRotation`
:mod:`.resize`         :class:`Resize`, :class:`ResizePad`, :func:`pad_placement`
:mod:`.photometric`    :class:`ColorJitter`
:mod:`.noise`          :class:`AuxNoise`, :class:`MaskPepper`
:mod:`.to_tensor`      :class:`ToTensor`, :data:`IMAGENET_MEAN`, :data:`IMAGENET_STD`
:mod:`.pipelines`      :func:`sod_train_transforms`
:mod:`.roles`          :func:`key_role` and the helpers that walk a sample's arrays
:mod:`.text`           :func:`swap_left_right`
:mod:`.warp`           the fused affine warp behind the geometric transforms
:mod:`.generators`     :func:`default_generator`, :func:`rng_for`, :func:`dataloader_worker_init`
=====================  =========================================================================
"""

from __future__ import annotations

from cmseg.data.transforms.base import Compose, GeometricTransform, Transform
from cmseg.data.transforms.generators import RngLike as RngLike
from cmseg.data.transforms.generators import (
    dataloader_worker_init,
    default_generator,
    rng_for,
)
from cmseg.data.transforms.geometric import (
    HorizontalFlip,
    RandomCenterCrop,
    RandomRotation,
    RandomScaleCrop,
)
from cmseg.data.transforms.noise import AuxNoise, MaskPepper
from cmseg.data.transforms.photometric import ColorJitter
from cmseg.data.transforms.pipelines import sod_train_transforms
from cmseg.data.transforms.resize import Resize, ResizePad, pad_placement
from cmseg.data.transforms.roles import HW as HW
from cmseg.data.transforms.roles import SPATIAL_ROLES as SPATIAL_ROLES
from cmseg.data.transforms.roles import Sample as Sample
from cmseg.data.transforms.roles import key_role
from cmseg.data.transforms.text import swap_left_right
from cmseg.data.transforms.to_tensor import IMAGENET_MEAN, IMAGENET_STD, ToTensor

# ``RngLike``, ``Sample``, ``HW`` and ``SPATIAL_ROLES`` (the ``as`` imports above) stay
# importable from here as before the split, though they are not in ``__all__``.
__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "Transform",
    "GeometricTransform",
    "Compose",
    "HorizontalFlip",
    "RandomScaleCrop",
    "RandomCenterCrop",
    "RandomRotation",
    "Resize",
    "ResizePad",
    "pad_placement",
    "ColorJitter",
    "AuxNoise",
    "MaskPepper",
    "ToTensor",
    "sod_train_transforms",
    "key_role",
    "swap_left_right",
    "rng_for",
    "default_generator",
    "dataloader_worker_init",
]
