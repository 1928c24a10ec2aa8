"""Learning-rate schedules as pure functions of the optimizer step.

:func:`lr_factor` gives the multiplier of the base learning rate at a step; the trainer wraps
it in a :class:`torch.optim.lr_scheduler.LambdaLR` that is stepped once per optimizer step, so
step ``s`` (counted from 0) trains with ``base_lr * lr_factor(s, ...)``.

Every schedule starts with an optional linear warm-up: during the first ``warmup_steps`` steps
the factor rises as ``(s + 1) / warmup_steps`` and reaches 1 on the last warm-up step. After
the warm-up:

==========  ====================================================================================
name        factor at step ``s``
==========  ====================================================================================
constant    1
step        ``gamma ** (s // step_size)`` (``s`` counted from the start of training, as milestone
            schedules in detection/segmentation code do)
poly        ``floor + (1 - floor) * (1 - t) ** power``
cosine      ``floor + (1 - floor) * (1 + cos(pi * t)) / 2``
==========  ====================================================================================

with ``t = (s - warmup_steps) / (decay_steps - warmup_steps)`` clipped to ``[0, 1]`` and
``floor = min_lr / base_lr``. ``decay_steps`` is ``max_steps`` unless set: then poly and cosine
reach ``floor`` at the end of the run. A longer horizon stops the run part-way down the
curve, as CMPC does (``polynomial_decay`` over 800k steps, training stopped at 700k).
"""

from __future__ import annotations

import math
from collections.abc import Callable

from cmseg.errors import ConfigError

__all__ = ["SCHEDULES", "lr_factor", "make_lr_lambda"]

SCHEDULES = ("constant", "step", "poly", "cosine")


def lr_factor(
    step: int,
    *,
    name: str,
    max_steps: int,
    warmup_steps: int = 0,
    step_size: int = 0,
    gamma: float = 0.1,
    power: float = 0.9,
    floor: float = 0.0,
    decay_steps: int = 0,
) -> float:
    """Multiplier of the base learning rate at optimizer step ``step`` (0-based).

    Args:
        name: ``constant``, ``step``, ``poly`` or ``cosine``.
        max_steps: total number of optimizer steps of the run.
        warmup_steps: length of the linear warm-up.
        step_size: ``step`` only: decay by ``gamma`` every this many steps.
        gamma: ``step`` only: multiplicative decay.
        power: ``poly`` only: exponent.
        floor: ``poly`` / ``cosine``: final factor (``min_lr / base_lr``).
        decay_steps: ``poly`` / ``cosine``: horizon of the decay; 0 means ``max_steps``.
    """
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    if name == "constant":
        return 1.0
    if name == "step":
        return gamma ** (step // step_size)
    span = max(1, (decay_steps or max_steps) - warmup_steps)
    t = min(1.0, max(0.0, (step - warmup_steps) / span))
    if name == "poly":
        return floor + (1.0 - floor) * (1.0 - t) ** power
    if name == "cosine":
        return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * t))
    raise ConfigError(f"schedule.name: expected one of {', '.join(SCHEDULES)}, got {name!r}")


def make_lr_lambda(
    *,
    name: str,
    base_lr: float,
    max_steps: int,
    warmup_steps: int = 0,
    step_size: int = 0,
    gamma: float = 0.1,
    power: float = 0.9,
    min_lr: float = 0.0,
    decay_steps: int = 0,
) -> Callable[[int], float]:
    """Check the schedule's settings and return ``step -> factor`` for ``LambdaLR``.

    ``min_lr`` is an absolute learning rate; it becomes the ``floor`` factor relative to
    ``base_lr`` (parameter groups with their own learning rate keep the same ratio).

    Raises:
        ConfigError: an unknown name or settings that cannot work (``step`` without a
            positive ``step_size``, a negative warm-up, ``min_lr`` above ``base_lr``).
    """
    if name not in SCHEDULES:
        raise ConfigError(f"schedule.name: expected one of {', '.join(SCHEDULES)}, got {name!r}")
    if warmup_steps < 0:
        raise ConfigError(f"schedule.warmup_steps must be >= 0, got {warmup_steps}")
    if name == "step" and step_size <= 0:
        raise ConfigError("schedule.step_size must be a positive number of steps for 'step'")
    if base_lr <= 0:
        raise ConfigError(f"optim.lr must be positive, got {base_lr}")
    if decay_steps < 0 or (decay_steps and decay_steps <= warmup_steps):
        raise ConfigError(
            f"schedule.decay_steps must be 0 (= max_steps) or above warmup_steps, got {decay_steps}"
        )
    if not 0.0 <= min_lr <= base_lr:
        raise ConfigError(f"schedule.min_lr must lie in [0, optim.lr={base_lr}], got {min_lr}")
    floor = min_lr / base_lr

    # A closure (a plain function) keeps LambdaLR.state_dict free of callables: only the step
    # counter and the base learning rates are saved, and the schedule comes from the config.
    def factor(step: int) -> float:
        return lr_factor(
            step,
            name=name,
            max_steps=max_steps,
            warmup_steps=warmup_steps,
            step_size=step_size,
            gamma=gamma,
            power=power,
            floor=floor,
            decay_steps=decay_steps,
        )

    return factor
