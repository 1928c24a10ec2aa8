"""timm feature pyramids and backbone weights from local files."""

from __future__ import annotations

import re

import pytest
import timm
import torch
from safetensors.torch import save_file

from cmseg.errors import ConfigError, InputError
from cmseg.models.backbones import create_feature_pyramid, load_backbone_weights, read_state_dict
from cmseg.models.weights import StateDictError


def _timm_layout_key(feature_key: str) -> str:
    # timm's FeatureListNet flattens ``stages.0`` into ``stages_0`` (pvt_v2, convnext).
    return re.sub(r"^(stem|stages)_(\d+)\.", r"\1.\2.", feature_key)


def _assert_loaded(pyramid: torch.nn.Module, plain_state: dict[str, torch.Tensor]) -> None:
    for key, value in pyramid.state_dict().items():
        assert torch.equal(value, plain_state[_timm_layout_key(key)]), key


def test_pvt_pyramid_shapes():
    pyramid = create_feature_pyramid("pvt_v2_b0")
    assert pyramid.feature_info.channels() == [32, 64, 160, 256]
    assert pyramid.feature_info.reduction() == [4, 8, 16, 32]
    feats = pyramid(torch.randn(1, 3, 64, 96))
    assert [tuple(f.shape) for f in feats] == [
        (1, 32, 16, 24),
        (1, 64, 8, 12),
        (1, 160, 4, 6),
        (1, 256, 2, 3),
    ]


def test_levels_are_picked_by_stride():
    pyramid = create_feature_pyramid("resnet18")  # five levels, strides 2..32
    assert pyramid.feature_info.reduction() == [4, 8, 16, 32]
    assert pyramid.feature_info.channels() == [64, 128, 256, 512]
    assert len(pyramid(torch.randn(1, 3, 64, 64))) == 4


def test_bad_backbones_are_config_errors():
    with pytest.raises(ConfigError, match="unknown timm backbone"):
        create_feature_pyramid("no_such_net")
    with pytest.raises(ConfigError, match="strides"):
        create_feature_pyramid("resnet18", strides=(4, 8, 16, 64))


@pytest.mark.parametrize("suffix", [".pth", ".safetensors", ".bin"])
def test_timm_layout_file_loads(tmp_path, suffix):
    plain = timm.create_model("pvt_v2_b0", pretrained=False)  # with its classifier head
    state = plain.state_dict()
    path = tmp_path / f"weights{suffix}"
    if suffix == ".safetensors":
        save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    else:
        torch.save(state, path)
    pyramid = create_feature_pyramid("pvt_v2_b0", weights=path)
    _assert_loaded(pyramid, state)


def test_convnext_layout_and_wrapped_checkpoint(tmp_path):
    plain = timm.create_model("convnext_atto", pretrained=False)
    state = plain.state_dict()
    path = tmp_path / "ckpt.pth"
    torch.save({"state_dict": state, "epoch": 3}, path)
    pyramid = create_feature_pyramid("convnext_atto", weights=path)
    _assert_loaded(pyramid, state)


def test_pvt_authors_layout_is_converted():
    plain = timm.create_model("pvt_v2_b0", pretrained=False)
    state = plain.state_dict()
    original = {}
    for key, value in state.items():  # timm layout -> the PVTv2 authors' layout
        parts = key.split(".")
        if parts[0] == "patch_embed":
            key = "patch_embed1." + ".".join(parts[1:])
        elif parts[0] == "stages" and parts[2] == "downsample":
            key = f"patch_embed{int(parts[1]) + 1}." + ".".join(parts[3:])
        elif parts[0] == "stages" and parts[2] == "blocks":
            key = f"block{int(parts[1]) + 1}.{parts[3]}." + ".".join(parts[4:])
            key = key.replace(".mlp.dwconv.", ".mlp.dwconv.dwconv.")
        elif parts[0] == "stages" and parts[2] == "norm":
            key = f"norm{int(parts[1]) + 1}." + ".".join(parts[3:])
        original[key] = value
    assert "block1.0.mlp.dwconv.dwconv.weight" in original
    pyramid = create_feature_pyramid("pvt_v2_b0")
    load_backbone_weights(pyramid, original, "pvt_v2_b0")
    _assert_loaded(pyramid, state)


def test_key_mismatches_are_one_line_errors():
    plain = timm.create_model("resnet18", pretrained=False)
    pyramid = create_feature_pyramid("resnet18")
    good = plain.state_dict()

    missing = {k: v for k, v in good.items() if k != "layer1.0.conv1.weight"}
    with pytest.raises(StateDictError) as err:
        load_backbone_weights(pyramid, missing, "resnet18", source="w.pth")
    message = str(err.value)
    assert message.startswith("w.pth: ") and "\n" not in message
    assert "1 missing [layer1.0.conv1.weight]" in message

    extra = dict(good, **{f"extra.{i}": torch.zeros(1) for i in range(5)})
    with pytest.raises(StateDictError) as err:
        load_backbone_weights(pyramid, extra, "resnet18")
    assert "5 unexpected [extra.0, extra.1, extra.2, ... (+2 more)]" in str(err.value)
    assert "\n" not in str(err.value)

    reshaped = dict(good, **{"conv1.weight": torch.zeros(64, 3, 3, 3)})
    with pytest.raises(StateDictError, match="wrong shape"):
        load_backbone_weights(pyramid, reshaped, "resnet18")

    # The classifier (fc) is dropped; a missing BN step counter is tolerated.
    relaxed = {k: v for k, v in good.items() if not k.endswith("num_batches_tracked")}
    load_backbone_weights(pyramid, relaxed, "resnet18")
    assert torch.equal(pyramid.state_dict()["layer4.1.bn2.weight"], good["layer4.1.bn2.weight"])


def test_unreadable_files(tmp_path):
    with pytest.raises(InputError, match="not found"):
        read_state_dict(tmp_path / "absent.pth")
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a safetensors file")
    with pytest.raises(InputError, match="cannot read weights"):
        read_state_dict(bad)
    empty = tmp_path / "empty.pth"
    torch.save({"epoch": 1}, empty)
    with pytest.raises(InputError, match="no tensors"):
        read_state_dict(empty)
