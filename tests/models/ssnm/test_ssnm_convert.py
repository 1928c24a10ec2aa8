"""The converter on a state dict with the official module names and shapes (written here
from the official model.py's layer list), and the strict load's one-line errors."""

from __future__ import annotations

import pytest
import torch

from cmseg.models.ssnm import convert_official_ssnm, official_options, ssnm_vgg16
from cmseg.models.weights import StateDictError, load_strict

_VGG = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"]


def _conv(state, prefix, cin, cout, k):
    state[f"{prefix}.weight"] = torch.randn(cout, cin, k, k)
    state[f"{prefix}.bias"] = torch.randn(cout)


def official_state_dict() -> dict[str, torch.Tensor]:
    """Random tensors under the names ``Model.state_dict()`` of the official code has."""
    torch.manual_seed(0)
    s: dict[str, torch.Tensor] = {}
    i, cin = 0, 3
    for v in _VGG:
        if v == "M":
            i += 1
            continue
        _conv(s, f"base.{i}", cin, v, 3)
        s[f"base.{i + 1}.weight"] = torch.rand(v) + 0.5
        s[f"base.{i + 1}.bias"] = torch.randn(v)
        s[f"base.{i + 1}.running_mean"] = torch.randn(v)
        s[f"base.{i + 1}.running_var"] = torch.rand(v) + 0.5
        s[f"base.{i + 1}.num_batches_tracked"] = torch.tensor(7)
        i, cin = i + 3, v
    for k, c in enumerate((128, 256, 512, 512)):
        _conv(s, f"incr_channel1.{k}", c, 512, 3)
        _conv(s, f"incr_channel2.{k}", 512, 512, 3)
    _conv(s, "sp1.0", 512, 64, 1)
    _conv(s, "sp2.0", 4096, 32, 1)
    s["cls_m.0.weight"], s["cls_m.0.bias"] = torch.randn(512, 1024), torch.randn(512)
    s["cls.0.weight"], s["cls.0.bias"] = torch.randn(78, 512), torch.randn(78)
    shared = {}
    _conv(shared, "0", 512, 512, 1)
    _conv(shared, "2", 512, 512, 3)
    shared["4.weight"], shared["4.bias"] = torch.randn(512, 512, 4, 4), torch.randn(512)
    for name in ("concat4", "concat3", "concat2"):  # one ModuleList: the same tensors
        s.update({f"{name}.{k}": v for k, v in shared.items()})
    _conv(s, "concat1.0", 512, 512, 1)
    _conv(s, "concat1.2", 512, 512, 3)
    _conv(s, "mask.0", 512, 2, 3)
    s["mask.1.weight"], s["mask.1.bias"] = torch.randn(2, 2, 8, 8), torch.randn(2)
    return s


def test_official_state_dict_loads_strictly():
    official = official_state_dict()
    model = ssnm_vgg16(**official_options())
    converted = convert_official_ssnm(official)
    load_strict(model, converted)
    assert torch.equal(model.decoder.stage(3).up.weight, official["concat3.4.weight"])
    assert torch.equal(model.lifting[2].refine.weight, official["incr_channel2.2.weight"])
    assert torch.equal(model.semantic.classifier.bias, official["cls.0.bias"])
    assert torch.equal(model.backbone.features[41].running_var, official["base.41.running_var"])
    # a DataParallel prefix is removed
    prefixed = {f"module.{k}": v for k, v in official.items()}
    assert convert_official_ssnm(prefixed).keys() == converted.keys()


def test_missing_unexpected_and_inconsistent_keys_are_listed():
    official = official_state_dict()
    del official["mask.0.bias"]
    with pytest.raises(StateDictError, match=r"1 missing \[head.score.bias\]"):
        load_strict(ssnm_vgg16(**official_options()), convert_official_ssnm(official))
    official = official_state_dict()
    official["extra.weight"] = torch.zeros(1)
    with pytest.raises(StateDictError, match="not of the official SSNM: extra.weight"):
        convert_official_ssnm(official, source="best.pth")
    official = official_state_dict()
    official["concat2.0.bias"] = official["concat2.0.bias"] + 1
    with pytest.raises(StateDictError, match="shares weights"):
        convert_official_ssnm(official)


def test_official_options_are_model_options():
    model = ssnm_vgg16(**official_options())
    assert model.spatial_solver == "adam" and model.semantic.hsp_layout == "official"
