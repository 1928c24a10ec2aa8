"""``cmseg train CONFIG.yaml [key=value ...] [--resume PATH]`` (distributed under torchrun)."""

from __future__ import annotations

import logging
from pathlib import Path

from cmseg.config import RunConfig, save_config
from cmseg.errors import InputError

log = logging.getLogger(__name__)


def run_train(cfg: RunConfig, resume: str | None = None) -> int:
    """Train the configured task; returns the exit code.

    Writes ``config.yaml`` (the resolved configuration), ``metrics.csv``, ``tensorboard/``,
    ``last/`` and ``best/`` under ``cfg.output_dir``. ``resume`` is a checkpoint folder or a
    run folder (its ``last/`` is used).
    """
    # torch is imported here, not at module level: the CLI starts fast for other commands.
    from cmseg.engine import distributed
    from cmseg.engine.checkpoint import resolve_checkpoint_dir
    from cmseg.engine.rng import seed_all
    from cmseg.engine.trainer import Trainer
    from cmseg.tasks import get_task

    builder = get_task(cfg.task).require("train")
    out = Path(cfg.output_dir)
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
        if not distributed.is_main():
            logging.getLogger("cmseg").setLevel(logging.WARNING)  # rank 0 speaks for all
        else:
            save_config(cfg, out / "config.yaml")
        seed_all(cfg.train.seed)  # the same initial weights on every rank and every run
        setup = builder(cfg)
        trainer = Trainer.from_setup(setup, cfg)
        metrics = trainer.fit(resume=resume)
        if distributed.is_main():
            shown = "  ".join(f"{k} {v:.4f}" for k, v in metrics.items())
            log.info(
                "done: %d steps%s; checkpoints in %s",
                trainer.step,
                f" ({shown})" if shown else "",
                out,
            )
            if trainer.best_step is not None:
                log.info(
                    "best %s %.4f at step %d (%s)",
                    trainer.best_metric,
                    trainer.best_value,
                    trainer.best_step,
                    out / "best",
                )
    finally:
        distributed.cleanup()
    return 0
