"""The training loop shared by every task: one plain loop, readable top to bottom.

Per optimizer step: ``accumulate`` micro-batches, each ``forward_fn(model, batch)`` then
``loss_fn(outputs, batch)`` under autocast (CUDA only), backward of ``loss / accumulate``;
then gradient clipping (by norm or by value), the optimizer step (through a GradScaler for
fp16), the learning-rate schedule and the EMA update. Every ``log_every`` steps the losses are
logged; every ``eval_every`` steps and at the end the task's ``validate`` runs and the best
checkpoint is kept; every ``checkpoint_every`` steps and at the end ``last/`` is saved.

Reproducibility: the data order is a function of ``(seed, epoch)``, augmentation of ``(seed,
index, epoch)`` (:mod:`cmseg.engine.sampling`), and the checkpoint holds the optimizer,
scheduler, scaler, EMA, the RNG states of every rank and the data position. A CPU run that is
killed and resumed ends with the same weights, bit for bit, as one that never stopped.
Validation runs with the RNG states saved and restored, so it never shifts training's random
streams.

Under ``torchrun`` the model is wrapped in DistributedDataParallel, each rank reads its share
of every epoch, only rank 0 writes logs and checkpoints, and logged losses and validation
metrics are averaged over the ranks.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import math
import signal
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader

from cmseg.config import OptimConfig, RunConfig, ScheduleConfig, TrainConfig, to_dict
from cmseg.data.transforms import dataloader_worker_init
from cmseg.engine import distributed
from cmseg.engine.allocator import keep_freed_memory
from cmseg.engine.checkpoint import load_checkpoint, load_resume_state, save_checkpoint
from cmseg.engine.logger import ProgressBar, RunLogger
from cmseg.engine.rng import preserved_rng, rng_state, seed_all, set_rng_state
from cmseg.engine.sampling import AugmentedDataset, ResumableBatchSampler
from cmseg.engine.schedules import make_lr_lambda
from cmseg.engine.signals import Interrupted, StopOnSignals
from cmseg.engine.training_setup import ForwardFn, LossFn, TrainingSetup, ValidateFn
from cmseg.errors import CmsegError, ConfigError

__all__ = ["Trainer", "ModelEMA", "TrainingDiverged", "build_optimizer"]

log = logging.getLogger(__name__)


class TrainingDiverged(CmsegError):
    """The loss became NaN or infinite."""


class ModelEMA:
    """Exponential moving average of a model's weights: ``ema = decay * ema + (1 - decay) * w``
    after every optimizer step; buffers (e.g. BatchNorm statistics) are copied as they are."""

    def __init__(self, model: nn.Module, decay: float) -> None:
        if not 0.0 < decay < 1.0:
            raise ConfigError(f"train.ema_decay must lie in (0, 1), got {decay}")
        self.decay = decay
        self.module = copy.deepcopy(model).eval().requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        for ema, new in zip(
            self.module.state_dict().values(), model.state_dict().values(), strict=True
        ):
            if ema.dtype.is_floating_point:
                ema.lerp_(new, 1.0 - self.decay)
            else:
                ema.copy_(new)


def build_optimizer(params: Any, cfg: OptimConfig) -> torch.optim.Optimizer:
    """Adam, AdamW or SGD (with momentum) over ``params`` (parameters or parameter groups)."""
    if cfg.name == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay)
    if cfg.name == "adamw":
        return torch.optim.AdamW(params, lr=cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay)
    if cfg.name == "sgd":
        return torch.optim.SGD(
            params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay
        )
    raise ConfigError(f"optim.name: expected adam, adamw or sgd, got {cfg.name!r}")


def _check_train_config(train: TrainConfig) -> None:
    """Refuse loop settings that cannot run, before any device or process-group set-up.

    Raises:
        ConfigError: ``max_steps < 1``, ``accumulate < 1`` or a ``grad_clip`` that is not
            positive (None, no clipping, is allowed).
    """
    if train.max_steps < 1:
        raise ConfigError(f"train.max_steps must be >= 1, got {train.max_steps}")
    if train.accumulate < 1:
        raise ConfigError(f"train.accumulate must be >= 1, got {train.accumulate}")
    if train.grad_clip is not None and train.grad_clip <= 0:
        raise ConfigError(f"train.grad_clip must be positive or null, got {train.grad_clip}")


def _build_scheduler(
    optimizer: torch.optim.Optimizer,
    optim: OptimConfig,
    schedule: ScheduleConfig,
    max_steps: int,
) -> torch.optim.lr_scheduler.LambdaLR:
    """The run's learning-rate schedule (``schedule``, from ``optim.lr``), one step per
    optimizer step; constructing it sets the step-0 learning rate on ``optimizer``."""
    lr_lambda = make_lr_lambda(
        name=schedule.name,
        base_lr=optim.lr,
        max_steps=max_steps,
        warmup_steps=schedule.warmup_steps,
        step_size=schedule.step_size,
        gamma=schedule.gamma,
        power=schedule.power,
        min_lr=schedule.min_lr,
        decay_steps=schedule.decay_steps,
    )
    if optim.reset_on_decay and schedule.name != "step":
        raise ConfigError(
            f"optim.reset_on_decay restarts the optimizer at each decay of a 'step' schedule; "
            f"schedule.name is {schedule.name!r}"
        )
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda)


def _decayed(scheduler: torch.optim.lr_scheduler.LambdaLR) -> bool:
    """Whether the step the scheduler has just moved to trains at a lower rate than the last."""
    step = scheduler.last_epoch
    return step > 0 and any(f(step) < f(step - 1) for f in scheduler.lr_lambdas)


def _autocast_dtype(amp: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for ``train.amp`` on ``device``, or None to train in float32.

    Raises:
        ConfigError: ``bf16`` on a GPU without bfloat16 support.
    """
    # Mixed precision is a CUDA feature here: CPU autocast is slow and changes results.
    if amp != "off" and device.type != "cuda":
        log.info("train.amp=%s ignored: mixed precision is CUDA-only, training in float32", amp)
        return None
    if amp == "bf16":
        if not torch.cuda.is_bf16_supported():
            raise ConfigError("train.amp=bf16 but this GPU has no bfloat16 support (use fp16)")
        return torch.bfloat16
    if amp == "fp16":
        return torch.float16
    return None


