"""Distributed data-parallel helpers; every function is a no-op in a single process.

``torchrun --nproc_per_node=N -m cmseg.cli train ...`` (or ``torchrun $(which cmseg) train``)
starts N processes and sets ``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE``, ``MASTER_ADDR`` and
``MASTER_PORT``; :func:`init_from_env` reads them and joins the process group with ``nccl`` for
CUDA devices and ``gloo`` for CPU. Without those variables (or with ``WORLD_SIZE=1``) nothing
is initialised and :func:`rank` is 0, :func:`world_size` 1.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from cmseg.errors import ConfigError

__all__ = [
    "init_from_env",
    "is_distributed",
    "rank",
    "local_rank",
    "world_size",
    "is_main",
    "barrier",
    "all_reduce_sums",
    "all_reduce_mean",
    "broadcast_buffers",
    "all_gather_objects",
    "resolve_device",
    "cleanup",
]

log = logging.getLogger(__name__)


def _env_world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def init_from_env(device: torch.device) -> bool:
    """Join the process group described by torchrun's environment variables.

    Idempotent: returns True when this process is (now) part of a group of two or more.
    """
    if is_distributed():
        return True
    if _env_world_size() <= 1 or not dist.is_available():
        return False
    backend = "nccl" if device.type == "cuda" else "gloo"
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group(backend=backend)
    log.debug("rank %d/%d joined the %s process group", rank(), world_size(), backend)
    return True


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", "0")) if is_distributed() else 0


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def is_main() -> bool:
    """True on rank 0 (the process that writes logs and checkpoints)."""
    return rank() == 0


def barrier() -> None:
    if is_distributed():
        dist.barrier()


def _reduce_device() -> torch.device:
    # nccl reduces CUDA tensors only; gloo reduces CPU tensors.
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def all_reduce_sums(values: Mapping[str, float]) -> dict[str, float]:
    """Sum each value over all ranks (the keys must be the same, in the same order, everywhere).

    This is how additive evaluator state (sums and counts, DESIGN §4) becomes global.
    """
    if not is_distributed():
        return {k: float(v) for k, v in values.items()}
    keys = list(values)
    # float64: a sum of per-image scores over thousands of images must not lose digits.
    t = torch.tensor([float(values[k]) for k in keys], dtype=torch.float64, device=_reduce_device())
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return dict(zip(keys, t.cpu().tolist(), strict=True))


def all_reduce_mean(values: Mapping[str, float], weight: float = 1.0) -> dict[str, float]:
    """Weighted mean of each value over all ranks: ``sum(w_r * v_r) / sum(w_r)``.

    With equal weights it is the plain mean; ranks that all hold the same value get it back.
    """
    if not is_distributed():
        return {k: float(v) for k, v in values.items()}
    keys = list(values)
    data = [float(values[k]) * weight for k in keys] + [float(weight)]
    t = torch.tensor(data, dtype=torch.float64, device=_reduce_device())
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    *sums, total = t.cpu().tolist()
    if total <= 0:
        raise ValueError("all_reduce_mean: the weights sum to zero over the ranks")
    return {k: s / total for k, s in zip(keys, sums, strict=True)}


def broadcast_buffers(module: nn.Module, src: int = 0) -> None:
    """Give every rank rank ``src``'s buffers of ``module`` (batch-norm running statistics).

    DDP broadcasts them at the start of each forward, so after the last training step each
    rank holds its own update: validating then would score every rank's share with other
    statistics than the checkpoint rank 0 saves.
    """
    if not is_distributed():
        return
    for buffer in module.buffers():
        dist.broadcast(buffer.data, src=src)


def all_gather_objects(obj: Any) -> list[Any]:
    """``[obj of rank 0, obj of rank 1, ...]`` (``[obj]`` in a single process)."""
    if not is_distributed():
        return [obj]
    out: list[Any] = [None] * world_size()
    dist.all_gather_object(out, obj)
    return out


def resolve_device(spec: str) -> torch.device:
    """``auto``, ``cpu``, ``cuda`` or ``cuda:N`` -> a device.

    Under torchrun, ``auto`` and ``cuda`` pick the GPU of this process (``LOCAL_RANK``).

    Raises:
        ConfigError: an unknown spec, or CUDA asked for where there is none.
    """
    spec = spec.strip().lower()
    distributed_run = _env_world_size() > 1
    local = int(os.environ.get("LOCAL_RANK", "0")) if distributed_run else 0
    if spec == "auto":
        return torch.device("cuda", local) if torch.cuda.is_available() else torch.device("cpu")
    if spec == "cpu":
        return torch.device("cpu")
    if spec == "cuda" or spec.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise ConfigError(
                f"train.device={spec!r} but CUDA is not available (use 'cpu' or 'auto')"
            )
        if spec == "cuda":
            return torch.device("cuda", local)
        try:
            index = int(spec.split(":", 1)[1])
        except ValueError:
            raise ConfigError(f"train.device: cannot parse {spec!r} (expected cuda:N)") from None
        if not 0 <= index < torch.cuda.device_count():
            raise ConfigError(
                f"train.device={spec!r} but only {torch.cuda.device_count()} CUDA device(s) exist"
            )
        return torch.device("cuda", index)
    raise ConfigError(f"train.device: expected auto, cpu, cuda or cuda:N, got {spec!r}")


def cleanup() -> None:
    """Leave the process group (no-op when none was joined)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
