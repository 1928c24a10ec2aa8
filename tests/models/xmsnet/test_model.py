"""XMSNet: shapes, gradients, the official-quirk flags, parameter count, backbone weights."""

from __future__ import annotations

import pytest
import timm
import torch

from cmseg.errors import ConfigError
from cmseg.models import MODELS, build_model
from cmseg.models.xmsnet import (
    AllRoundFusion,
    ModalityProportion,
    QueryAttention,
    RegionAttention,
    build_xmsnet,
    proportion_weights,
)


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return build_model("xmsnet_tiny")


def _inputs(b: int, h: int, w: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(b, 3, h, w, generator=g), torch.rand(b, 1, h, w, generator=g)


# --------------------------------------------------------------------------------------------
# Shapes and gradients


def test_tiny_outputs_at_input_resolution(tiny):
    tiny.train()
    outputs = tiny(*_inputs(2, 128, 128))
    assert len(outputs) == 7
    assert all(tuple(o.shape) == (2, 1, 128, 128) for o in outputs)
    assert all(torch.isfinite(o).all() for o in outputs)


def test_any_size_divisible_by_32_and_channels_last(tiny):
    tiny.eval()
    rgb, aux = _inputs(1, 64, 96, seed=1)
    with torch.inference_mode():
        plain = tiny(rgb, aux)
    tiny.to(memory_format=torch.channels_last)  # outside inference mode: parameters stay normal
    with torch.inference_mode():
        cl = tiny(rgb.contiguous(memory_format=torch.channels_last), aux)
    tiny.to(memory_format=torch.contiguous_format)
    assert all(tuple(o.shape) == (1, 1, 64, 96) for o in plain)
    for a, b in zip(plain, cl, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError, match="differ"):
        tiny(rgb, aux[..., :32])
    with pytest.raises(ValueError, match="divisible by 32"):
        tiny(rgb[..., :80], aux[..., :80])


def test_gradients_reach_both_encoders_and_the_aux_stem(tiny):
    tiny.train()
    tiny.zero_grad(set_to_none=True)
    outputs = tiny(*_inputs(2, 64, 64, seed=2))
    sum(o.mean() for o in outputs).backward()

    def grad_norm(module: torch.nn.Module) -> float:
        return sum(p.grad.abs().sum().item() for p in module.parameters() if p.grad is not None)

    for part in ("rgb_encoder", "aux_encoder", "aux_stem", "fusion", "decoder"):
        assert grad_norm(getattr(tiny, part)) > 0, part
    # Every parameter takes part (no unused modules are built).
    unused = [n for n, p in tiny.named_parameters() if p.grad is None]
    assert unused == []


def test_gradcheck_fusion_and_query_blocks(one_thread):
    torch.manual_seed(0)
    prop = ModalityProportion(8).double()
    shared = [torch.randn(3, 8, dtype=torch.float64, requires_grad=True) for _ in range(2)]
    assert torch.autograd.gradcheck(prop, tuple(shared))

    block = AllRoundFusion(4, 8, link=True).double().train()
    f_rgb = torch.randn(2, 4, 4, 4, dtype=torch.float64, requires_grad=True)
    f_aux = torch.randn(2, 4, 4, 4, dtype=torch.float64, requires_grad=True)
    previous = torch.randn(2, 8, 8, 8, dtype=torch.float64)
    assert torch.autograd.gradcheck(
        lambda a, b: block(a, b, previous), (f_rgb, f_aux), fast_mode=True
    )

    attn = QueryAttention(8, heads=2).double()
    xs = [torch.randn(1, 8, 3, 3, dtype=torch.float64, requires_grad=True) for _ in range(3)]
    assert torch.autograd.gradcheck(attn, tuple(xs))


# --------------------------------------------------------------------------------------------
# Proportion and the official quirks


def test_proportion_stays_finite_when_alpha_plus_beta_is_zero():
    prop = ModalityProportion(8)
    with torch.no_grad():  # same embeddings, no biases: v_aux = -v_rgb, so beta = -alpha
        for layer_rgb, layer_aux in zip(prop.embed_rgb, prop.embed_aux, strict=True):
            layer_aux.weight.copy_(layer_rgb.weight)
            layer_rgb.bias.zero_()
            layer_aux.bias.zero_()
    m_rgb = torch.randn(4, 8)
    v_rgb = prop.embed_rgb(m_rgb)
    v_mix = prop.mix(v_rgb * -v_rgb)
    alpha = torch.cosine_similarity(v_rgb, v_mix, dim=1)
    beta = torch.cosine_similarity(-v_rgb, v_mix, dim=1)
    assert torch.allclose(alpha + beta, torch.zeros(4), atol=1e-6)
    assert not torch.isfinite(alpha / (alpha + beta)).all()  # what the official formula gives

    for mode in ("safe", "official"):
        prop.mode = mode
        m_rgb.requires_grad_(True)
        a, b = prop(m_rgb, -m_rgb)
        assert torch.isfinite(a).all() and torch.isfinite(b).all(), mode
        if mode == "safe":  # the guarded official ratio is finite but does not sum to 1 here
            torch.testing.assert_close(a + b, torch.ones(4))
            assert ((a >= 0) & (a <= 1)).all()
        (a.sum() + b.sum()).backward()
        assert torch.isfinite(m_rgb.grad).all()
        m_rgb.grad = None


def test_proportion_modes():
    alpha = torch.tensor([0.8, 0.6, -0.5, -0.2])
    beta = torch.tensor([0.2, -0.4, -0.5, 0.2])
    safe_a, safe_b = proportion_weights(alpha, beta)
    off_a, off_b = proportion_weights(alpha, beta, mode="official")
    # Both positive: the official ratio.
    assert safe_a[0].item() == pytest.approx(0.8, abs=1e-3)
    assert off_a[0].item() == pytest.approx(0.8, abs=1e-6)
    # Opposite signs: the official ratio leaves [0, 1]; the safe one does not.
    assert off_a[1].item() == pytest.approx(3.0) and off_b[1].item() == pytest.approx(-2.0)
    assert safe_a[1].item() == pytest.approx(1.0, abs=1e-3)
    assert ((safe_a >= 0) & (safe_a <= 1)).all()
    # Neither agrees with the mix: an even split.
    assert safe_a[2].item() == pytest.approx(0.5)
    # alpha + beta == 0 exactly: finite in both modes.
    assert torch.isfinite(off_a).all() and torch.isfinite(safe_a).all()
    with pytest.raises(ValueError):
        proportion_weights(alpha, beta, mode="nope")  # type: ignore[arg-type]


def _region_inputs(region: RegionAttention, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    captured = []
    handle = region.mix[0].register_forward_hook(lambda m, inp, out: captured.append(inp[0]))
    region(x, y)
    handle.remove()
    return captured[0]


def test_region_attention_flags():
    torch.manual_seed(0)
    fixed = RegionAttention(8)
    official = RegionAttention(8, duplicate_rgb_mean=True, relu_before_gate=True)
    official.load_state_dict(fixed.state_dict())  # same parameters either way
    x, y = torch.randn(2, 8, 6, 6), torch.randn(2, 8, 6, 6)

    maps = _region_inputs(fixed, x, y)
    x_rgb, x_aux = fixed.conv_rgb(x), fixed.conv_aux(y)
    torch.testing.assert_close(maps[:, 4:5], x_rgb.mean(1, keepdim=True))
    torch.testing.assert_close(maps[:, 5:6], x_aux.mean(1, keepdim=True))
    maps = _region_inputs(official, x, y)
    torch.testing.assert_close(maps[:, 5:6], maps[:, 4:5])  # RGB mean twice, aux mean never

    s_fixed = torch.cat(fixed(x, y))
    s_official = torch.cat(official(x, y))
    assert s_official.min().item() >= 0.5  # ReLU before sigmoid: never below one half
    assert s_fixed.min().item() < 0.5
    assert not torch.allclose(s_fixed, s_official)


def test_official_flag_sets_every_quirk():
    model = build_xmsnet("resnet10t", channels=16, official=True)
    block = model.fusion[1]
    assert block.region.duplicate_rgb_mean and block.region.relu_before_gate
    assert block.proportion.mode == "official"
    mixed = build_xmsnet("resnet10t", channels=16, official=True, relu_before_gate=False)
    assert not mixed.fusion[0].region.relu_before_gate
    assert mixed.fusion[0].region.duplicate_rgb_mean
    default = build_xmsnet("resnet10t", channels=16)
    assert default.fusion[0].proportion.mode == "safe"
    assert not default.fusion[0].region.duplicate_rgb_mean
    # Any backbone with strides 4..32 works; the fusion blocks size themselves from it.
    assert default.fusion[3].proj_rgb.in_channels == 512


# --------------------------------------------------------------------------------------------
# Builders and the paper configuration


def test_builders():
    assert {"xmsnet_pvt_v2_b5", "xmsnet_tiny"} <= set(MODELS)
    with pytest.raises(ConfigError) as err:
        build_model("xmsnet_b99")
    assert "xmsnet_tiny" in str(err.value) and "\n" not in str(err.value)


def test_paper_config_parameter_count():
    with torch.device("meta"):
        model = build_model("xmsnet_pvt_v2_b5")
    total = sum(p.numel() for p in model.parameters())
    encoder = sum(p.numel() for p in model.rgb_encoder.parameters())
    assert total == pytest.approx(167.2e6, rel=0.01)
    assert encoder == pytest.approx(81.44e6, rel=1e-4)
    # The official fusion blocks minus the modules that are never used (AF.linear, AF0's link).
    fusion = [sum(p.numel() for p in block.parameters()) for block in model.fusion]
    assert fusion == [368104 - 45312, 478696 - 8256, 699880 - 8256, 921064 - 8256]


# --------------------------------------------------------------------------------------------
# Weights


def test_backbone_weights_go_into_both_encoders(tmp_path):
    plain = timm.create_model("pvt_v2_b0", pretrained=False)
    path = tmp_path / "pvt_v2_b0.pth"
    torch.save(plain.state_dict(), path)
    model = build_model("xmsnet_tiny", backbone_weights=str(path))
    state = plain.state_dict()
    for encoder in (model.rgb_encoder, model.aux_encoder):
        for key, value in encoder.state_dict().items():
            assert torch.equal(value, state[key.replace("stages_", "stages.", 1)]), key
