"""The options of the ``ris`` task.

Data (``data`` section): ``format`` is ``refer`` (default), ``referit`` or ``jsonl``;
``train_sets`` / ``val_sets`` are split names (``refer``: ``train``, ``val``, ``testA``...;
``referit``: ``trainval``, ``test``) or, for ``jsonl``, file names relative to ``data.root``
(``train.jsonl``). Task options (``data.options``):

==================  ==========  ==============================================================
key                 default     meaning
==================  ==========  ==============================================================
``dataset``         refcoco     ``refer``: refcoco, refcoco+, refcocog or refclef
``split_by``        (default)   ``refer``: unc, umd, google, berkeley (default per dataset)
``image_dir``       ""          ``refer``: the images' folder when not REFER's usual place
``sentence_key``    sent        ``refer``: ``sent`` (normalised, CMPC) or ``raw`` (as typed)
``flip``            false       random horizontal flip (p 0.5) that also swaps the words left
                                and right; off in CMPC (no augmentation)
``vocabulary``      ""          a word list file (official ``vocabulary_Gref.txt`` layout);
                                default: built from the training sentences
``min_word_count``  1           words seen fewer times in training become ``<unk>``
``glove``           ""          a GloVe text file to initialise the word embeddings
``convention``      lavt        IoU / prec@X convention of the scores (RISEvaluator)
``loss_reduction``  mean        ``mean`` over pixels, or ``sum`` (the official CMPC loss,
                                summed over the 320 x 320 pixels; :func:`cmpc_loss`)
``freeze_backbone`` false       train the head and the text encoder only (the official run:
                                its ResNet is never updated)
``cache_backbone``  false       with ``freeze_backbone`` and frozen batch norms
``_features``                   (``model.options.freeze_backbone_bn``): compute each image's
                                backbone features once and keep them in memory, up to
                                ``cache_gib`` GiB (:mod:`cmseg.models.feature_cache`); the
                                results do not change, the steps get cheaper
``cache_gib``       2.0         memory budget of that cache
``loss_dice_``       0.0         weight of a soft Dice term on the final map added to CMPC's
``weight``                      loss (not in the paper; :func:`cmseg.models.losses.dice_loss`)
``sentences_per_``  1           k > 1: a training item is an image with k of its sentences
``image``                       (drawn anew each epoch); the backbone runs once per image, so
                                a batch of B images trains k B sentences for little more than
                                the cost of B (``data.batch_size`` counts images then)
==================  ==========  ==============================================================
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cmseg.errors import ConfigError
from cmseg.metrics.masks import RIS_CONVENTIONS

__all__ = ["RIS_FORMATS", "RISOptions"]

#: Readers of ``data.format``.
RIS_FORMATS = ("refer", "referit", "jsonl")


@dataclass(frozen=True)
class RISOptions:
    """``data.options`` of the ris task (module docstring)."""

    dataset: str = "refcoco"
    split_by: str | None = None
    image_dir: str = ""
    sentence_key: str = "sent"
    flip: bool = False
    vocabulary: str = ""
    min_word_count: int = 1
    glove: str = ""
    convention: str = "lavt"
    loss_reduction: str = "mean"
    freeze_backbone: bool = False
    cache_backbone_features: bool = False
    cache_gib: float = 2.0
    sentences_per_image: int = 1
    loss_dice_weight: float = 0.0

    @classmethod
    def from_config(cls, options: Mapping[str, Any] | None) -> RISOptions:
        """Read ``data.options``; unknown keys and bad values raise :class:`ConfigError`."""
        options = dict(options or {})
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(options) - known)
        if unknown:
            raise ConfigError(
                f"data.options: unknown ris option(s) {', '.join(unknown)}; "
                f"known: {', '.join(sorted(known))}"
            )
        opts = cls(**options)
        if opts.convention not in RIS_CONVENTIONS:
            raise ConfigError(
                f"data.options.convention must be one of {', '.join(RIS_CONVENTIONS)}, "
                f"got {opts.convention!r}"
            )
        if opts.loss_reduction not in ("mean", "sum"):
            raise ConfigError(
                f"data.options.loss_reduction must be 'mean' or 'sum', got {opts.loss_reduction!r}"
            )
        if int(opts.sentences_per_image) < 1:
            raise ConfigError(
                f"data.options.sentences_per_image must be >= 1, got {opts.sentences_per_image}"
            )
        if int(opts.min_word_count) < 1:
            raise ConfigError(
                f"data.options.min_word_count must be >= 1, got {opts.min_word_count}"
            )
        if opts.cache_backbone_features and not opts.freeze_backbone:
            raise ConfigError(
                "data.options.cache_backbone_features needs data.options.freeze_backbone: "
                "the features of a backbone in training change at every step"
            )
        if float(opts.cache_gib) < 0:
            raise ConfigError(f"data.options.cache_gib must be >= 0, got {opts.cache_gib}")
        return opts
