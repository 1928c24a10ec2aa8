"""SSNM's network: size, shapes for any group and input size, weight sharing, the
modulators' wiring, backbones and their weights files."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from cmseg.models import build_model
from cmseg.models.ssnm import SSNM, ssnm_tiny, ssnm_vgg16
from cmseg.models.ssnm.backbone import VGG16_TAPS, VGGPyramid, load_vgg_weights
from cmseg.models.weights import StateDictError


def _count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_the_paper_model_has_40_8m_parameters():
    model = ssnm_vgg16()
    # VGG16-BN features 14.72 M + head 26.11 M, the shared decoder stage counted once.
    assert abs(_count(model) - 40.8e6) / 40.8e6 < 0.01
    assert abs(_count(model.backbone) - 14.72e6) / 14.72e6 < 0.005


def test_registered_builders():
    assert isinstance(build_model("ssnm_tiny", num_classes=3), SSNM)
    with pytest.raises(TypeError):
        build_model("ssnm_tiny", not_an_option=1)


@pytest.mark.parametrize(("n", "h", "w"), [(2, 64, 64), (5, 96, 64), (7, 32, 128)])
def test_any_group_size_and_input_size(n, h, w):
    torch.manual_seed(0)
    model = ssnm_tiny(num_classes=4).eval()
    with torch.no_grad():
        out = model(torch.randn(2, n, 3, h, w))
    assert out.mask.shape == (2, n, h, w)
    assert out.logits.shape == (2, n, 2, h, w)
    assert out.cls.shape == (2, 4) and out.cls_logits.shape == (2, 4)
    assert out.spatial.shape == (2, n, h // 32, w // 32)
    assert float(out.mask.min()) >= 0 and float(out.mask.max()) <= 1
    assert torch.allclose(out.mask, torch.softmax(out.logits, dim=2)[:, :, 0])
    assert torch.allclose(out.cls, torch.sigmoid(out.cls_logits))


def test_bad_inputs_are_refused():
    model = ssnm_tiny(num_classes=2)
    with pytest.raises(ValueError, match="multiples of 32"):
        model(torch.randn(1, 2, 3, 60, 64))
    with pytest.raises(ValueError, match=r"\(B, N, 3, H, W\)"):
        model(torch.randn(2, 3, 64, 64))
    with pytest.raises(ValueError, match="spatial_solver"):
        ssnm_tiny(spatial_solver="lanczos9")
    with pytest.raises(ValueError, match="hsp_layout"):
        ssnm_tiny(hsp_layout="columns")


def test_groups_are_independent():
    """A group's output depends only on its own images (eval mode: BN uses running stats)."""
    torch.manual_seed(1)
    model = ssnm_tiny(num_classes=3).eval()
    x = torch.randn(3, 4, 3, 64, 64)
    with torch.no_grad():
        together = model(x).mask
        alone = model(x[1:2]).mask
    assert torch.allclose(together[1:2], alone, atol=1e-5)


def test_the_group_matters_through_the_modulators():
    """Changing one image changes the others' maps (the modulators are group-level); without
    both modulators the images are segmented independently."""
    torch.manual_seed(2)
    x = torch.randn(1, 3, 3, 64, 64)
    y = x.clone()
    y[0, 2] = torch.randn(3, 64, 64)
    for spatial, semantic, coupled in [(True, True, True), (False, False, False)]:
        model = ssnm_tiny(
            num_classes=3, spatial_modulator=spatial, semantic_modulator=semantic
        ).eval()
        with torch.no_grad():
            a, b = model(x).mask[0, 0], model(y).mask[0, 0]
        assert (not torch.allclose(a, b, atol=1e-6)) == coupled


def test_ablations():
    torch.manual_seed(3)
    x = torch.randn(1, 3, 3, 64, 64)
    no_sem = ssnm_tiny(num_classes=3, semantic_modulator=False).eval()
    out = no_sem(x)
    assert out.cls is None and out.cls_logits is None and out.spatial.abs().sum() > 0
    assert not any(name.startswith("semantic.") for name, _ in no_sem.named_parameters())
    no_spa = ssnm_tiny(num_classes=3, spatial_modulator=False).eval()
    assert torch.count_nonzero(no_spa(x).spatial) == 0


def test_the_spatial_mask_is_a_constant_input():
    """No gradient reaches the backbone through the spatial mask (as in the official code):
    the mask has no graph, and the shift's gradient flows only to the decoder."""
    torch.manual_seed(4)
    model = ssnm_tiny(num_classes=2, semantic_modulator=False)
    out = model(torch.randn(1, 2, 3, 64, 64))
    assert not out.spatial.requires_grad and out.spatial.grad_fn is None