class Trainer:
    """Trains a built model on a dataset with the hyperparameters of a run configuration.

    Args:
        model: the network (moved to the training device here).
        loss_fn: ``loss_fn(outputs, batch) -> (scalar loss, {name: float or 0-dim tensor})``.
        train_dataset: map-style dataset of samples; see :class:`AugmentedDataset`.
        output_dir: the run folder: ``last/``, ``best/``, ``metrics.csv``, ``tensorboard/``.
        train, optim, schedule: the run's hyperparameters.
        batch_size: samples per micro-batch on each process.
        num_workers: DataLoader worker processes.
        forward_fn: ``forward_fn(model, batch) -> outputs``; default ``model(batch)``.
        collate_fn: list of samples -> batch; default torch's default collate.
        transform: ``transform(sample, rng=...)`` applied with ``rng_for(seed, index, epoch)``.
        validate: ``validate(model) -> {metric: value}``, or None.
        best_metric: metric that selects ``best/`` ("" keeps no best checkpoint).
        higher_is_better: direction of ``best_metric``.
        param_groups: optimizer parameter groups; default every trainable parameter.
        model_name: recorded in checkpoint metadata.
        config: the resolved run configuration as a dict, recorded in checkpoint metadata.
        checkpoint_extra: JSON-able task data recorded in every checkpoint's ``meta.json``
            under ``"extra"`` (see :class:`~cmseg.engine.training_setup.TrainingSetup`).
    """

    def __init__(
        self,
        model: nn.Module,
        loss_fn: LossFn,
        train_dataset: Any,
        *,
        output_dir: str | Path,
        train: TrainConfig,
        optim: OptimConfig,
        schedule: ScheduleConfig,
        batch_size: int,
        num_workers: int = 0,
        forward_fn: ForwardFn | None = None,
        collate_fn: Callable[[list[Any]], Any] | None = None,
        transform: Callable[..., Any] | None = None,
        validate: ValidateFn | None = None,
        best_metric: str = "",
        higher_is_better: bool = True,
        param_groups: Sequence[dict[str, Any]] | None = None,
        model_name: str = "",
        config: Mapping[str, Any] | None = None,
        checkpoint_extra: Mapping[str, Any] | None = None,
    ) -> None:
        _check_train_config(train)
        self.cfg = train
        self.output_dir = Path(output_dir)
        self.device = distributed.resolve_device(train.device)
        distributed.init_from_env(self.device)
        self.rank, self.world_size = distributed.rank(), distributed.world_size()
        self.is_main = self.rank == 0

        self.model = model.to(self.device)
        self.loss_fn = loss_fn
        self.forward_fn = forward_fn or (lambda m, batch: m(batch))
        self.dataset = AugmentedDataset(train_dataset, transform, train.seed)
        self.batch_size, self.num_workers, self.collate_fn = batch_size, num_workers, collate_fn
        self.validate = validate
        self.best_metric, self.higher_is_better = best_metric, higher_is_better
        self.model_name, self.config = model_name, dict(config or {})
        self.checkpoint_extra = dict(checkpoint_extra or {})

        params = param_groups or [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = build_optimizer(params, optim)
        self.scheduler = _build_scheduler(self.optimizer, optim, schedule, train.max_steps)
        self.reset_on_decay = optim.reset_on_decay
        self.amp_dtype = _autocast_dtype(train.amp, self.device)
        # fp16 gradients underflow without loss scaling; bf16 has float32's range and needs none.
        self.scaler = torch.amp.GradScaler("cuda") if self.amp_dtype == torch.float16 else None
        self.ema = ModelEMA(self.model, train.ema_decay) if train.ema_decay is not None else None

        self.step = 0  # optimizer steps done
        self.epoch, self.batch_in_epoch = 0, 0  # data position: batches consumed in `epoch`
        self.best_value: float | None = None
        self.best_step: int | None = None
        self._batches_per_epoch = 0

    @classmethod
    def from_setup(cls, setup: TrainingSetup, cfg: RunConfig) -> Trainer:
        """A trainer for a task's :class:`TrainingSetup` under run configuration ``cfg``."""
        higher = cfg.train.higher_is_better
        return cls(
            setup.model,
            setup.loss_fn,
            setup.train_dataset,
            output_dir=cfg.output_dir,
            train=cfg.train,
            optim=cfg.optim,
            schedule=cfg.schedule,
            batch_size=cfg.data.batch_size,
            num_workers=cfg.data.num_workers,
            forward_fn=setup.forward_fn,
            collate_fn=setup.collate_fn,
            transform=setup.train_transform,
            validate=setup.validate,
            best_metric=cfg.train.best_metric or setup.best_metric,
            higher_is_better=setup.higher_is_better if higher is None else higher,
            param_groups=setup.param_groups,
            model_name=setup.model_name or cfg.model.name,
            config=to_dict(cfg),
            checkpoint_extra=setup.checkpoint_extra,
        )

    # ----------------------------------------------------------------------------------------
    # The loop

    def fit(self, resume: str | Path | None = None) -> dict[str, float]:
        """Train to ``train.max_steps``, optionally continuing from a checkpoint folder.

        Returns:
            The metrics of the last validation (``{}`` without ``validate``).
        """
        cfg = self.cfg
        if self.device.type == "cpu":
            keep_freed_memory()  # the same activations every step: no page faults for them
        if resume is not None:
            self._restore(resume)
        else:
            seed_all(cfg.seed + self.rank)  # ranks differ in dropout etc., not in their data
        model = self._wrap_ddp()
        batches = self._batches()
        logger = RunLogger(
            self.output_dir,
            enabled=self.is_main,
            tensorboard=cfg.tensorboard,
            resume_step=self.step,  # drops rows an interrupted run wrote after its checkpoint
        )
        bar = ProgressBar(cfg.max_steps, self.step, enabled=self.is_main)
        metrics: dict[str, float] = {}
        window: dict[str, Any] = {}  # sums of the logged values since the last log line
        window_steps, tick = 0, time.perf_counter()
        self.model.train()
        stop = StopOnSignals().install()  # SIGTERM / Ctrl-C: finish the step, checkpoint, stop
        try:
            while self.step < cfg.max_steps:
                lr = self.optimizer.param_groups[0]["lr"]
                values = self._train_step(model, batches)
                self.step += 1
                bar.advance()
                for name, value in values.items():
                    window[name] = window.get(name, 0.0) + value
                window_steps += 1
                last = self.step == cfg.max_steps

                if (cfg.log_every > 0 and self.step % cfg.log_every == 0) or last:
                    means = {k: float(v) / window_steps for k, v in window.items()}
                    means = distributed.all_reduce_mean(means)
                    if not math.isfinite(means["loss"]):
                        raise TrainingDiverged(
                            f"the loss is {means['loss']} at step {self.step}: training diverged "
                            "(lower optim.lr, add warm-up or set train.grad_clip)"
                        )
                    seconds = time.perf_counter() - tick
                    images = window_steps * self.batch_size * cfg.accumulate * self.world_size
                    speed = images / max(seconds, 1e-9)
                    logger.log(self.step, "train", {**means, "lr": lr, "images_per_s": speed})
                    bar.show(self.step, means["loss"], lr, speed)
                    window, window_steps = {}, 0

                if self.validate is not None and (
                    (cfg.eval_every > 0 and self.step % cfg.eval_every == 0) or last
                ):
                    metrics = self._evaluate(logger)
                saved = (cfg.checkpoint_every > 0 and self.step % cfg.checkpoint_every == 0) or last
                if saved:
                    self._save_last(metrics)
                if window_steps == 0:
                    tick = time.perf_counter()  # images/s measures training, not evaluation
                signum = self._stop_signal(stop)
                if signum is not None and not last:
                    if not saved:
                        self._save_last(metrics)
                    raise Interrupted(signum, self.output_dir / "last", self.step)
        finally:
            stop.restore()
            bar.close()
            logger.close()
            del batches  # stops DataLoader workers
        distributed.barrier()
        return metrics

    def _stop_signal(self, stop: StopOnSignals) -> int | None:
        """The signal that asks to stop, once any rank got one (all ranks stop at one step)."""
        if not distributed.is_distributed():
            return stop.signum
        seen = distributed.all_reduce_sums({"stop": float(stop.signum or 0)})["stop"]
        if seen <= 0:
            return None
        return stop.signum or int(signal.SIGTERM)

    def _train_step(self, model: nn.Module, batches: Iterator[Any]) -> dict[str, Any]:
        """One optimizer step over ``accumulate`` micro-batches; returns the step's mean loss
        and loss terms (tensors: no device sync here)."""
        accumulate = self.cfg.accumulate
        sums: dict[str, Any] = {}
        for micro in range(accumulate):
            batch = _to_device(next(batches), self.device)
            self._advance_data_position()
            # Under DDP, gradients are all-reduced only on the last micro-batch.
            last = micro == accumulate - 1
            sync = contextlib.nullcontext() if last or model is self.model else model.no_sync()
            with sync:
                with self._autocast():
                    outputs = self.forward_fn(model, batch)
                    loss, parts = self.loss_fn(outputs, batch)
                # Mean over micro-batches, so accumulation matches one batch `accumulate` x larger.
                scaled = loss / accumulate
                (self.scaler.scale(scaled) if self.scaler is not None else scaled).backward()
            for name, value in {"loss": loss, **parts}.items():
                v = value.detach().float() if torch.is_tensor(value) else float(value)
                sums[name] = sums.get(name, 0.0) + v / accumulate

        params = [p for group in self.optimizer.param_groups for p in group["params"]]
        if self.cfg.grad_clip is not None:
            if self.scaler is not None:
                self.scaler.unscale_(self.optimizer)  # clip the true gradients, not scaled ones
            if self.cfg.grad_clip_mode == "norm":
                nn.utils.clip_grad_norm_(params, self.cfg.grad_clip)
            else:
                nn.utils.clip_grad_value_(params, self.cfg.grad_clip)
        if self.scaler is not None:
            self.scaler.step(self.optimizer)  # skips the step when gradients overflowed
            self.scaler.update()
        else:
            self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.scheduler.step()
        if self.reset_on_decay and _decayed(self.scheduler):
            # A fresh optimizer, as SSNM re-creates Adam: zero moments, bias correction anew.
            # Before any checkpoint of this step, so a resumed run resets exactly the same way.
            self.optimizer.state.clear()
        if self.ema is not None:
            self.ema.update(self.model)
        return sums

    def _autocast(self) -> contextlib.AbstractContextManager[Any]:
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type="cuda", dtype=self.amp_dtype)

    # ----------------------------------------------------------------------------------------
    # Data

    def _batches(self) -> Iterator[Any]:
        """Endless batches from the current data position (see :mod:`cmseg.engine.sampling`)."""
        sampler = ResumableBatchSampler(
            len(self.dataset),
            self.batch_size,
            seed=self.cfg.seed,
            start_epoch=self.epoch,
            start_batch=self.batch_in_epoch,
            rank=self.rank,
            world_size=self.world_size,
        )
        self._batches_per_epoch = sampler.batches_per_epoch
        if self.num_workers > 0:
            # Forked workers inherit OpenCV's thread pool in whatever state it is; a worker
            # forked while a pool thread holds its lock hangs in its first cv2 call (seen with
            # a pool warmed up by earlier OpenCV work in this process). One OpenCV thread here
            # means no pool to inherit; the workers give the parallelism.
            import cv2

            cv2.setNumThreads(1)
        loader = DataLoader(
            self.dataset,
            batch_sampler=sampler,
            num_workers=self.num_workers,
            collate_fn=self.collate_fn,
            pin_memory=self.device.type == "cuda",
            worker_init_fn=dataloader_worker_init if self.num_workers > 0 else None,
            # Its own generator: creating the loader must not draw from the global torch RNG.
            generator=torch.Generator().manual_seed(self.cfg.seed + self.rank),
        )
        return iter(loader)

    def _advance_data_position(self) -> None:
        self.batch_in_epoch += 1
        if self.batch_in_epoch == self._batches_per_epoch:
            self.epoch, self.batch_in_epoch = self.epoch + 1, 0

    # ----------------------------------------------------------------------------------------
    # Validation and checkpoints

    def _evaluate(self, logger: RunLogger) -> dict[str, float]:
        model = self.ema.module if self.ema is not None else self.model
        # Every rank scores its share with the buffers (BN statistics) of the saved model.
        distributed.broadcast_buffers(model)
        model.eval()
        with preserved_rng(), torch.no_grad(), self._autocast():
            raw = dict(self.validate(model))  # type: ignore[misc]
        self.model.train()
        weight = float(raw.pop("num_samples", 1.0))
        metrics = distributed.all_reduce_mean({k: float(v) for k, v in raw.items()}, weight)
        logger.log(self.step, "val", metrics)
        if self.is_main:
            shown = "  ".join(f"{k} {v:.4f}" for k, v in metrics.items())
            log.info("step %d  validation: %s", self.step, shown)
        if self.best_metric:
            if self.best_metric not in metrics:
                raise ConfigError(
                    f"train.best_metric {self.best_metric!r} is not a validation metric "
                    f"(got {', '.join(metrics) or 'none'})"
                )
            value = metrics[self.best_metric]
            better = self.best_value is None or (
                value > self.best_value if self.higher_is_better else value < self.best_value
            )
            if better:
                self.best_value, self.best_step = value, self.step
                if self.is_main:
                    save_checkpoint(
                        self.output_dir / "best",
                        self._inference_weights(),
                        step=self.step,
                        model_name=self.model_name,
                        config=self.config,
                        metrics=metrics,
                        ema=self.ema is not None,
                        extra=self.checkpoint_extra,
                    )
        return metrics

    def _inference_weights(self) -> dict[str, torch.Tensor]:
        return (self.ema.module if self.ema is not None else self.model).state_dict()

    def _save_last(self, metrics: Mapping[str, float]) -> None:
        rng = distributed.all_gather_objects(rng_state())  # collective: every rank calls it
        if not self.is_main:
            return
        state = {
            "step": self.step,
            "data": {
                "epoch": self.epoch,
                "batch": self.batch_in_epoch,
                "batch_size": self.batch_size,
                "world_size": self.world_size,
            },
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict() if self.scaler is not None else None,
            # model.safetensors holds the EMA weights when EMA is on; the trained ones go here.
            "model": self.model.state_dict() if self.ema is not None else None,
            "rng": rng,
            "best": {"metric": self.best_metric, "value": self.best_value, "step": self.best_step},
        }
        save_checkpoint(
            self.output_dir / "last",
            self._inference_weights(),
            step=self.step,
            model_name=self.model_name,
            config=self.config,
            metrics=metrics,
            ema=self.ema is not None,
            resume_state=state,
            extra=self.checkpoint_extra,
        )

    def _restore(self, path: str | Path) -> None:
        """Load model, optimizer, scheduler, scaler, EMA, RNG and data position."""
        state = load_resume_state(path)
        weights, meta = load_checkpoint(path)
        trained = state["model"] if state.get("model") is not None else weights
        self.model.load_state_dict(trained)
        if self.ema is not None:
            self.ema.module.load_state_dict(weights if meta.get("ema") else trained)
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        # Recompute the current learning rate from the configured schedule (the same value when
        # the schedule is unchanged; the new one when e.g. max_steps was raised to train longer).
        sched = self.scheduler
        for group, base, factor in zip(
            self.optimizer.param_groups, sched.base_lrs, sched.lr_lambdas, strict=True
        ):
            group["lr"] = base * factor(sched.last_epoch)
        if self.scaler is not None and state.get("scaler") is not None:
            self.scaler.load_state_dict(state["scaler"])
        self.step = int(state["step"])
        data = state["data"]
        self.epoch, self.batch_in_epoch = int(data["epoch"]), int(data["batch"])
        if (data["batch_size"], data["world_size"]) != (self.batch_size, self.world_size):
            # The position counts batches of another size: start the next epoch afresh.
            log.warning(
                "batch size or process count changed since the checkpoint; "
                "the data order restarts at the next epoch"
            )
            self.epoch, self.batch_in_epoch = self.epoch + 1, 0
        best = state.get("best") or {}
        if best.get("metric") == self.best_metric:
            self.best_value, self.best_step = best.get("value"), best.get("step")
        rngs = state["rng"]
        if len(rngs) != self.world_size:
            log.warning(
                "the checkpoint holds RNG states of %d process(es), not %d; "
                "random streams will differ from an uninterrupted run",
                len(rngs),
                self.world_size,
            )
        set_rng_state(rngs[self.rank] if len(rngs) == self.world_size else rngs[0])
        if self.is_main:
            log.info("resumed from %s at step %d", path, self.step)

    def _wrap_ddp(self) -> nn.Module:
        if not distributed.is_distributed():
            return self.model
        return DistributedDataParallel(
            self.model,
            device_ids=[self.device.index] if self.device.type == "cuda" else None,
            find_unused_parameters=self.cfg.find_unused_parameters,
        )


# --------------------------------------------------------------------------------------------
# Helpers


def _to_device(batch: Any, device: torch.device) -> Any:
    if torch.is_tensor(batch):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, Mapping):
        return {k: _to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, tuple) and hasattr(batch, "_fields"):  # a namedtuple
        return type(batch)(*(_to_device(v, device) for v in batch))
    if isinstance(batch, (list, tuple)):
        return type(batch)(_to_device(v, device) for v in batch)
    return batch
