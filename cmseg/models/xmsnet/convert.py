"""Official XMSNet checkpoints -> :class:`cmseg.models.xmsnet.XMSNet`: a pure rename map.

:func:`convert_official_xmsnet` maps a state dict saved by the official XMSNet code
(``torch.save(model.state_dict())`` in ``Zongwei97/XMSNet``: keys ``pvtv2_rgb.*``,
``pvtv2_depth.*``, ``layer_dep0.*``, ``fu_1`` ... ``fu_4``, ``lgb*``, ``mask*``,
``transformer*``, ...) onto cmseg's module names, after checking the shapes the official
naming implies. The two PVTv2 encoders go through the shared
:func:`~cmseg.models.weights.convert_pvt_v2_original`; load the result with
:func:`~cmseg.models.weights.load_strict`.

The converter only renames (and drops the keys of modules cmseg does not build); values are
never modified, and keys it does not recognise pass through unchanged so that
:func:`~cmseg.models.weights.load_strict` reports them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import torch

from cmseg.models.weights import StateDictError, convert_pvt_v2_original, describe_mismatch

__all__ = ["convert_official_xmsnet", "OFFICIAL_XMSNET_UNUSED"]


OFFICIAL_XMSNET_UNUSED: tuple[str, ...] = ("conv1_1.", "conv_128.", "fu_1.layer_ful2.")
"""Prefixes of official modules that are built but never used in ``forward`` (besides
``fu_{i}.linear.`` in every fusion block); cmseg does not build them, the converter drops
their keys."""

_FUSION_RENAMES: tuple[tuple[str, str], ...] = (
    ("proj_r.", "proj_rgb."),
    ("proj_d.", "proj_aux."),
    ("linear_r.0.proj.", "proportion.embed_rgb.0."),
    ("linear_r.1.proj.", "proportion.embed_rgb.1."),
    ("linear_d.0.proj.", "proportion.embed_aux.0."),
    ("linear_d.1.proj.", "proportion.embed_aux.1."),
    ("linear_m.0.proj.", "proportion.mix."),
    ("layer_10.", "region.conv_rgb."),
    ("layer_20.", "region.conv_aux."),
    ("layer_11.", "region.score_rgb."),
    ("layer_21.", "region.score_aux."),
    ("layer_att.", "region.mix."),
    ("layer_30.", "pattern.conv_rgb."),
    ("layer_40.", "pattern.conv_aux."),
    ("gct.", "pattern.gct."),
    ("layer_att_c.", "pattern.mix."),
    ("linear_f.proj.", "fuse."),
    ("layer_ful2.", "link."),
)

_QUERY_RENAMES: tuple[tuple[str, str], ...] = (
    ("attn.temperature", "attn.temperature"),
    ("attn.q_r.", "attn.q_rgb."),
    ("attn.q_d.", "attn.q_aux."),
    ("attn.conv_cat.", "attn.q_mix."),
    ("attn.k_f.", "attn.k."),
    ("attn.v_f.", "attn.v."),
    ("attn.project_out.", "attn.proj."),
    ("norm2.", "norm."),
    ("ffn.", "ffn."),
)


def _official_prefix_map(num_stages: int = 4) -> list[tuple[str, str | None]]:
    """(official prefix, cmseg prefix or None to drop) pairs for the non-backbone modules."""
    rules: list[tuple[str, str | None]] = [("layer_dep0.", "aux_stem.")]
    rules += [(p, None) for p in OFFICIAL_XMSNET_UNUSED]
    for i in range(1, num_stages + 1):
        s = i - 1
        rules.append((f"fu_{i}.linear.proj.", None))
        rules += [
            (f"fu_{i}.{a}", f"fusion.{s}.{b}")
            for a, b in _FUSION_RENAMES
            if not (i == 1 and a == "layer_ful2.")  # stage 1 has no top-down link
        ]
        rules += [
            (f"lgb{i}.conv1_1.", f"decoder.coarse.pools.{s}.expand."),
            (f"lgb{i}.DWconv.conv.0.", f"decoder.coarse.pools.{s}.mix.0."),
            (f"lgb{i}.DWconv.conv.1.", f"decoder.coarse.pools.{s}.mix.1."),
            (f"lgb{i}.convdw_1_1.", f"decoder.coarse.pools.{s}.reduce."),
            (f"mlp{i}.proj.", f"decoder.coarse.linears.{s}."),
            (f"mask{i}.", f"decoder.coarse.heads.{s}."),
            (f"convr_{i}.0.", f"decoder.fine.proj_rgb.{s}."),
            (f"convd_{i}.0.", f"decoder.fine.proj_aux.{s}."),
        ]
        rules += [
            (f"transformer{i}.{a}", f"decoder.fine.queries.{s}.{b}") for a, b in _QUERY_RENAMES
        ]
        if i < num_stages:
            rules += [
                (f"conv_cat{i + 1}_{i}.0.", f"decoder.fine.merges.{s}."),
                (f"t_mask{i}.", f"decoder.fine.heads.{s}."),
            ]
    # Longest prefix first, so "layer_att_c." wins over "layer_att." and so on.
    return sorted(rules, key=lambda rule: -len(rule[0]))


_BACKBONES = (("pvtv2_rgb.", "rgb_encoder."), ("pvtv2_depth.", "aux_encoder."))


def _official_expected_shapes(state: Mapping[str, torch.Tensor]) -> dict[str, tuple[int, ...]]:
    """Shapes the official naming scheme implies, from the width C and the encoder widths."""
    c = state["fu_1.proj_r.weight"].shape[0]
    expected: dict[str, tuple[int, ...]] = {"layer_dep0.weight": (3, 1, 1, 1)}
    for i in range(1, 5):
        norm = state.get(f"pvtv2_rgb.norm{i}.weight")
        c_in = norm.shape[0] if norm is not None else state[f"fu_{i}.proj_r.weight"].shape[1]
        expected.update(
            {
                f"fu_{i}.proj_r.weight": (c, c_in, 3, 3),
                f"fu_{i}.proj_d.weight": (c, c_in, 3, 3),
                f"fu_{i}.linear_r.0.proj.weight": (c // 2, c),
                f"fu_{i}.linear_r.1.proj.weight": (c // 4, c // 2),
                f"fu_{i}.linear_d.0.proj.weight": (c // 2, c),
                f"fu_{i}.linear_d.1.proj.weight": (c // 4, c // 2),
                f"fu_{i}.linear_m.0.proj.weight": (c // 4, c // 4),
                f"fu_{i}.layer_att.0.weight": (2, 6, 3, 3),
                f"fu_{i}.layer_att_c.0.weight": (2 * c, 6 * c, 1, 1),
                f"fu_{i}.gct.alpha": (1, c, 1, 1),
                f"fu_{i}.linear_f.proj.weight": (c, 2 * c),
                f"lgb{i}.conv1_1.weight": (4 * c, c, 1, 1),
                f"lgb{i}.DWconv.conv.0.weight": (4 * c, 1, 3, 3),
                f"mlp{i}.proj.weight": (c, c),
                f"mask{i}.0.conv.weight": (c // 2, c, 3, 3),
                f"mask{i}.1.weight": (1, c // 2, 1, 1),
                f"convr_{i}.0.conv.weight": (c, c_in, 3, 3),
                f"convd_{i}.0.conv.weight": (c, c_in, 3, 3),
                f"transformer{i}.attn.q_r.weight": (c // 2, c, 1, 1),
                f"transformer{i}.attn.k_f.weight": (c, c, 1, 1),
                f"transformer{i}.ffn.weight": (c, c),
            }
        )
        if i > 1:
            expected[f"fu_{i}.layer_ful2.0.weight"] = (c, 2 * c, 3, 3)
        if i < 4:
            expected[f"conv_cat{i + 1}_{i}.0.conv.weight"] = (c, 2 * c, 3, 3)
            expected[f"t_mask{i}.0.conv.weight"] = (c // 2, c, 3, 3)
    return expected


def convert_official_xmsnet(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Map an official XMSNet state dict onto :class:`~cmseg.models.xmsnet.XMSNet`.

    The two PVTv2 encoders go through :func:`~cmseg.models.weights.convert_pvt_v2_original`
    and timm's feature naming (``stages.k`` -> ``stages_k``); the fusion blocks, decoders and
    aux stem are renamed module by module; the unused official modules (``fu_{i}.linear``,
    ``fu_1.layer_ful2``, ``conv1_1``, ``conv_128``) are dropped. Load the result with
    :func:`~cmseg.models.weights.load_strict`.

    To reproduce the official outputs exactly, build the model with ``official=True`` (the
    region-attention input and gate and the proportion formula differ otherwise; the weights
    fit either way).

    Args:
        state_dict: as saved by the official ``train.py`` (a ``module.`` prefix is removed).

    Returns:
        A new dict; the tensors are the same objects.

    Raises:
        StateDictError: a tensor's shape contradicts the official architecture (checked from
            the fusion width and the encoder widths found in the dict).
    """
    state = dict(state_dict)
    if state and all(k.startswith("module.") for k in state):
        state = {k[len("module.") :]: v for k, v in state.items()}
    if "fu_1.proj_r.weight" not in state:
        raise StateDictError("state dict", "not an official XMSNet checkpoint (no fu_1.proj_r)")

    expected = _official_expected_shapes(state)
    wrong = [
        f"{k} {tuple(state[k].shape)} vs {shape}"
        for k, shape in expected.items()
        if k in state and tuple(state[k].shape) != shape
    ]
    if wrong:
        raise StateDictError(
            "state dict", describe_mismatch([], [], wrong, what="the official XMSNet layout")
        )

    out: dict[str, torch.Tensor] = {}
    for official, ours in _BACKBONES:
        part = {k[len(official) :]: v for k, v in state.items() if k.startswith(official)}
        for key, value in convert_pvt_v2_original(part).items():
            if key.startswith("head."):
                continue  # the official model has no head; a stray one is dropped like timm's
            out[ours + re.sub(r"^stages\.(\d+)\.", r"stages_\1.", key)] = value

    rules = _official_prefix_map()
    for key, value in state.items():
        if key.startswith(tuple(official for official, _ in _BACKBONES)):
            continue
        for official, ours in rules:
            if key.startswith(official):
                if ours is not None:
                    out[ours + key[len(official) :]] = value
                break
        else:
            out[key] = value  # unknown: passed through so load_strict names it
    return out
