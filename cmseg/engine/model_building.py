"""A network from the ``model`` section of a configuration (a run's, or a checkpoint's).

Models never receive a config object (DESIGN §4): this reads the section's fields and passes
them to the :data:`cmseg.models.MODELS` builder as keyword arguments.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cmseg.errors import ConfigError
from cmseg.models import build_model

__all__ = ["build_from_section", "check_input_side"]


def _field(section: Any, key: str, default: Any = None) -> Any:
    if isinstance(section, Mapping):
        return section.get(key, default)
    return getattr(section, key, default)


def build_from_section(
    section: Any, *, weights: bool = True, options_hint: str = "", **extra: Any
) -> Any:
    """Build ``section.name`` with the section's backbone, backbone weights and options.

    Args:
        section: a :class:`~cmseg.config.ModelConfig` or the ``model`` dict of a checkpoint's
            configuration (``name``, ``backbone``, ``backbone_weights``, ``options``).
        weights: read ``backbone_weights`` (False when a checkpoint brings every weight).
        options_hint: appended to the error for an option the builder does not take, e.g.
            where the task's own options go.
        **extra: more keyword arguments of the builder (a vocabulary...).

    Returns:
        The ``nn.Module``, in training mode.

    Raises:
        ConfigError: no or an unknown model name, or an option the builder does not take.
    """
    name = _field(section, "name") or ""
    if not name:
        raise ConfigError("model.name is not set")
    kwargs = dict(_field(section, "options") or {})
    if _field(section, "backbone"):
        kwargs["backbone"] = _field(section, "backbone")
    if weights and _field(section, "backbone_weights"):
        kwargs["backbone_weights"] = _field(section, "backbone_weights")
    kwargs.update(extra)
    try:
        return build_model(name, **kwargs)
    except TypeError as err:
        first = str(err).strip().splitlines()[0]
        raise ConfigError(
            f"model.options: {name} does not take these arguments ({first})"
            + (f"; {options_hint}" if options_hint else "")
        ) from None


def check_input_side(size: Any, multiple: int) -> int:
    """``model.image_size`` as an int: at least 32 and a multiple of ``multiple`` (the
    network's coarsest stride).

    Raises:
        ConfigError: not an integer, or not such a multiple.
    """
    if isinstance(size, bool):
        raise ConfigError(f"model.image_size must be an integer, got {size!r}")
    try:
        value = int(size)
    except (TypeError, ValueError):
        raise ConfigError(f"model.image_size must be an integer, got {size!r}") from None
    if value != size and not isinstance(size, str):
        raise ConfigError(f"model.image_size must be an integer, got {size!r}")
    if value < 32 or value % multiple:
        raise ConfigError(
            f"model.image_size must be a multiple of {multiple} and >= 32, got {size!r}"
        )
    return value
