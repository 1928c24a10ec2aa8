"""Random generators of the transforms: the per-process default and per-sample seeding.

Every random choice of a transform comes from its ``rng`` argument; this module turns what
callers pass (a generator, a seed, nothing) into a :class:`numpy.random.Generator` and keeps
the per-process generator used when nothing is passed (see :func:`default_generator`).
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Sequence

import cv2
import numpy as np

#: What a transform accepts as ``rng``: a generator, or anything ``default_rng`` accepts.
RngLike = np.random.Generator | np.random.SeedSequence | int | Sequence[int] | None

# (pid, generator) of the process that made it: a forked child sees another pid and makes its
# own generator instead of repeating its parent's stream.
_PROCESS_RNG: tuple[int, np.random.Generator] | None = None
_IMPORT_PID = os.getpid()


def default_generator() -> np.random.Generator:
    """The generator used when a transform is called without ``rng``.

    One per process, created on first use:

    * in a DataLoader worker, seeded from the worker's torch seed (which DataLoader derives
      from the main process's torch generator), so ``torch.manual_seed`` makes loading
      reproducible and no two workers repeat each other's augmentation;
    * in the process that imported this module, from ``torch.initial_seed()`` when torch is
      loaded (reproducible after ``torch.manual_seed``), otherwise from OS entropy;
    * in any other forked process, from OS entropy (never a copy of the parent's stream).
    """
    global _PROCESS_RNG
    pid = os.getpid()
    if _PROCESS_RNG is None or _PROCESS_RNG[0] != pid:
        torch = sys.modules.get("torch")
        worker = torch.utils.data.get_worker_info() if torch is not None else None
        if worker is not None:
            gen = np.random.default_rng([int(worker.seed) % (1 << 63), int(worker.id)])
        elif torch is not None and pid == _IMPORT_PID:
            gen = np.random.default_rng(int(torch.initial_seed()) % (1 << 63))
        else:
            gen = np.random.default_rng()
        _PROCESS_RNG = (pid, gen)
    return _PROCESS_RNG[1]


def rng_for(seed: int, index: int, epoch: int = 0) -> np.random.Generator:
    """A generator that depends only on ``(seed, epoch, index)``.

    Pass it as ``rng`` from a dataset's ``__getitem__`` to get augmentation that is the same
    whatever the number of workers or the order in which they load samples.
    """
    return np.random.default_rng([int(seed), int(epoch), int(index)])


def _as_generator(rng: RngLike) -> np.random.Generator:
    """``rng`` as a generator: itself, a new one seeded by it, or the process default."""
    if rng is None:
        return default_generator()
    if isinstance(rng, np.random.Generator):
        return rng
    return np.random.default_rng(rng)


def dataloader_worker_init(worker_id: int) -> None:
    """``worker_init_fn`` for DataLoaders over these transforms.

    Limits OpenCV to one thread per worker (the workers already use the cores; OpenCV's own
    thread pool would oversubscribe them) and reseeds :func:`default_generator` from the
    worker's torch seed. The worker ignores SIGINT: Ctrl-C reaches every process of the
    terminal's process group, and the main process, which stops at the next step boundary and
    writes a checkpoint, still needs its workers until then (it ends them itself; SIGTERM is
    how it does so when they do not stop in time, so that one keeps its default).
    """
    global _PROCESS_RNG
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    cv2.setNumThreads(1)
    _PROCESS_RNG = None
    default_generator()
