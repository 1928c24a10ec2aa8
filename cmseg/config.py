"""Typed configuration: dataclasses, YAML files and ``key=value`` overrides.

A run is described by a tree of dataclasses (:class:`RunConfig` at the top). It is built from
the dataclass defaults, then a YAML file, then command-line overrides such as
``optim.lr=2.5e-4 train.amp=bf16``, each value checked against the field's type. Any unknown
key raises a one-line :class:`~cmseg.errors.ConfigError` that suggests the closest valid key.
The resolved configuration is saved beside the run's outputs (:func:`save_config`) so a run can
always be repeated.

Models never receive a config object (DESIGN §4): the code that builds a model reads the
fields it needs and passes them as keyword arguments.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import types
import typing
from collections.abc import Callable, Mapping, Sequence, Set
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar, Union

import yaml

from cmseg.errors import ConfigError, InputError

T = TypeVar("T")

__all__ = [
    "ModelConfig",
    "DataConfig",
    "OptimConfig",
    "ScheduleConfig",
    "TrainConfig",
    "RunConfig",
    "load_config",
    "check_task",
    "check_values",
    "LIMITS",
    "from_dict",
    "to_dict",
    "apply_overrides",
    "save_config",
]


# --------------------------------------------------------------------------------------------
# The schema shared by every task


@dataclass
class ModelConfig:
    """Which network to build and from which weights."""

    name: str = ""  #: key of ``cmseg.models.MODELS``
    backbone: str = ""  #: timm model name of the image encoder
    backbone_weights: str | None = None  #: local file with timm-layout weights (never a download)
    image_size: int = 384  #: square training / inference resolution in pixels
    options: dict[str, Any] = field(default_factory=dict)  #: method-specific keyword arguments


@dataclass
class DataConfig:
    """Where the data lives and how it is loaded."""

    root: str = ""  #: dataset root folder
    format: str = ""  #: reader name, e.g. ``sod_folders`` or ``refcoco``
    train_sets: list[str] = field(default_factory=list)
    val_sets: list[str] = field(default_factory=list)
    batch_size: int = 8
    num_workers: int = 2
    options: dict[str, Any] = field(default_factory=dict)  #: reader-specific keyword arguments


@dataclass
class OptimConfig:
    name: Literal["adam", "adamw", "sgd"] = "adam"
    lr: float = 1e-4
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.999)
    momentum: float = 0.9  #: SGD only
    #: restart the optimizer's state (Adam's moments) at each decay of a ``step`` schedule, as
    #: SSNM's code does by re-creating Adam
    reset_on_decay: bool = False


@dataclass
class ScheduleConfig:
    name: Literal["constant", "step", "poly", "cosine"] = "constant"
    warmup_steps: int = 0
    step_size: int = 0  #: ``step``: decay every this many steps
    gamma: float = 0.1  #: ``step``: multiplicative decay
    power: float = 0.9  #: ``poly``: exponent
    min_lr: float = 0.0  #: ``cosine`` / ``poly``: floor of the learning rate
    decay_steps: int = 0  #: ``cosine`` / ``poly``: horizon of the decay (0: ``train.max_steps``)


@dataclass
class TrainConfig:
    max_steps: int = 1000
    seed: int = 0
    device: str = "auto"  #: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``
    amp: Literal["off", "bf16", "fp16"] = "off"  #: mixed precision, CUDA only
    grad_clip: float | None = None
    grad_clip_mode: Literal["norm", "value"] = "norm"
    accumulate: int = 1  #: gradient accumulation steps
    ema_decay: float | None = None
    eval_every: int = 0  #: validate every N steps (0: only at the end)
    checkpoint_every: int = 0  #: save a resumable checkpoint every N steps (0: only at the end)
    log_every: int = 10
    best_metric: str = ""  #: metric that selects the best checkpoint, e.g. ``sm`` or ``J&F``
    higher_is_better: bool | None = None  #: direction of ``best_metric`` (null: the task's default)
    tensorboard: bool = True  #: also write TensorBoard events (when the package is installed)
    find_unused_parameters: bool = False  #: DDP: allow parameters that get no gradient


@dataclass
class RunConfig:
    """Everything a ``cmseg train`` run needs."""

    task: str = "sod"  #: a key of ``cmseg.tasks.TASKS``; ``model.name`` must be one it accepts
    output_dir: str = "runs/default"
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    train: TrainConfig = field(default_factory=TrainConfig)


# --------------------------------------------------------------------------------------------
# Building, converting and overriding


def load_config(
    cls: type[T] = RunConfig,  # type: ignore[assignment]
    path: str | os.PathLike[str] | None = None,
    overrides: Sequence[str] = (),
) -> T:
    """Defaults of ``cls``, then the YAML file at ``path``, then ``key=value`` overrides."""
    data: dict[str, Any] = {}
    if path is not None:
        data = _read_yaml(Path(path))
    try:
        from_file = from_dict(cls, data)
    except ConfigError as err:  # a wrong key or type in the file: say which file
        raise ConfigError(f"{path}: {err}" if path is not None else str(err)) from None
    cfg = apply_overrides(from_file, overrides)
    if isinstance(cfg, RunConfig):
        check_task(cfg, source=path)
        overridden = {item.partition("=")[0].strip() for item in overrides}
        check_values(cfg, source=path, overridden=overridden)
    return cfg


def _at_least(low: float) -> tuple[Callable[[Any], bool], str]:
    return (lambda v: v >= low), f"must be >= {low}"


def _above(low: float, *, nullable: bool = False) -> tuple[Callable[[Any], bool], str]:
    if nullable:
        return (lambda v: v is None or v > low), f"must be > {low} or null"
    return (lambda v: v > low), f"must be > {low}"


#: Settings that cannot run outside a range: dotted key -> (test, what the value must be).
LIMITS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "model.image_size": _at_least(1),
    "data.batch_size": _at_least(1),
    "data.num_workers": _at_least(0),
    "optim.lr": _above(0),
    "optim.weight_decay": _at_least(0),
    "optim.momentum": _at_least(0),
    "optim.betas": (lambda v: all(0 <= b < 1 for b in v), "must lie in [0, 1) each"),
    "schedule.warmup_steps": _at_least(0),
    "schedule.step_size": _at_least(0),
    "schedule.gamma": _above(0),
    "schedule.power": _at_least(0),
    "schedule.min_lr": _at_least(0),
    "schedule.decay_steps": _at_least(0),
    "train.max_steps": _at_least(1),
    "train.accumulate": _at_least(1),
    "train.log_every": _at_least(1),
    "train.eval_every": _at_least(0),
    "train.checkpoint_every": _at_least(0),
    "train.grad_clip": _above(0, nullable=True),
    "train.ema_decay": (
        lambda v: v is None or 0 < v < 1,
        "must lie in (0, 1) or be null",
    ),
}


def check_values(
    cfg: RunConfig,
    *,
    source: str | os.PathLike[str] | None = None,
    overridden: Set[str] = frozenset(),
) -> None:
    """Refuse settings that cannot run (:data:`LIMITS`: ``train.max_steps < 1``,
    ``data.batch_size < 1``, ``optim.lr <= 0``...) when the config is loaded.

    Args:
        source: the config file, named in the message unless the value came from an override.
        overridden: the dotted keys set by ``key=value`` overrides.

    Raises:
        ConfigError: one line naming the key, what it must be and the value found.
    """
    for key, (test, must) in LIMITS.items():
        section, _, name = key.partition(".")
        value = getattr(getattr(cfg, section), name)
        if not test(value):
            where = f"{source}: " if source is not None and key not in overridden else ""
            shown = list(value) if isinstance(value, tuple) else value
            raise ConfigError(f"{where}{key} {must}, got {shown}")


def check_task(cfg: RunConfig, *, source: str | os.PathLike[str] | None = None) -> None:
    """Refuse a ``task`` that does not exist and a ``model.name`` the task does not accept
    (an unset name is left to the task's own check).

    Raises:
        ConfigError: one line naming the config file, listing the tasks or accepted models.
    """
    from cmseg.tasks import TASKS  # torch-free; imported here because tasks import this module

    where = f"{source}: " if source is not None else ""
    task = TASKS.get(cfg.task)
    if task is None:
        raise ConfigError(f"{where}task: unknown task {cfg.task!r}; choose from {', '.join(TASKS)}")
    if cfg.model.name and cfg.model.name not in task.models:
        accepted = ", ".join(task.models) or "none yet"
        raise ConfigError(
            f"{where}model.name: task {cfg.task!r} does not take model {cfg.model.name!r}; "
            f"it accepts: {accepted}"
        )


def _read_yaml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise InputError(
            path, "is a directory, expected a YAML file" if path.is_dir() else "no such file"
        )
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as err:
        first = str(err).strip().splitlines()
        raise InputError(path, f"invalid YAML ({' '.join(first[:3])})") from None
    except OSError as err:  # e.g. permission denied
        from cmseg.fs import filesystem_reason

        raise InputError(path, filesystem_reason(err) or f"cannot read ({err})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise InputError(path, f"expected a mapping at the top level, got {type(data).__name__}")
    return data


def from_dict(cls: type[T], data: Mapping[str, Any], *, prefix: str = "") -> T:
    """Build dataclass ``cls`` from a nested mapping, checking every key and value type."""
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        if key not in names:
            _unknown_key(cls, prefix, prefix + str(key))
        kwargs[key] = _coerce(value, hints[key], prefix + key)
    return cls(**kwargs)


def to_dict(cfg: Any) -> dict[str, Any]:
    """Plain nested dict (tuples become lists) for YAML / JSON output."""

    def plain(value: Any) -> Any:
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
        if isinstance(value, (list, tuple)):
            return [plain(v) for v in value]
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        return value

    return plain(cfg)


def apply_overrides(cfg: T, overrides: Sequence[str]) -> T:
    """Return a copy of ``cfg`` with each ``dotted.key=value`` applied in order.

    Values are parsed as YAML scalars or flow collections (``1e-4``, ``true``, ``null``,
    ``[384, 384]``) and then checked against the field's type; a ``str`` field takes the text
    as written. Keys inside a ``dict`` field (``model.options.depth=3``) are free-form.
    """
    data = to_dict(cfg)
    for item in overrides:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"override {item!r} is not of the form key=value")
        _set_dotted(type(cfg), data, key.split("."), text, key)
    return from_dict(type(cfg), data)


def save_config(cfg: Any, path: str | os.PathLike[str]) -> None:
    """Write the resolved configuration as YAML, atomically."""
    from cmseg.io import write_text

    write_text(path, yaml.safe_dump(to_dict(cfg), sort_keys=False))


# --------------------------------------------------------------------------------------------
# Internals


def _all_keys(cls: type, prefix: str = "") -> list[str]:
    keys: list[str] = []
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        keys.append(prefix + f.name)
        sub = hints[f.name]
        if dataclasses.is_dataclass(sub):
            keys.extend(_all_keys(sub, prefix + f.name + "."))
    return keys


def _unknown_key(cls: type, prefix: str, key: str) -> typing.NoReturn:
    """Raise for ``key`` (dotted, from the root) unknown in section ``cls`` found at ``prefix``.

    Suggests the closest key of that section's whole subtree, so ``optim.lrr`` finds
    ``optim.lr`` and a bare ``lr`` at the top finds ``optim.lr``.
    """
    candidates = [prefix + k for k in _all_keys(cls)]
    close = difflib.get_close_matches(key, candidates, n=1, cutoff=0.6)
    if not close:  # a leaf name typed without its section
        leaf = key.rsplit(".", 1)[-1]
        close = [c for c in candidates if c.rsplit(".", 1)[-1] == leaf][:1]
    if not close:
        close = difflib.get_close_matches(key, candidates, n=1, cutoff=0.4)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    raise ConfigError(f"unknown config key {key!r}{hint}")


def _set_dotted(cls: type, data: dict[str, Any], parts: list[str], text: str, full: str) -> None:
    hints = typing.get_type_hints(cls)
    head = parts[0]
    if head not in hints:
        _unknown_key(cls, full[: len(full) - len(".".join(parts))], full)
    annotation = hints[head]
    if len(parts) == 1:
        data[head] = text if _is_str_type(annotation) else _parse_scalar(text, full)
        return
    if dataclasses.is_dataclass(annotation):
        _set_dotted(annotation, data.setdefault(head, {}), parts[1:], text, full)
        return
    if typing.get_origin(annotation) is dict:
        target = data.setdefault(head, {})
        for part in parts[1:-1]:
            target = target.setdefault(part, {})
        target[parts[-1]] = _parse_scalar(text, full)
        return
    section = full[: len(full) - len(".".join(parts[1:])) - 1]
    raise ConfigError(f"config key {section!r} is a value, not a section (got {full!r})")


def _parse_scalar(text: str, key: str) -> Any:
    try:
        return yaml.safe_load(text) if text.strip() else ""
    except yaml.YAMLError:
        raise ConfigError(f"{key}: cannot parse value {text!r}") from None


def _is_str_type(annotation: Any) -> bool:
    if annotation is str:
        return True
    if _is_union(annotation):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return len(args) == 1 and args[0] is str
    return False


def _is_union(annotation: Any) -> bool:
    origin = typing.get_origin(annotation)
    return origin is Union or origin is types.UnionType


def _type_name(annotation: Any) -> str:
    if annotation is type(None):
        return "null"
    return getattr(annotation, "__name__", None) or str(annotation).replace("typing.", "")


def _coerce(value: Any, annotation: Any, key: str) -> Any:
    """Check ``value`` against ``annotation`` and convert where the conversion is lossless."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if annotation is Any:
        return value
    if dataclasses.is_dataclass(annotation):
        if isinstance(value, annotation):
            return value
        if not isinstance(value, Mapping):
            raise ConfigError(
                f"{key}: expected a mapping of {annotation.__name__} fields, got {value!r}"
            )
        return from_dict(annotation, value, prefix=key + ".")
    if _is_union(annotation):
        if value is None and type(None) in args:
            return None
        for option in args:
            if option is type(None):
                continue
            try:
                return _coerce(value, option, key)
            except ConfigError:
                pass
        raise ConfigError(
            f"{key}: expected {' or '.join(_type_name(a) for a in args)}, got {value!r}"
        )
    if origin is Literal:
        if value not in args:
            raise ConfigError(f"{key}: expected one of {', '.join(map(repr, args))}, got {value!r}")
        return value
    if annotation is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{key}: expected true or false, got {value!r}")
    if annotation is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise ConfigError(f"{key}: expected an integer, got {value!r}")
    if annotation is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):  # PyYAML reads "1e-4" (no dot) as a string
            try:
                return float(value)
            except ValueError:
                pass
        raise ConfigError(f"{key}: expected a number, got {value!r}")
    if annotation is str:
        if isinstance(value, str):
            return value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)
        raise ConfigError(f"{key}: expected a string, got {value!r}")
    if origin in (list, Sequence) or origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key}: expected a list, got {value!r}")
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(value) != len(args):
                raise ConfigError(f"{key}: expected {len(args)} values, got {len(value)}")
            return tuple(
                _coerce(v, a, f"{key}[{i}]")
                for i, (v, a) in enumerate(zip(value, args, strict=True))
            )
        item = args[0] if args else Any
        items = [_coerce(v, item, f"{key}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"{key}: expected a mapping, got {value!r}")
        value_type = args[1] if len(args) == 2 else Any
        return {str(k): _coerce(v, value_type, f"{key}.{k}") for k, v in value.items()}
    raise ConfigError(f"{key}: unsupported field type {annotation!r}")