def test_official_weight_sharing_of_the_decoder():
    model = ssnm_vgg16()
    assert model.decoder.stage(4) is model.decoder.stage(3) is model.decoder.stage(2)
    assert model.decoder.finest is not model.decoder.stage(2)
    separate = ssnm_tiny(shared_decoder=False)
    assert len({id(separate.decoder.stage(k)) for k in (2, 3, 4)}) == 3


def test_official_initialisation():
    torch.manual_seed(5)
    model = ssnm_tiny(num_classes=2)
    conv = model.lifting[0].expand
    fan_in, fan_out = conv.in_channels * 9, conv.out_channels * 9
    bound = (6 / (fan_in + fan_out)) ** 0.5  # Xavier uniform
    assert float(conv.weight.detach().abs().max()) <= bound
    assert float(conv.weight.detach().abs().max()) > 0.9 * bound
    bn = model.backbone.features[1]
    assert torch.equal(bn.weight, torch.ones_like(bn.weight))


def test_vgg_pyramid_matches_torchvision_layout(tmp_path):
    torchvision = pytest.importorskip("torchvision")
    reference = torchvision.models.vgg16_bn(weights=None)
    features = reference.features.eval()
    assert len(features) == 44 and all(isinstance(features[i], nn.MaxPool2d) for i in VGG16_TAPS)
    path = tmp_path / "vgg16_bn_feat.pth"
    torch.save(features.state_dict(), path)  # the official weights file: features only
    model = ssnm_vgg16(backbone_weights=str(path)).eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        taps, y = [], x
        for i, layer in enumerate(features):
            y = layer(y)
            if i in VGG16_TAPS:
                taps.append(y)
        ours = model.backbone(x)
    assert [t.shape[1] for t in ours] == [128, 256, 512, 512]
    for a, b in zip(ours, taps, strict=True):
        assert torch.equal(a, b)
    # the whole torchvision model's state dict loads too (its classifier is dropped)
    full = tmp_path / "vgg16_bn.pth"
    torch.save(reference.state_dict(), full)
    ssnm_vgg16(backbone_weights=str(full))


def test_a_weights_file_that_does_not_fit_is_one_line(tmp_path):
    pyramid = VGGPyramid(width_divisor=8)
    with pytest.raises(StateDictError, match="missing") as err:
        load_vgg_weights(pyramid, {"0.weight": torch.zeros(8, 3, 3, 3)}, source="w.pth")
    assert "\n" not in str(err.value)


def test_timm_backbone_and_level_fusion():
    pytest.importorskip("timm")
    torch.manual_seed(6)
    model = ssnm_tiny(num_classes=2, backbone="resnet18", fuse_levels=True).eval()
    assert model.fusion is not None
    with torch.no_grad():
        out = model(torch.randn(1, 2, 3, 64, 64))
    assert out.mask.shape == (1, 2, 64, 64) and out.spatial.shape == (1, 2, 2, 2)


def test_hsp_layouts_differ_only_in_the_group_pooling():
    torch.manual_seed(7)
    a = ssnm_tiny(num_classes=3, hsp_layout="images").eval()
    b = ssnm_tiny(num_classes=3, hsp_layout="official").eval()
    b.load_state_dict(a.state_dict())
    x = torch.randn(1, 3, 3, 64, 64)
    with torch.no_grad():
        assert not torch.allclose(a(x).cls_logits, b(x).cls_logits)
    # a group of one image: both layouts read the same numbers
    x1 = torch.randn(1, 1, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(a(x1).cls_logits, b(x1).cls_logits)


@pytest.mark.parametrize("mean", [False, True])
def test_semantic_pooling_by_hand(mean):
    """gamma from the per-image Gram matrices pooled across the images, step by step (with
    ``hsp_mean`` each Gram is divided by the number of vectors it sums: 6 positions, 4
    images)."""
    from cmseg.models.ssnm.semantic import SemanticModulator

    torch.manual_seed(8)
    sem = SemanticModulator(width=6, num_classes=2, hsp_channels=(3, 2), hsp_mean=mean)
    x = torch.rand(1, 4, 6, 2, 3)
    gamma, logits = sem(x)
    conv1, conv2 = sem.image_pool[0], sem.group_pool[0]
    grams = []
    for i in range(4):
        f = torch.relu(
            torch.einsum("oc,chw->ohw", conv1.weight[:, :, 0, 0], x[0, i])
            + conv1.bias[:, None, None]
        )
        f = f.reshape(3, -1)
        grams.append((f @ f.T).reshape(-1) / (6 if mean else 1))  # 9 numbers per image
    g = torch.stack(grams, dim=1)  # (9, 4): Gram entries x images
    z = torch.relu(conv2.weight[:, :, 0, 0] @ g + conv2.bias[:, None])  # (2, 4)
    v = (z @ z.T).reshape(1, -1) / (4 if mean else 1)
    expected = torch.relu(sem.group_vector[0](v))
    assert torch.allclose(gamma, expected, atol=1e-5)
    assert torch.allclose(logits, sem.classifier(expected), atol=1e-5)
