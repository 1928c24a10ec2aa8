"""``cmseg train`` for ``task: coseg``: SSNM on COCO groups or on processed folders.

The training classes are SSNM's COCO co-categories (``data.format: coco``; the dictionary of
:mod:`cmseg.tasks.coseg.dictionary`) or the class folders of processed sets (``folders``);
their names (and COCO ids) are stored in every checkpoint's ``meta.json`` (``extra``), and
their number is the model's ``num_classes``. Each step trains ``data.batch_size`` groups of
``group_size`` images (:mod:`cmseg.tasks.coseg.data`) with SSNM's loss
(:func:`cmseg.models.ssnm.loss.ssnm_loss`: weighted BCE + co-category BCE + smooth L1).
Validation (:class:`~cmseg.tasks.coseg.validate.CosegValidator`): the held-out training
images (``heldout``) and the processed test sets of ``data.val_sets``; the best checkpoint is
chosen by ``heldout/J`` (``train.best_metric`` may name any other, e.g. ``PASCAL_VOC/P``, the
official choice, which selects on a test set). Options: :mod:`cmseg.tasks.coseg.options`.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from cmseg.data.formats.coseg_groups import CocoGroups
from cmseg.engine.model_building import build_from_section
from cmseg.engine.training_setup import TrainingSetup
from cmseg.errors import ConfigError
from cmseg.tasks.coseg.data import (
    HELDOUT,
    CocoPools,
    DrawGroup,
    FixedGroups,
    FolderPools,
    TrainGroups,
    open_folder_sets,
    open_test_set,
)
from cmseg.tasks.coseg.dictionary import coco_dictionary
from cmseg.tasks.coseg.options import COSEG_FORMATS, CosegOptions
from cmseg.tasks.coseg.process import check_image_size
from cmseg.tasks.coseg.validate import CosegValidator

if TYPE_CHECKING:
    from cmseg.config import RunConfig

__all__ = ["build_coseg_model", "build_training"]

log = logging.getLogger(__name__)


def build_coseg_model(section: Any, num_classes: int, *, weights: bool = True) -> nn.Module:
    """An SSNM network from a ``model`` section, with ``num_classes`` co-categories.

    Raises:
        ConfigError: unknown model name, an option the builder does not take, or
            ``model.options.num_classes`` (the task sets it from the training classes).
    """
    options = section.get("options") if isinstance(section, Mapping) else section.options
    if "num_classes" in (options or {}):
        raise ConfigError(
            "model.options.num_classes is set by the task (the number of training classes)"
        )
    return build_from_section(
        section,
        weights=weights,
        options_hint="task options such as group_size go under data.options",
        num_classes=int(num_classes),
    )


def _forward(model: nn.Module, batch: Mapping[str, Any]) -> Any:
    return model(batch["images"])


def _loss(
    output: Any, batch: Mapping[str, Any], *, foreground_weight: str, weights: Sequence[float]
) -> tuple[torch.Tensor, dict[str, Any]]:
    from cmseg.models.ssnm.loss import ssnm_loss

    return ssnm_loss(  # type: ignore[no-any-return]
        output,
        batch["masks"],
        batch["labels"],
        foreground_weight=foreground_weight,
        weights=tuple(float(w) for w in weights),
    )


def _check_data(cfg: RunConfig) -> str:
    data_format = cfg.data.format or COSEG_FORMATS[0]
    if data_format not in COSEG_FORMATS:
        raise ConfigError(
            f"data.format: task coseg reads {', '.join(COSEG_FORMATS)}; got {cfg.data.format!r}"
        )
    if not cfg.data.root:
        raise ConfigError("data.root is not set (the COCO root or the processed sets' folder)")
    if data_format == "coco" and len(cfg.data.train_sets) > 1:
        raise ConfigError(
            f"data.train_sets: coco trains on one split (e.g. [train2017]), got "
            f"{list(cfg.data.train_sets)}"
        )
    return data_format


def _pools(cfg: RunConfig, data_format: str, opts: CosegOptions) -> CocoPools | FolderPools:
    root = Path(cfg.data.root)
    if data_format == "folders":
        return FolderPools(open_folder_sets(root, cfg.data.train_sets), opts)
    split = cfg.data.train_sets[0] if cfg.data.train_sets else "train2017"
    coco = CocoGroups(
        root,
        split=split,
        group_size=opts.group_size,
        min_area=opts.min_area,
        min_images=opts.min_images,
    )
    table = coco_dictionary(coco.index, coco.annotation_file, opts)
    return CocoPools(coco, table, opts)


def _validator(
    cfg: RunConfig, pools: CocoPools | FolderPools, opts: CosegOptions, size: int
) -> CosegValidator | None:
    sets: dict[str, FixedGroups] = {}
    heldout = pools.heldout_groups()
    if len(heldout):
        sets[HELDOUT] = heldout
    test_root = Path(opts.test_root or cfg.data.root)
    for name in cfg.data.val_sets:
        if name == HELDOUT:
            raise ConfigError(f"data.val_sets: {HELDOUT!r} is the held-out set's own name")
        sets[name] = open_test_set(test_root / name, opts.group_size, opts.protocol)
    if not sets:
        return None
    reading = {"batch_size": cfg.data.batch_size, "num_workers": cfg.data.num_workers}
    return CosegValidator(sets, size, protocol=opts.protocol, **reading)


def _log_run(cfg: RunConfig, pools: CocoPools | FolderPools, validate: Any) -> None:
    sets = ", ".join(f"{n} ({len(g)} groups)" for n, g in validate.sets.items()) if validate else ""
    log.info(
        "coseg: %s, %d classes, %d training images%s",
        cfg.model.name,
        len(pools.names),
        pools.num_images(),
        f", validating on {sets}" if sets else ", no validation",
    )


def build_training(cfg: RunConfig) -> TrainingSetup:
    """The training run of ``task: coseg`` (module docstring).

    Raises:
        ConfigError: a bad option, format, model name or image size.
        InputError: the dataset files are missing or malformed (one line naming the file).
    """
    opts = CosegOptions.from_config(cfg.data.options)
    data_format = _check_data(cfg)
    size = check_image_size(cfg.model.image_size)
    pools = _pools(cfg, data_format, opts)
    names = pools.names
    model = build_coseg_model(cfg.model, len(names))
    validate = _validator(cfg, pools, opts, size)
    _log_run(cfg, pools, validate)
    extra: dict[str, Any] = {"categories": names}
    if isinstance(pools, CocoPools):
        extra["category_ids"] = pools.ids
    best = f"{HELDOUT}/J" if validate and HELDOUT in validate.sets else ""
    if validate and not best:
        best = f"{next(iter(validate.sets))}/J"
    return TrainingSetup(
        model=model,
        loss_fn=functools.partial(
            _loss, foreground_weight=opts.foreground_weight, weights=opts.loss_weights
        ),
        train_dataset=TrainGroups(pools, pools.num_images() // opts.group_size),
        forward_fn=_forward,
        train_transform=DrawGroup(size, flip=opts.flip),
        validate=validate,
        best_metric=best,
        higher_is_better=True,
        model_name=cfg.model.name,
        checkpoint_extra=extra,
    )
