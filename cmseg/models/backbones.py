"""timm feature pyramids by name, and backbone weights from local files (never a download).

:func:`create_feature_pyramid` builds any timm model with ``features_only=True`` and
``pretrained=False``, keeping the levels at the strides a method asks for; the returned module
maps ``B x 3 x H x W`` to a list of maps and reports its widths through
``model.feature_info.channels()``, so necks size themselves from it.

:func:`load_backbone_weights` loads a state dict saved in timm's layout (what
``timm.create_model(name).state_dict()`` returns, e.g. a Hugging Face ``model.safetensors`` or
a ``pytorch_model.bin``) into such a pyramid. timm's feature wrappers rename modules (a
``FeatureListNet`` flattens ``stages.0`` into ``stages_0``); the loader maps the names through
the plain model built on the meta device, so it works for any timm architecture. Keys of the
parts the feature wrapper cuts off (the classifier head, a final norm or conv head) are
dropped, as the official SOD codes do; every other mismatch (a missing key, an unexpected
key, a wrong shape) raises one line that lists them. The PVTv2 authors' original layout
(``patch_embed1``, ``block1.0``, ``norm1``, as in their ``pvt_v2_b5.pth``) is recognised and
converted. :func:`save_backbone_weights` writes a pyramid back in that layout, so a backbone
trained here is a ``backbone_weights`` file like any other.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from cmseg.errors import ConfigError, InputError
from cmseg.fs import check_readable
from cmseg.models.weights import StateDictError, convert_pvt_v2_original, describe_mismatch

__all__ = [
    "create_feature_pyramid",
    "load_backbone_weights",
    "read_state_dict",
    "save_backbone_weights",
]

_TORCH_SUFFIXES = (".pth", ".pt", ".bin", ".ckpt", ".tar")


def create_feature_pyramid(
    name: str,
    *,
    strides: Sequence[int] = (4, 8, 16, 32),
    weights: str | os.PathLike[str] | None = None,
    **timm_kwargs: Any,
) -> nn.Module:
    """A timm ``features_only`` backbone whose outputs are the levels at ``strides``.

    Args:
        name: a timm model name, e.g. ``pvt_v2_b5``, ``convnext_tiny``, ``resnet50``.
        strides: the output strides wanted, in order. When the backbone has several levels at
            one stride, the deepest is kept.
        weights: optional local file with the backbone's weights in timm's layout (see
            :func:`load_backbone_weights`).
        **timm_kwargs: passed to ``timm.create_model`` (e.g. ``drop_path_rate``).

    Returns:
        The timm feature module: ``forward(x)`` with ``x`` ``B x 3 x H x W`` returns a list of
        ``B x C_i x H / s_i x W / s_i`` maps; ``.feature_info.channels()`` gives the ``C_i``.

    Raises:
        ConfigError: the name is unknown to timm, or the backbone has no level at one of the
            strides (e.g. a plain ViT, whose levels all have stride 16).
    """
    import timm

    if not timm.is_model(name):
        raise ConfigError(f"unknown timm backbone {name!r} (see timm.list_models())")
    model = timm.create_model(name, pretrained=False, features_only=True, **timm_kwargs)
    reductions = list(model.feature_info.reduction())
    if reductions != list(strides):
        indices = []
        for stride in strides:
            found = [i for i, r in enumerate(reductions) if r == stride]
            if not found:
                raise ConfigError(
                    f"backbone {name!r} has feature strides {reductions}; "
                    f"this model needs levels at strides {list(strides)}"
                )
            indices.append(found[-1])
        model = timm.create_model(
            name, pretrained=False, features_only=True, out_indices=tuple(indices), **timm_kwargs
        )
    if weights is not None:
        load_backbone_weights(model, read_state_dict(weights), name, source=str(weights))
    return model


def read_state_dict(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """Read a state dict from ``.safetensors`` or a torch file, without unpickling code.

    Torch files are read with ``torch.load(..., weights_only=True)``. A checkpoint that wraps
    the weights in a ``"state_dict"`` or ``"model"`` entry is unwrapped, and a
    ``"module."`` prefix (left by DataParallel) is removed.

    Raises:
        InputError: the file is missing, unreadable, or holds no tensors.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "weights file not found")
    check_readable(path)  # safetensors calls a permission error "No such file or directory"
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            obj: object = load_file(str(path), device="cpu")
        else:
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - any reader failure is the file's fault
        first_line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise InputError(path, f"cannot read weights ({first_line})") from err
    for wrapper in ("state_dict", "model"):
        if isinstance(obj, Mapping) and isinstance(obj.get(wrapper), Mapping):
            obj = obj[wrapper]
    if not isinstance(obj, Mapping) or not obj:
        raise InputError(path, "no state dict in the file")
    state = {str(k): v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    if not state:
        raise InputError(path, "no tensors in the file")
    if all(k.startswith("module.") for k in state):
        state = {k[len("module.") :]: v for k, v in state.items()}
    return state


def _plain_key(feature_key: str, plain_keys: set[str]) -> str | None:
    """The plain-model name of a feature-wrapper parameter.

    timm's flattening joins a Sequential's name and its child's name with ``_``; which
    underscore of the first component is the joint is found by looking the candidates up in
    the plain model's keys.
    """
    if feature_key in plain_keys:
        return feature_key
    head, _, rest = feature_key.partition(".")
    for i, char in enumerate(head):
        if char == "_":
            candidate = f"{head[:i]}.{head[i + 1 :]}.{rest}"
            if candidate in plain_keys:
                return candidate
    return None


def load_backbone_weights(
    model: nn.Module,
    state_dict: Mapping[str, torch.Tensor],
    name: str,
    *,
    source: str = "backbone weights",
) -> None:
    """Load a timm-layout state dict into a ``features_only`` pyramid of timm model ``name``.

    Keys are matched strictly: a key the pyramid needs but the file lacks, or a file key that
    the plain model ``name`` does not have, or a wrong shape, raises. Keys of the modules the
    feature wrapper removed (classifier head etc.) are dropped silently. A missing BatchNorm
    ``num_batches_tracked`` counter is tolerated (it is a step counter, not a weight).

    Args:
        model: the pyramid from :func:`create_feature_pyramid`.
        state_dict: weights in timm's layout, or the PVTv2 authors' original layout.
        name: the timm model name the pyramid was built from.
        source: what to name in the error message (usually the file path).

    Raises:
        StateDictError: the keys or shapes do not match (one line, first few keys + counts).
    """
    import timm

    state = dict(state_dict)
    if name.startswith("pvt_v2") and "patch_embed1.proj.weight" in state:
        state = convert_pvt_v2_original(state)
    with torch.device("meta"):
        plain = timm.create_model(name, pretrained=False)
    plain_keys = set(plain.state_dict())
    del plain

    target = model.state_dict()
    mapped: dict[str, torch.Tensor] = {}
    missing: list[str] = []
    wrong_shape: list[str] = []
    for key, ref in target.items():
        plain_key = _plain_key(key, plain_keys)
        if plain_key is None or plain_key not in state:
            if key.endswith("num_batches_tracked"):
                mapped[key] = ref
                continue
            missing.append(plain_key or key)
            continue
        value = state[plain_key]
        if tuple(value.shape) != tuple(ref.shape):
            wrong_shape.append(f"{plain_key} {tuple(value.shape)} vs {tuple(ref.shape)}")
            continue
        mapped[key] = value
    unexpected = sorted(k for k in state if k not in plain_keys)
    # Everything else in the file belongs to modules the feature wrapper cut off (the head).
    if missing or unexpected or wrong_shape:
        raise StateDictError(
            source, describe_mismatch(missing, unexpected, wrong_shape, what=f"backbone {name!r}")
        )
    model.load_state_dict(mapped, strict=True)


def save_backbone_weights(
    model: nn.Module, name: str, path: str | os.PathLike[str]
) -> dict[str, torch.Tensor]:
    """Write a pyramid's weights as ``.safetensors`` in timm's plain layout.

    The inverse of :func:`load_backbone_weights`: the feature wrapper's names are mapped back
    to the plain model's (``stages_0.x`` -> ``stages.0.x``), so the file loads into any pyramid
    of ``name`` (whatever its levels) and into ``timm.create_model(name)`` (without its head).
    The file is written to a temporary name and renamed, so an existing file is never left
    half written.

    Args:
        model: a pyramid from :func:`create_feature_pyramid`.
        name: the timm model name it was built from.
        path: the ``.safetensors`` file to write.

    Returns:
        The state dict written (plain keys, contiguous CPU tensors).
    """
    import timm
    from safetensors.torch import save

    from cmseg.io import atomic_open

    with torch.device("meta"):
        plain = timm.create_model(name, pretrained=False)
    plain_keys = set(plain.state_dict())
    del plain
    state: dict[str, torch.Tensor] = {}
    for key, value in model.state_dict().items():
        plain_key = _plain_key(key, plain_keys)
        if plain_key is None:
            raise ConfigError(
                f"backbone {name!r}: parameter {key!r} has no name in the plain timm model"
            )
        state[plain_key] = value.detach().to("cpu").contiguous()
    with atomic_open(path, "wb") as handle:
        handle.write(save(state, metadata={"format": "pt", "timm_model": name}))
    return state
