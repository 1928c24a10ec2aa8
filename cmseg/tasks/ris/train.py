"""``cmseg train`` for ``task: ris``: CMPC on a referring dataset.

The training set is every split of ``data.train_sets`` (default: the format's training split)
read by :func:`~cmseg.tasks.ris.data.open_split`; the word vocabulary is built from its
sentences (or read from ``data.options.vocabulary``) and stored in the checkpoints; the loss is
CMPC's (:func:`~cmseg.models.cmpc.loss.cmpc_loss`) plus an optional Dice term; validation is
:class:`~cmseg.tasks.ris.validate.RISValidator` on ``data.val_sets``, the best checkpoint chosen
by ``oIoU``. Options: :mod:`cmseg.tasks.ris.options`.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from cmseg.engine.training_setup import TrainingSetup
from cmseg.errors import ConfigError
from cmseg.tasks.ris.data import (
    DEFAULT_TRAIN,
    ConcatReaders,
    SentenceGroups,
    collate_groups,
    open_split,
    train_transforms,
)
from cmseg.tasks.ris.model import (
    attach_feature_cache,
    build_ris_model,
    build_vocabulary,
    parameter_groups,
    uses_vocabulary,
)
from cmseg.tasks.ris.options import RIS_FORMATS, RISOptions
from cmseg.tasks.ris.process import check_image_size
from cmseg.tasks.ris.validate import RISValidator

if TYPE_CHECKING:
    from cmseg.config import RunConfig

__all__ = ["build_training"]

log = logging.getLogger(__name__)


def _forward(model: nn.Module, batch: Mapping[str, Any]) -> Any:
    return model(batch["image"], list(batch["sentence"]))


def _loss(
    output: Any, batch: Mapping[str, Any], *, reduction: str, dice_weight: float
) -> tuple[torch.Tensor, dict[str, Any]]:
    from cmseg.models.cmpc.loss import cmpc_loss
    from cmseg.models.losses import dice_loss

    total, parts = cmpc_loss(output, batch["mask"], reduction=reduction)
    if dice_weight:
        dice = dice_loss(output.final, batch["mask"])
        total = total + dice_weight * dice
        parts = {**parts, "dice": dice.detach()}
    return total, parts


def _readers(cfg: RunConfig, splits: Sequence[str], opts: RISOptions) -> dict[str, Any]:
    return {split: open_split(cfg.data.root, cfg.data.format, split, opts) for split in splits}


def _check_data(cfg: RunConfig) -> None:
    if cfg.data.format not in ("",) + RIS_FORMATS:
        raise ConfigError(
            f"data.format: task ris reads {', '.join(RIS_FORMATS)}; got {cfg.data.format!r}"
        )
    if not cfg.data.root:
        raise ConfigError("data.root is not set (the dataset folder)")


def _validator(cfg: RunConfig, opts: RISOptions, size: int) -> RISValidator | None:
    if not cfg.data.val_sets:
        return None
    return RISValidator(
        _readers(cfg, cfg.data.val_sets, opts),
        size,
        batch_size=cfg.data.batch_size,
        num_workers=cfg.data.num_workers,
        convention=opts.convention,
    )


def build_training(cfg: RunConfig) -> TrainingSetup:
    """The training run of ``task: ris`` (module docstring).

    Raises:
        ConfigError: a bad option, format, model name or image size.
        InputError: the dataset files are missing or malformed.
    """
    opts = RISOptions.from_config(cfg.data.options)
    _check_data(cfg)
    size = check_image_size(cfg.model.image_size)
    train_splits = list(cfg.data.train_sets) or [DEFAULT_TRAIN[cfg.data.format or "refer"]]
    train_set = ConcatReaders(list(_readers(cfg, train_splits, opts).values()))

    vocabulary = None
    extra: dict[str, Any] = {}
    if uses_vocabulary(cfg.model):
        vocabulary = build_vocabulary(train_set.sentences(), opts)
        extra["vocabulary"] = vocabulary.words
        # How its sentences are tokenised (the official lookup); absent in older checkpoints.
        extra["strip_tokens"] = vocabulary.strip_tokens
    model = build_ris_model(cfg.model, vocabulary, glove=opts.glove)
    validate = _validator(cfg, opts, size)
    log.info(
        "ris: %s, %d training sentences (%s)%s%s",
        cfg.model.name,
        len(train_set),
        ", ".join(train_splits),
        f", a vocabulary of {len(vocabulary)} words" if vocabulary is not None else "",
        f", validating on {', '.join(cfg.data.val_sets)}"
        if validate is not None
        else ", no validation",
    )
    if opts.freeze_backbone:
        model.backbone.requires_grad_(False)
    if opts.cache_backbone_features:
        attach_feature_cache(model, float(opts.cache_gib))
    k = int(opts.sentences_per_image)
    return TrainingSetup(
        model=model,
        loss_fn=functools.partial(
            _loss, reduction=opts.loss_reduction, dice_weight=float(opts.loss_dice_weight)
        ),
        train_dataset=SentenceGroups(train_set, train_set.image_groups()) if k > 1 else train_set,
        forward_fn=_forward,
        collate_fn=collate_groups if k > 1 else None,
        train_transform=train_transforms(size, flip=opts.flip, sentences_per_image=k),
        validate=validate,
        best_metric="oIoU",
        higher_is_better=True,
        model_name=cfg.model.name,
        checkpoint_extra=extra,
        param_groups=parameter_groups(model, cfg.optim.weight_decay),
    )
