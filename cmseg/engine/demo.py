"""The demo loop that every ``cmseg demo TASK`` runs, and what the demos share.

A task's demo is a :class:`DemoRecipe` (``tasks/<task>/demo.py``): its data, the methods it
compares, how each is configured and scored, and the table it prints. :func:`run_recipe` does
the rest the same way for every task:

1. reads the run's settings (:func:`start_demo`: ``--out``, ``--seed``, ``--device``,
   ``CMSEG_DEMO_STEPS`` / ``CMSEG_DEMO_SCENES``) and prepares the output folder;
2. lets the recipe write its data (``prepare``);
3. for each method: saves its configuration, seeds, builds the training run with the task's
   training hook, trains it with :class:`~cmseg.engine.trainer.Trainer`, and lets the recipe
   score the last checkpoint;
4. writes ``table.md`` and ``results.json`` and prints the table.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cmseg.errors import ConfigError, InputError

if TYPE_CHECKING:
    from cmseg.config import DataConfig, RunConfig, TrainConfig
    from cmseg.engine.training_setup import TrainingSetup

__all__ = [
    "MARKER",
    "DemoRun",
    "DemoReport",
    "DemoRecipe",
    "keep_setup",
    "condition_rows",
    "train_section",
    "data_section",
    "InMemory",
    "env_int",
    "prepare_out",
    "start_demo",
    "run_recipe",
]

log = logging.getLogger(__name__)

#: Torch threads of every demo run (the README's tables were measured with 2 on 2 cores).
DEMO_THREADS = 2

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
        InputError: ``out`` cannot be written (:func:`cmseg.fs.check_output_dir`), or is a
            foreign non-empty folder.
    """
    from cmseg.io import check_output_dir, remove_entries, write_json

    check_output_dir(out)  # a file on the way, no write permission, a read-only disk
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
) -> DemoRun:  # fmt: skip
    """Check ``--seed``, read ``CMSEG_DEMO_STEPS`` / ``CMSEG_DEMO_SCENES`` (else ``steps`` /
    ``samples``), set the torch threads (:data:`DEMO_THREADS` unless ``--native-kernels``;
    ``OMP_NUM_THREADS`` wins) and prepare the output folder (:func:`prepare_out`).

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
    # The number of threads splits the CPU's sums differently: the tables were measured with 2
    # (the 2-core machines of the README); more cores make the demo faster but other numbers.
    threads = default_workers() if getattr(args, "native_kernels", False) else DEMO_THREADS
    torch.set_num_threads(env_int("OMP_NUM_THREADS", threads, 1))
    prepare_out(run.out, owned, task)
    return run


# --------------------------------------------------------------------------------------------
# The recipe and the loop


@dataclass(frozen=True)
class DemoReport:
    """What a demo prints and saves after its methods ran.

    Attributes:
        title: one line saying what was run (data, steps, seed).
        header, rows: the table (rows of cells; floats are shown with 3 digits).
        summary: JSON-able facts of the run written into ``results.json`` after ``task``
            and ``seed`` (data counts, options, pretraining).
    """

    title: str
    header: list[str]
    rows: list[list[Any]]
    summary: dict[str, Any] = field(default_factory=dict)


def condition_rows(
    entries: Mapping[str, Mapping[str, Any]],
    conditions: Mapping[str, str],
    columns: Sequence[str],
) -> list[list[Any]]:
    """The rows of a method x test-condition table: per method (``entry["name"]``) and per
    condition ``key -> label``, ``[name, label, *metrics]`` with the metrics read from
    ``entry["results"][key]["metrics"]`` by their flattened names ``columns`` (None when
    absent)."""
    from cmseg.engine.reports import flatten

    rows = []
    for entry in entries.values():
        for key, label in conditions.items():
            flat = flatten(entry["results"][key]["metrics"])
            rows.append([entry["name"], label] + [flat.get(c) for c in columns])
    return rows


def keep_setup(setup: TrainingSetup, context: Any) -> TrainingSetup:
    """The default ``adapt``: the training run as the task built it."""
    return setup


def train_section(steps: int, seed: int, device: str) -> TrainConfig:
    """The ``train`` section of every demo run: ``steps`` steps, no validation or intermediate
    checkpoints (the demo scores the held-out data itself), no TensorBoard."""
    from cmseg.config import TrainConfig

    return TrainConfig(
        max_steps=steps,
        seed=seed,
        device=device,
        log_every=max(1, min(50, steps)),
        eval_every=0,
        checkpoint_every=0,
        tensorboard=False,
    )


def data_section(
    root: str | os.PathLike[str], data_format: str, batch_size: int, options: dict[str, Any]
) -> DataConfig:
    """The ``data`` section of every demo run: its ``train`` split, no validation sets (the demo
    scores the held-out data itself, after training) and no loader workers (the samples are
    cached in memory, :class:`InMemory`; workers would only compete for the cores)."""
    from cmseg.config import DataConfig

    return DataConfig(
        root=str(root),
        format=data_format,
        train_sets=["train"],
        val_sets=[],
        batch_size=batch_size,
        num_workers=0,
        options=options,
    )


@dataclass(frozen=True)
class DemoRecipe:
    """A task's ``cmseg demo``: the parts that differ from task to task.

    Attributes:
        task: the task name (checkpoints and the output folder's marker record it).
        methods: ``{key: table name}`` of the models trained, in order.
        default_out: ``--out`` when not given.
        owned: the entries of the output folder the demo writes (replaced on a re-run).
        steps: training steps per model (``CMSEG_DEMO_STEPS`` overrides).
        samples: items generated (``CMSEG_DEMO_SCENES`` overrides), at least ``min_samples``.
        prepare: ``prepare(run) -> context``: writes the data (and anything the methods
            share) and returns a mutable object the other hooks receive.
        config: ``config(key, run, context) -> RunConfig`` of one method.
        score: ``score(key, checkpoint, run, context) -> entry``: predicts and scores the
            held-out data with the trained checkpoint; ``entry["results"]`` holds the scores,
            other keys describe the model (``params``...).
        describe: ``describe(entry) -> str``: the headline scores for the log line.
        report: ``report(run, context, entries) -> DemoReport``.
        adapt: ``adapt(setup, context) -> setup``: changes the built training run before it
            trains, e.g. an in-memory copy of the training set shared by the methods (default:
            unchanged).
    """

    task: str
    methods: Mapping[str, str]
    default_out: str
    owned: tuple[str, ...]
    steps: int
    samples: int
    min_samples: int
    prepare: Callable[[DemoRun], Any]
    config: Callable[[str, DemoRun, Any], RunConfig]
    score: Callable[[str, Path, DemoRun, Any], dict[str, Any]]
    describe: Callable[[Mapping[str, Any]], str]
    report: Callable[[DemoRun, Any, Mapping[str, Mapping[str, Any]]], DemoReport]
    adapt: Callable[[TrainingSetup, Any], TrainingSetup] = keep_setup


def _train_one(
    cfg: RunConfig,
    build_training: Callable[[RunConfig], TrainingSetup],
    adapt: Callable[[TrainingSetup, Any], TrainingSetup],
    context: Any,
) -> None:
    """Train one method as ``cmseg train`` would: config saved, seeded, built, fitted."""
    from cmseg.config import save_config
    from cmseg.engine.rng import seed_all
    from cmseg.engine.trainer import Trainer

    save_config(cfg, Path(cfg.output_dir) / "config.yaml")
    seed_all(cfg.train.seed)  # the same initial weights on every run, as `cmseg train` does
    setup = adapt(build_training(cfg), context)
    Trainer.from_setup(setup, cfg).fit()


def _write_report(
    run: DemoRun, task: str, report: DemoReport, entries: Mapping[str, Any], total: float
) -> None:
    from cmseg.engine.reports import format_markdown, format_text
    from cmseg.engine.reproducibility import environment
    from cmseg.io import write_json, write_text

    markdown = format_markdown(report.header, report.rows, digits=3)
    write_text(
        run.out / "table.md", f"{report.title}\n\n{markdown}\nTotal wall time: {total:.0f} s\n"
    )
    write_json(
        run.out / "results.json",
        {"task": task, "seed": run.seed, **report.summary, "environment": environment(),
         "methods": dict(entries),
         "total_seconds": round(total, 1)},
    )  # fmt: skip
    text = format_text(report.header, report.rows, digits=3)
    print(f"\n{report.title}\n\n{text}\n\ntotal wall time {total:.0f} s ({total / 60:.1f} min); "
          f"results in {run.out}", file=sys.stdout, flush=True)  # fmt: skip


def run_recipe(
    recipe: DemoRecipe,
    build_training: Callable[[RunConfig], TrainingSetup],
    args: argparse.Namespace,
) -> int:
    """Run a task's demo (module docstring); returns the exit code.

    Args:
        recipe: the task's demo.
        build_training: the task's training hook (``cmseg train``'s builder).
        args: ``--out``, ``--seed``, ``--device`` of ``cmseg demo``.
    """
    from cmseg.engine.reproducibility import pin_cpu_kernels
    from cmseg.fs import removed_if_failed

    if not getattr(args, "native_kernels", False):
        pin_cpu_kernels()  # one table on every x86-64 machine (before torch is imported)
    start = time.perf_counter()
    # A demo that fails before its first training (settings, its data) leaves no new folder.
    with removed_if_failed(Path(args.out or recipe.default_out)):
        run = start_demo(
            args, task=recipe.task, default_out=recipe.default_out, owned=recipe.owned,
            steps=recipe.steps, samples=recipe.samples, min_samples=recipe.min_samples,
        )  # fmt: skip
        context = recipe.prepare(run)
    entries: dict[str, dict[str, Any]] = {}
    for number, (key, name) in enumerate(recipe.methods.items(), start=1):
        cfg = recipe.config(key, run, context)
        log.info("[%d/%d] %s: training %d steps", number, len(recipe.methods), name, run.steps)
        tick = time.perf_counter()
        _train_one(cfg, build_training, recipe.adapt, context)
        train_seconds = time.perf_counter() - tick
        tick = time.perf_counter()
        scored = recipe.score(key, Path(cfg.output_dir) / "last", run, context)
        entry = {"name": name, **{k: v for k, v in scored.items() if k != "results"},
                 "steps": run.steps, "train_seconds": round(train_seconds, 1),
                 "eval_seconds": round(time.perf_counter() - tick, 1), "results": scored["results"]}  # fmt: skip
        log.info("[%d/%d] %s: trained in %.0f s; %s", number, len(recipe.methods), name,
                 train_seconds, recipe.describe(entry))  # fmt: skip
        entries[key] = entry
    report = recipe.report(run, context, entries)
    _write_report(run, recipe.task, report, entries, time.perf_counter() - start)
    return 0
