"""``cmseg train CONFIG.yaml [key=value ...] [--resume PATH]`` (distributed under torchrun)."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cmseg.config import RunConfig, save_config
from cmseg.errors import InputError
from cmseg.fs import Keeper, check_output_dir, removed_if_failed

log = logging.getLogger(__name__)


def run_train(cfg: RunConfig, resume: str | None = None) -> int:
    """Train the configured task; returns the exit code.

    Writes ``config.yaml`` (the resolved configuration), ``metrics.csv``, ``tensorboard/``,
    ``last/`` and ``best/`` under ``cfg.output_dir``. ``resume`` is a checkpoint folder or a
    run folder (its ``last/`` is used). The output folder is checked before the data is
    indexed; a run that fails before its first optimizer step removes the folder it created.
    """
    # torch is imported here, not at module level: the CLI starts fast for other commands.
    from cmseg.engine import distributed
    from cmseg.engine.checkpoint import resolve_checkpoint_dir
    from cmseg.tasks import get_task

    builder = get_task(cfg.task).require("train")
    out = check_output_dir(cfg.output_dir)  # before the data is indexed or a device claimed
    if resume is not None:
        resume = str(resolve_checkpoint_dir(resume))
    elif (out / "last").exists():
        raise InputError(
            out,
            "already holds a trained run (last/); continue it with --resume "
            f"{out} or choose another output_dir",
        )

    distributed.init_from_env(distributed.resolve_device(cfg.train.device))
    try:
        # Only rank 0 writes into the run folder, so only rank 0 may take it away again.
        guard = removed_if_failed(out) if distributed.is_main() else contextlib.nullcontext()
        with guard as keeper:
            trainer, metrics = _fit(cfg, builder, resume, keeper)
        if distributed.is_main():
            _report(trainer, metrics, out)
    finally:
        distributed.cleanup()
    return 0


def _fit(
    cfg: RunConfig, builder: Callable[[RunConfig], Any], resume: str | None, keeper: Keeper | None
) -> tuple[Any, dict[str, float]]:
    """Save the configuration, seed, build and train; marks the run folder as kept once an
    optimizer step was done (or a checkpoint exists)."""
    from cmseg.engine import distributed
    from cmseg.engine.rng import seed_all
    from cmseg.engine.trainer import Trainer

    out = Path(cfg.output_dir)
    if not distributed.is_main():
        logging.getLogger("cmseg").setLevel(logging.WARNING)  # rank 0 speaks for all
    else:
        save_config(cfg, out / "config.yaml")
    seed_all(cfg.train.seed)  # the same initial weights on every rank and every run
    setup = builder(cfg)
    trainer = Trainer.from_setup(setup, cfg)
    try:
        return trainer, trainer.fit(resume=resume)
    finally:
        if keeper is not None and (trainer.step > 0 or (out / "last").exists()):
            keeper.keep()


def _report(trainer: Any, metrics: dict[str, float], out: Path) -> None:
    shown = "  ".join(f"{k} {v:.4f}" for k, v in metrics.items())
    log.info(
        "done: %d steps%s; checkpoints in %s", trainer.step, f" ({shown})" if shown else "", out
    )
    if trainer.best_step is not None:
        log.info(
            "best %s %.4f at step %d (%s)",
            trainer.best_metric,
            trainer.best_value,
            trainer.best_step,
            out / "best",
        )
