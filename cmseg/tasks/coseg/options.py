"""The options of the ``coseg`` task.

Data (``data`` section): ``format`` is ``coco`` (SSNM's COCO2017 groups, the paper's training
data) or ``folders`` (processed sets ``<set>/{image, groundtruth}/<class>/``, e.g. the synthetic
groups of ``cmseg data synth coseg``). ``train_sets``: ``coco``: one split (default
``train2017``: ``<root>/annotations/instances_train2017.json`` and ``<root>/train2017/``);
``folders``: set folders under ``data.root`` (default: ``data.root`` itself when it holds
``image/``, else every set under it). ``val_sets``: processed test sets under
``test_root`` (SSNM: ``MSRC7``, ``Internet_Datasets300``, ``iCoseg8``, ``PASCAL_VOC``).
``data.batch_size`` counts groups. Task options (``data.options``):

======================  ===========  ==========================================================
key                     default      meaning
======================  ===========  ==========================================================
``group_size``          5            images per training and validation group (SSNM: 5)
``test_root``           ""           the folder holding ``data.val_sets`` (default
                                     ``data.root``)
``heldout_images``      500          ``coco``: training images held out (drawn with a fixed
                                     seed, removed from every category's list) and scored as
                                     the ``heldout`` set; 0: none
``heldout_per_class``   5            ``folders``: images of each class held out likewise
``classes``             []           ``folders``: the training classes (default: all); the
                                     others are never seen in training
``dictionary``          ""           ``coco``: SSNM's ``dict.npy`` /
                                     ``new_cat2imgid_dict4000.npy`` (category id -> image ids),
                                     read without unpickling code; default: built from the
                                     annotation file with the official rule and cached
``dictionary_cache``    ""           folder of that cache (default ``$XDG_CACHE_HOME/cmseg``,
                                     else ``~/.cache/cmseg``)
``min_area``            4000         ``coco``: an instance over this many pixels lists its
                                     image under its category (the official rule)
``min_images``          100          ``coco``: categories with fewer listed images are dropped
``flip``                false        random horizontal flip of a whole group (p 0.5); SSNM has
                                     no augmentation
``foreground_weight``   official     the weighted BCE of :func:`ssnm_loss`: ``official``
                                     (weight = foreground fraction on foreground pixels: the
                                     majority class weighs more) or ``balanced``
``loss_weights``        [1, 1, 1]    weights of the BCE, classification and smooth-L1 terms
``protocol``            ssnm         validation scoring: ``ssnm`` (P and J at 224 x 224, as
                                     SSNM's ``val.py``) or ``native`` (at the GT's size)
======================  ===========  ==========================================================
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from cmseg.config import from_dict
from cmseg.errors import ConfigError

__all__ = ["COSEG_FORMATS", "FOREGROUND_WEIGHTS", "PROTOCOLS", "CosegOptions"]

#: Readers of ``data.format`` (the first is the default).
COSEG_FORMATS = ("coco", "folders")
#: ``foreground_weight`` values of :func:`cmseg.models.ssnm.loss.ssnm_loss`.
FOREGROUND_WEIGHTS = ("official", "balanced")
#: Validation scoring conventions (those of ``cmseg evaluate coseg``).
PROTOCOLS = ("ssnm", "native")


@dataclass(frozen=True)
class CosegOptions:
    """``data.options`` of the coseg task (module docstring)."""

    group_size: int = 5
    test_root: str = ""
    heldout_images: int = 500
    heldout_per_class: int = 5
    classes: list[str] = field(default_factory=list)
    dictionary: str = ""
    dictionary_cache: str = ""
    min_area: float = 4000
    min_images: int = 100
    flip: bool = False
    foreground_weight: str = "official"
    loss_weights: list[float] = field(default_factory=lambda: [1.0, 1.0, 1.0])
    protocol: str = "ssnm"

    @classmethod
    def from_config(cls, options: Mapping[str, Any] | None) -> CosegOptions:
        """Parse ``data.options``; an unknown key or a bad value raises a one-line
        :class:`~cmseg.errors.ConfigError` (``data.options.<key>: ...``)."""
        opts = from_dict(cls, dict(options or {}), prefix="data.options.")
        if opts.group_size < 2:
            raise ConfigError(
                f"data.options.group_size must be >= 2 (co-segmentation needs a group), "
                f"got {opts.group_size}"
            )
        for key in ("heldout_images", "heldout_per_class", "min_images"):
            if getattr(opts, key) < 0:
                raise ConfigError(f"data.options.{key} must be >= 0, got {getattr(opts, key)}")
        choices = {
            "foreground_weight": FOREGROUND_WEIGHTS,
            "protocol": PROTOCOLS,
        }
        for key, allowed in choices.items():
            if getattr(opts, key) not in allowed:
                raise ConfigError(
                    f"data.options.{key} must be one of {', '.join(allowed)}, "
                    f"got {getattr(opts, key)!r}"
                )
        if len(opts.loss_weights) != 3 or any(w < 0 for w in opts.loss_weights):
            raise ConfigError(
                "data.options.loss_weights must be 3 weights >= 0 (BCE, classification, "
                f"smooth-L1), got {list(opts.loss_weights)}"
            )
        return opts
