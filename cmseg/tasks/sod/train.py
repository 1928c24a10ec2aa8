"""``cmseg train`` for ``task: sod``: XMSNet (or a baseline) on SOD folders.

The model is built from the ``model`` section; the training set is
``SODFolders(data.root, sets=data.train_sets)`` with
:func:`~cmseg.data.transforms.sod_train_transforms` at ``model.image_size``; the loss is
XMSNet's (:func:`~cmseg.models.xmsnet.loss.xmsnet_loss`) for models with its seven side
outputs and :func:`~cmseg.models.xmsnet.loss.deep_supervision_loss` otherwise; validation is
:class:`~cmseg.tasks.sod.validate.SODValidator` on ``data.val_sets``, the best checkpoint
chosen by ``sm`` unless ``train.best_metric`` says otherwise. ``data.train_sets`` empty reads
every set under ``data.root`` (or ``data.root`` itself when it is one set); ``data.val_sets``
empty means no validation. Options: :mod:`cmseg.tasks.sod.options`.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from cmseg.data.formats.sod_folders import SODFolders
from cmseg.data.transforms import sod_train_transforms
from cmseg.engine.model_building import build_from_section
from cmseg.engine.training_setup import TrainingSetup
from cmseg.errors import ConfigError
from cmseg.models.xmsnet.loss import XMSNET_SIDE_WEIGHTS, deep_supervision_loss, xmsnet_loss
from cmseg.tasks.sod.options import SODOptions
from cmseg.tasks.sod.process import check_image_size
from cmseg.tasks.sod.validate import SODValidator

if TYPE_CHECKING:
    from cmseg.config import RunConfig

__all__ = ["build_sod_model", "build_training"]

log = logging.getLogger(__name__)


def build_sod_model(section: Any, *, weights: bool = True) -> nn.Module:
    """A sod network from a ``model`` section (a run's ``ModelConfig`` or a checkpoint's dict).

    Raises:
        ConfigError: unknown model name, or an option the builder does not take.
    """
    return build_from_section(
        section, weights=weights, options_hint="task options such as zero_aux go under data.options"
    )


def _forward(model: nn.Module, batch: Mapping[str, Any], *, zero_aux: bool) -> Any:
    aux = torch.zeros_like(batch["aux"]) if zero_aux else batch["aux"]
    return model(batch["image"], aux)


def _loss(
    outputs: Any, batch: Mapping[str, Any], *, kl_weight: float, official: bool
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    outputs = list(outputs) if isinstance(outputs, (list, tuple)) else [outputs]
    if len(outputs) == len(XMSNET_SIDE_WEIGHTS):
        return xmsnet_loss(outputs, batch["mask"], kl_weight=kl_weight, official=official)
    return deep_supervision_loss(outputs, batch["mask"])


def _check_data(cfg: RunConfig) -> None:
    if cfg.data.format not in ("", "sod_folders"):
        raise ConfigError(f"data.format: task sod reads 'sod_folders', got {cfg.data.format!r}")
    if not cfg.data.root:
        raise ConfigError("data.root is not set (the dataset folder)")
    if cfg.data.batch_size < 2:
        raise ConfigError(
            f"data.batch_size must be >= 2 for XMSNet (BatchNorm over 1x1 channel descriptors), "
            f"got {cfg.data.batch_size}"
        )


def _validator(cfg: RunConfig, opts: SODOptions, size: int) -> SODValidator | None:
    if not cfg.data.val_sets:
        return None
    val_set = SODFolders(
        opts.val_root or cfg.data.root,
        sets=cfg.data.val_sets,
        zero_is_invalid=opts.zero_is_invalid,
        aux_key=opts.aux_key,
        aux_normalisation=opts.aux_normalisation,
    )
    return SODValidator(
        val_set,
        size,
        batch_size=cfg.data.batch_size,
        num_workers=cfg.data.num_workers,
        zero_aux=opts.zero_aux,
    )


def _log_run(
    cfg: RunConfig, train_set: SODFolders, validate: SODValidator | None, zero_aux: bool
) -> None:
    validation: Sequence[str] = validate.dataset.sets if validate is not None else ()
    log.info(
        "sod: %s, %d training images (%s)%s%s",
        cfg.model.name,
        len(train_set),
        ", ".join(train_set.sets),
        f", validating on {len(validate.dataset)} ({', '.join(validation)})"
        if validate is not None
        else ", no validation",
        ", aux input zeroed (RGB-only)" if zero_aux else "",
    )
    log.info("sod: aux maps normalised with %s", train_set.aux_normalisation)


def build_training(cfg: RunConfig) -> TrainingSetup:
    """The training run of ``task: sod`` (module docstring).

    Raises:
        ConfigError: a bad option, model name, image size or batch size.
        InputError: the dataset folders are missing or incomplete.
    """
    opts = SODOptions.from_config(cfg.data.options)
    _check_data(cfg)
    size = check_image_size(cfg.model.image_size)
    model = build_sod_model(cfg.model)
    train_set = SODFolders(
        cfg.data.root,
        sets=cfg.data.train_sets or None,
        zero_is_invalid=opts.zero_is_invalid,
        aux_key=opts.aux_key,
        aux_normalisation=opts.aux_normalisation,
    )
    validate = _validator(cfg, opts, size)
    _log_run(cfg, train_set, validate, opts.zero_aux)
    return TrainingSetup(
        model=model,
        loss_fn=functools.partial(
            _loss, kl_weight=opts.loss_kl_weight, official=opts.loss_official
        ),
        train_dataset=train_set,
        forward_fn=functools.partial(_forward, zero_aux=opts.zero_aux),
        train_transform=sod_train_transforms(
            size, mask_pepper=opts.mask_pepper, aux_noise=opts.aux_noise
        ),
        validate=validate,
        best_metric="sm",
        higher_is_better=True,
        model_name=cfg.model.name,
    )
