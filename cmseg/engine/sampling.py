"""Deterministic, resumable data order and per-sample augmentation randomness.

The order of training samples is a pure function of ``(seed, epoch)``: every epoch is a fresh
permutation drawn from ``numpy.random.default_rng([seed, epoch])``, split between the ranks of
a distributed run and cut into full batches. The *data position* ``(epoch, batch)`` (batches
already consumed in that epoch) is all a resumed run needs to continue with exactly the batch
the interrupted run would have taken next.

The batch sampler hands out keys ``(epoch, index)`` rather than bare indices, and
:class:`AugmentedDataset` calls the transform with ``rng=rng_for(seed, index, epoch)``: the
augmentation of a sample depends on nothing else (not the worker that loads it, not the load
order), so 0 or 8 DataLoader workers, interrupted or not, see the same pixels.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from cmseg.data.transforms import rng_for
from cmseg.errors import ConfigError

__all__ = ["AugmentedDataset", "ResumableBatchSampler"]

log = logging.getLogger(__name__)


class AugmentedDataset:
    """A dataset indexed by ``(epoch, index)`` that applies ``transform`` with a keyed rng.

    Args:
        dataset: any map-style dataset (``len`` and ``[int]``), typically a reader built
            without its own transform.
        transform: ``transform(sample, rng=generator) -> sample`` (the convention of
            :mod:`cmseg.data.transforms`), or None.
        seed: the run's seed.
    """

    def __init__(self, dataset: Any, transform: Callable[..., Any] | None, seed: int) -> None:
        self.dataset = dataset
        self.transform = transform
        self.seed = int(seed)
        if transform is not None and getattr(dataset, "transform", None) is not None:
            log.warning(
                "the training dataset applies its own transform as well; its randomness is "
                "not tied to (seed, index, epoch), so resumed runs may differ"
            )

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: tuple[int, int]) -> Any:
        epoch, index = key
        sample = self.dataset[index]
        if self.transform is None:
            return sample
        return self.transform(sample, rng=rng_for(self.seed, index, epoch))


class ResumableBatchSampler:
    """Endless batches of ``(epoch, index)`` keys in a seeded order, from a data position.

    Each epoch permutes ``range(num_samples)`` with ``default_rng([seed, epoch])``; in a
    distributed run the permutation is padded (by repeating its start) to a multiple of
    ``world_size`` and rank ``r`` takes every ``world_size``-th sample from ``r``. Only full
    batches are formed (the remainder of an epoch is dropped), so every step sees
    ``batch_size`` samples per rank and all ranks take the same number of steps.

    Args:
        num_samples: size of the dataset.
        batch_size: samples per batch on this rank.
        seed: the run's seed.
        start_epoch, start_batch: the data position to start from.
        rank, world_size: this process's place in a distributed run.
    """

    def __init__(
        self,
        num_samples: int,
        batch_size: int,
        *,
        seed: int,
        start_epoch: int = 0,
        start_batch: int = 0,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        if batch_size < 1:
            raise ConfigError(f"data.batch_size must be >= 1, got {batch_size}")
        self.num_samples = num_samples
        self.batch_size = batch_size
        self.seed = int(seed)
        self.rank = rank
        self.world_size = world_size
        per_rank = -(-num_samples // world_size)  # ceil: the padded share of each rank
        self.batches_per_epoch = per_rank // batch_size
        if self.batches_per_epoch < 1:
            raise ConfigError(
                f"the training set has {num_samples} samples: too few for one batch of "
                f"{batch_size} per process on {world_size} process(es); lower data.batch_size"
            )
        if not 0 <= start_batch < self.batches_per_epoch:
            raise ValueError(f"start_batch {start_batch} outside 0..{self.batches_per_epoch - 1}")
        self.start_epoch = start_epoch
        self.start_batch = start_batch

    def epoch_indices(self, epoch: int) -> np.ndarray:
        """This rank's sample indices of ``epoch``, in order (full batches only)."""
        order = np.random.default_rng([self.seed, int(epoch)]).permutation(self.num_samples)
        padded = -(-self.num_samples // self.world_size) * self.world_size
        if padded > len(order):
            order = np.concatenate([order, order[: padded - len(order)]])
        mine = order[self.rank :: self.world_size]
        return mine[: self.batches_per_epoch * self.batch_size]

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        epoch, first = self.start_epoch, self.start_batch
        while True:
            indices = self.epoch_indices(epoch)
            for b in range(first, self.batches_per_epoch):
                chunk = indices[b * self.batch_size : (b + 1) * self.batch_size]
                yield [(epoch, int(i)) for i in chunk]
            epoch, first = epoch + 1, 0
