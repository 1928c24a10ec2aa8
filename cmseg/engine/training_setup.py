"""What a task hands to the trainer.

A task's training hook (``tasks/<task>/train.py: build_training``) reads the run
configuration and returns a :class:`TrainingSetup`: the built network, its loss, the training
set and how to validate. The trainer (:class:`cmseg.engine.trainer.Trainer`) knows nothing else
about the task.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # keep this module free of torch at import time
    import torch
    from torch import nn


__all__ = ["TrainingSetup", "LossFn", "ForwardFn", "ValidateFn"]

#: ``loss_fn(outputs, batch) -> (loss, parts)``: a scalar tensor to minimise and a dict of named
#: terms (floats or 0-dim tensors) to log.
LossFn = Callable[[Any, Any], "tuple[torch.Tensor, Mapping[str, Any]]"]
#: ``forward_fn(model, batch) -> outputs``; ``model`` may be the DDP wrapper, so call it
#: (``model(...)``) rather than reaching into its submodules.
ForwardFn = Callable[["nn.Module", Any], Any]
#: ``validate(model) -> metrics``: called on every rank with the model in eval mode under
#: ``torch.no_grad()``; see :class:`TrainingSetup` for how metrics are combined over ranks.
ValidateFn = Callable[["nn.Module"], Mapping[str, float]]


@dataclass
class TrainingSetup:
    """Everything task-specific that a training run needs.

    Attributes:
        model: the built network (``nn.Module``), on CPU; the trainer moves it.
        loss_fn: see :data:`LossFn`. Losses live outside the model (DESIGN §3).
        train_dataset: map-style dataset (``len`` and ``[int]``) of sample dicts, built
            *without* random augmentation: give that as ``train_transform``.
        forward_fn: see :data:`ForwardFn`; default ``model(batch)``.
        collate_fn: turns a list of samples into a batch (default: torch's default collate).
        train_transform: ``transform(sample, rng=generator) -> sample``; the trainer calls it
            with ``rng_for(seed, index, epoch)`` so augmentation is reproducible and resumable.
        validate: see :data:`ValidateFn`, or None for no validation. Under ``torchrun`` the
            returned metrics are averaged over ranks, weighted by the optional reserved key
            ``"num_samples"``; a task whose metrics are not means (e.g. overall IoU) reduces
            its evaluator state itself with :func:`cmseg.engine.distributed.all_reduce_sums`
            and returns the same values on every rank.
        best_metric: metric that selects ``best/`` (``train.best_metric`` overrides it).
        higher_is_better: direction of ``best_metric`` (``train.higher_is_better`` overrides).
        param_groups: optional optimizer parameter groups (dicts with ``params`` and e.g. a
            smaller ``lr`` for a pretrained backbone); default: every trainable parameter.
        model_name: key of ``cmseg.models.MODELS``, recorded in checkpoints.
        checkpoint_extra: JSON-able data that rebuilding the model needs besides the
            configuration (the ris word vocabulary), stored in every checkpoint's
            ``meta.json`` under ``"extra"``.
    """

    model: nn.Module
    loss_fn: LossFn
    train_dataset: Any
    forward_fn: ForwardFn | None = None
    collate_fn: Callable[[list[Any]], Any] | None = None
    train_transform: Callable[..., Any] | None = None
    validate: ValidateFn | None = None
    best_metric: str = ""
    higher_is_better: bool = True
    param_groups: Sequence[dict[str, Any]] | None = None
    model_name: str = ""
    checkpoint_extra: Mapping[str, Any] | None = None
