"""The official-checkpoint converter: every official key onto cmseg's, strict-load errors."""

from __future__ import annotations

import copy
import re

import pytest
import torch

from cmseg.models import build_model
from cmseg.models.weights import StateDictError, load_strict
from cmseg.models.xmsnet import convert_official_xmsnet


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return build_model("xmsnet_tiny")


_FUSION = {  # cmseg name -> official name, inside one fusion block
    "proj_rgb": "proj_r",
    "proj_aux": "proj_d",
    "proportion.embed_rgb.0": "linear_r.0.proj",
    "proportion.embed_rgb.1": "linear_r.1.proj",
    "proportion.embed_aux.0": "linear_d.0.proj",
    "proportion.embed_aux.1": "linear_d.1.proj",
    "proportion.mix": "linear_m.0.proj",
    "region.conv_rgb": "layer_10",
    "region.conv_aux": "layer_20",
    "region.score_rgb": "layer_11",
    "region.score_aux": "layer_21",
    "region.mix": "layer_att",
    "pattern.conv_rgb": "layer_30",
    "pattern.conv_aux": "layer_40",
    "pattern.gct": "gct",
    "pattern.mix": "layer_att_c",
    "fuse": "linear_f.proj",
    "link": "layer_ful2",
}
_QUERY = {
    "attn.q_rgb": "attn.q_r",
    "attn.q_aux": "attn.q_d",
    "attn.q_mix": "attn.conv_cat",
    "attn.k": "attn.k_f",
    "attn.v": "attn.v_f",
    "attn.proj": "attn.project_out",
    "attn.temperature": "attn.temperature",
    "norm": "norm2",
    "ffn": "ffn",
}


def _official_name(key: str) -> str:
    """The official XMSNet name of a cmseg key (written from model_pvt.py / Transformer.py)."""

    def sub(table: dict[str, str], rest: str) -> str:
        for ours in sorted(table, key=len, reverse=True):
            if rest == ours or rest.startswith(ours + "."):
                return table[ours] + rest[len(ours) :]
        raise KeyError(rest)

    head, _, rest = key.partition(".")
    if head in ("rgb_encoder", "aux_encoder"):
        prefix = "pvtv2_rgb." if head == "rgb_encoder" else "pvtv2_depth."
        if rest.startswith("patch_embed."):
            return prefix + "patch_embed1." + rest[len("patch_embed.") :]
        stage, part, tail = re.match(r"stages_(\d+)\.(\w+)\.(.*)", rest).groups()
        k = int(stage) + 1
        if part == "downsample":
            return f"{prefix}patch_embed{k}.{tail}"
        if part == "norm":
            return f"{prefix}norm{k}.{tail}"
        tail = tail.replace("mlp.dwconv.", "mlp.dwconv.dwconv.")
        return f"{prefix}block{k}.{tail}"
    if head == "aux_stem":
        return "layer_dep0." + rest
    if head == "fusion":
        i, tail = rest.split(".", 1)
        return f"fu_{int(i) + 1}." + sub(_FUSION, tail)
    part, i, tail = re.match(r"(\w+\.\w+)\.(\d+)\.(.*)", rest).groups()
    i = int(i) + 1
    return {
        "coarse.pools": lambda: (
            f"lgb{i}."
            + sub(
                {
                    "expand": "conv1_1",
                    "mix.0": "DWconv.conv.0",
                    "mix.1": "DWconv.conv.1",
                    "reduce": "convdw_1_1",
                },
                tail,
            )
        ),
        "coarse.linears": lambda: f"mlp{i}.proj.{tail}",
        "coarse.heads": lambda: f"mask{i}.{tail}",
        "fine.proj_rgb": lambda: f"convr_{i}.0.{tail}",
        "fine.proj_aux": lambda: f"convd_{i}.0.{tail}",
        "fine.queries": lambda: f"transformer{i}." + sub(_QUERY, tail),
        "fine.merges": lambda: f"conv_cat{i + 1}_{i}.0.{tail}",
        "fine.heads": lambda: f"t_mask{i}.{tail}",
    }[part]()


def _official_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """A state dict with the official names and shapes, including the unused modules."""
    official = {_official_name(k): v.clone() for k, v in model.state_dict().items()}
    c = model.fusion[0].proj_rgb.out_channels

    def bn(prefix: str, n: int) -> None:
        official.update(
            {
                f"{prefix}.weight": torch.ones(n),
                f"{prefix}.bias": torch.zeros(n),
                f"{prefix}.running_mean": torch.zeros(n),
                f"{prefix}.running_var": torch.ones(n),
                f"{prefix}.num_batches_tracked": torch.tensor(0),
            }
        )

    for i in range(1, 5):
        official[f"fu_{i}.linear.proj.weight"] = torch.randn(c, 2 * c)
        official[f"fu_{i}.linear.proj.bias"] = torch.randn(c)
    official["fu_1.layer_ful2.0.weight"] = torch.randn(c, c, 3, 3)
    official["fu_1.layer_ful2.0.bias"] = torch.randn(c)
    bn("fu_1.layer_ful2.1", c)
    official["conv1_1.conv.weight"] = torch.randn(128, 128, 1, 1)
    bn("conv1_1.bn", 128)
    official["conv_128.weight"] = torch.randn(128, 256, 1, 1)
    official["conv_128.bias"] = torch.randn(128)
    return official


def test_convert_official_checkpoint(tiny):
    tiny = copy.deepcopy(tiny)  # the module-scoped model stays untouched
    with torch.no_grad():
        for p in tiny.parameters():
            p.normal_()
    official = _official_state(tiny)
    assert "pvtv2_rgb.block3.1.mlp.dwconv.dwconv.weight" in official
    assert "transformer2.attn.project_out.weight" in official
    assert "fu_3.layer_att_c.1.running_var" in official

    converted = convert_official_xmsnet(official)
    fresh = build_model("xmsnet_tiny")
    load_strict(fresh, converted)
    for key, value in tiny.state_dict().items():
        assert torch.equal(fresh.state_dict()[key], value), key

    # DataParallel prefix.
    load_strict(fresh, convert_official_xmsnet({f"module.{k}": v for k, v in official.items()}))

    # A missing and an extra key: one line, counts and names.
    broken = dict(official)
    del broken["fu_2.layer_att.0.weight"]
    broken["fu_2.extra_thing.weight"] = torch.zeros(1)
    with pytest.raises(StateDictError) as err:
        load_strict(fresh, convert_official_xmsnet(broken), source="xmsnet.pth")
    message = str(err.value)
    assert "\n" not in message and message.startswith("xmsnet.pth: ")
    assert "1 missing [fusion.1.region.mix.0.weight]" in message
    assert "1 unexpected [fu_2.extra_thing.weight]" in message

    # A shape that contradicts the official architecture.
    bad = dict(official, **{"fu_2.layer_att.0.weight": torch.zeros(2, 5, 3, 3)})
    with pytest.raises(StateDictError, match="wrong shape"):
        convert_official_xmsnet(bad)
    with pytest.raises(StateDictError, match="not an official"):
        convert_official_xmsnet({"foo": torch.zeros(1)})
