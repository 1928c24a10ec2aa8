"""What the demos (``cmseg demo sod``, ``cmseg demo ris``) share: the output folder rules,
environment overrides of their size, and an in-memory copy of the training set."""

from __future__ import annotations

import argparse
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cmseg.errors import ConfigError, InputError

__all__ = ["MARKER", "DemoRun", "InMemory", "env_int", "prepare_out", "start_demo"]

#: The file that marks a folder as a demo's own (a re-run may replace what it wrote there).
MARKER = "cmseg_demo.json"


class InMemory:
    """A map-style dataset decoded once: the demos' samples are small and read many times."""

    def __init__(self, dataset: Any) -> None:
        self.samples = [dataset[i] for i in range(len(dataset))]

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> Any:
        return self.samples[index]


def env_int(name: str, default: int, minimum: int) -> int:
    """The integer in environment variable ``name`` (``default`` when unset or empty).

    Raises:
        ConfigError: not an integer, or below ``minimum``.
    """
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    try:
        value = int(text)
    except ValueError:
        raise ConfigError(f"{name} must be an integer, got {text!r}") from None
    if value < minimum:
        raise ConfigError(f"{name} must be >= {minimum}, got {value}")
    return value


def prepare_out(out: Path, owned: Iterable[str], task: str) -> None:
    """Create ``out``, or clear the entries ``owned`` that an earlier demo wrote there; refuse
    a non-empty folder that no demo marked (nothing of the user's is ever removed).

    Raises:
        InputError: ``out`` is a file, or a foreign non-empty folder.
    """
    from cmseg.io import remove_entries, write_json

    if out.exists() and not out.is_dir():
        raise InputError(out, "exists and is not a folder")
    if out.is_dir() and any(out.iterdir()):
        if not (out / MARKER).is_file():
            raise InputError(
                out, "folder is not empty and holds no earlier demo run; choose another --out"
            )
        remove_entries(out, owned)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / MARKER, {"command": "cmseg demo", "task": task})


@dataclass(frozen=True)
class DemoRun:
    """The settings every demo reads from its command line and environment."""

    out: Path
    seed: int
    steps: int
    samples: int
    device: str


def start_demo(
    args: argparse.Namespace,
    *,
    task: str,
    default_out: str,
    owned: Iterable[str],
    steps: int,
    samples: int,
    min_samples: int,
) -> DemoRun:
    """Check ``--seed``, read ``CMSEG_DEMO_STEPS`` / ``CMSEG_DEMO_SCENES`` (else ``steps`` /
    ``samples``), use every core (``OMP_NUM_THREADS`` wins: the trainings run one after
    another) and prepare the output folder (:func:`prepare_out`).

    Raises:
        ConfigError: a negative seed or a bad environment value.
        InputError: see :func:`prepare_out`.
    """
    import torch

    from cmseg.engine.evaluate import default_workers

    seed = int(args.seed)
    if seed < 0:
        raise ConfigError(f"--seed must be >= 0, got {seed}")
    run = DemoRun(
        out=Path(args.out or default_out),
        seed=seed,
        steps=env_int("CMSEG_DEMO_STEPS", steps, 1),
        samples=env_int("CMSEG_DEMO_SCENES", samples, min_samples),
        device=getattr(args, "device", "auto") or "auto",
    )
    torch.set_num_threads(env_int("OMP_NUM_THREADS", default_workers(), 1))
    prepare_out(run.out, owned, task)
    return run
