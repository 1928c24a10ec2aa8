"""XMSNet's losses: hand-computed values, the official quirks, gradients, deep supervision."""

from __future__ import annotations

import math

import pytest
import torch

from cmseg.models.xmsnet.loss import (
    XMSNET_SIDE_WEIGHTS,
    bernoulli_kl,
    deep_supervision_loss,
    structure_loss,
    xmsnet_loss,
)


def _bce(x: float, g: float) -> float:
    p = 1 / (1 + math.exp(-x))
    return -(g * math.log(p) + (1 - g) * math.log(1 - p))


def test_structure_loss_constant_case_by_hand():
    # Empty target, logits 0: w = 1 everywhere, BCE = log 2, p = 0.5, IoU term 1 - 1/(8 + 1).
    logits = torch.zeros(1, 1, 4, 4)
    target = torch.zeros(1, 1, 4, 4)
    expected = math.log(2) + 8 / 9
    assert structure_loss(logits, target).item() == pytest.approx(expected, rel=1e-6)
    assert structure_loss(logits, target, official_bce=True).item() == pytest.approx(
        expected, rel=1e-6
    )


def test_structure_loss_weighted_bce_is_really_weighted():
    # On a 4x4 image every 31x31 window (zero padding counted) covers the whole image, so
    # avgpool(g) = sum(g) / 961 at every pixel and the weights can be written by hand.
    logits = torch.tensor(
        [
            [0.5, -1.0, 2.0, 0.0],
            [1.5, -0.5, 0.3, -2.0],
            [0.0, 1.0, -1.5, 0.7],
            [-0.2, 0.4, 0.9, -0.8],
        ]
    ).reshape(1, 1, 4, 4)
    target = torch.zeros(1, 1, 4, 4)
    target[0, 0, 1, 2] = 1.0
    x = logits.flatten().tolist()
    g = target.flatten().tolist()
    w = [1 + 5 * abs(1 / 961 - gi) for gi in g]
    p = [1 / (1 + math.exp(-xi)) for xi in x]
    wbce = sum(wi * _bce(xi, gi) for wi, xi, gi in zip(w, x, g, strict=True)) / sum(w)
    plain_bce = sum(_bce(xi, gi) for xi, gi in zip(x, g, strict=True)) / 16
    inter = sum(wi * pi * gi for wi, pi, gi in zip(w, p, g, strict=True))
    union = sum(wi * (pi + gi) for wi, pi, gi in zip(w, p, g, strict=True))
    wiou = 1 - (inter + 1) / (union - inter + 1)

    ours = structure_loss(logits, target).item()
    official = structure_loss(logits, target, official_bce=True).item()
    assert ours == pytest.approx(wbce + wiou, rel=1e-5)
    assert official == pytest.approx(plain_bce + wiou, rel=1e-5)
    assert abs(ours - official) > 1e-3


def test_structure_loss_is_a_batch_mean_and_checks_shapes():
    torch.manual_seed(0)
    logits = torch.randn(3, 1, 8, 8)
    target = (torch.rand(3, 1, 8, 8) > 0.5).float()
    each = [structure_loss(logits[i : i + 1], target[i : i + 1]) for i in range(3)]
    assert structure_loss(logits, target).item() == pytest.approx(sum(each).item() / 3, rel=1e-5)
    with pytest.raises(ValueError):
        structure_loss(logits, target[:, :, :4])


def test_bernoulli_kl_values():
    torch.manual_seed(0)
    a = torch.randn(2, 1, 5, 5, dtype=torch.float64)
    b = torch.randn(2, 1, 5, 5, dtype=torch.float64)
    assert bernoulli_kl(a, a).item() == 0.0
    p, q = a.sigmoid(), b.sigmoid()
    kl_pq = p * (p / q).log() + (1 - p) * ((1 - p) / (1 - q)).log()
    kl_qp = q * (q / p).log() + (1 - q) * ((1 - q) / (1 - p)).log()
    assert bernoulli_kl(a, b).item() == pytest.approx((kl_pq + kl_qp).mean().item(), rel=1e-10)
    assert bernoulli_kl(a, b).item() > 0
    assert bernoulli_kl(a, b).item() == pytest.approx(bernoulli_kl(b, a).item(), rel=1e-12)
    # Saturated logits stay finite (no log 0).
    big = torch.full((1, 1, 2, 2), 60.0)
    assert torch.isfinite(bernoulli_kl(big, -big))


def test_gradcheck_losses():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # thousands of tiny ops: threads only add contention
    try:
        _gradcheck_losses()
    finally:
        torch.set_num_threads(threads)


def _gradcheck_losses():
    torch.manual_seed(0)
    a = torch.randn(2, 1, 6, 6, dtype=torch.float64, requires_grad=True)
    b = torch.randn(2, 1, 6, 6, dtype=torch.float64, requires_grad=True)
    target = torch.rand(2, 1, 6, 6, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda x: structure_loss(x, target), (a,))
    assert torch.autograd.gradcheck(lambda x: structure_loss(x, target, official_bce=True), (a,))
    assert torch.autograd.gradcheck(bernoulli_kl, (a, b))


def _outputs(seed: int = 0) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(2, 1, 16, 16, generator=g, requires_grad=True) for _ in range(7)]


def test_xmsnet_loss_sums_its_parts():
    outputs = _outputs()
    target = (torch.rand(2, 1, 16, 16, generator=torch.Generator().manual_seed(1)) > 0.6).float()
    total, parts = xmsnet_loss(outputs, target)
    expected = sum(
        w * structure_loss(o, target) for w, o in zip(XMSNET_SIDE_WEIGHTS, outputs, strict=True)
    )
    expected = expected + 0.5 * bernoulli_kl(outputs[4], outputs[5])
    expected = expected + 0.5 * bernoulli_kl(outputs[5], outputs[6])
    assert total.item() == pytest.approx(expected.item(), rel=1e-6)
    assert set(parts) == {f"s{i}" for i in range(7)} | {"kl_s4_s5", "kl_s5_s6"}
    assert parts["kl_s4_s5"] > 0 and parts["kl_s5_s6"] > 0
    assert not any(p.requires_grad for p in parts.values())
    total2, _ = xmsnet_loss(outputs, target, kl_weight=0.0)
    assert total2.item() < total.item()


def test_kl_is_live_unlike_the_official_one():
    outputs = _outputs()
    target = torch.zeros(2, 1, 16, 16)
    # Only the KL terms reach S4..S6 through these gradients when the side weights are off.
    ours, parts = xmsnet_loss(outputs, target)
    official, official_parts = xmsnet_loss(outputs, target, official=True)
    assert official_parts["kl_s4_s5"].item() == 0.0
    assert official_parts["kl_s5_s6"].item() == 0.0
    assert parts["kl_s4_s5"].item() > 0.0

    from cmseg.models.xmsnet.loss import _official_kl

    a, b = outputs[4], outputs[5]
    grad_official = torch.autograd.grad(_official_kl(a, b), (a, b))
    assert all(g.abs().max().item() == 0.0 for g in grad_official)
    grad_ours = torch.autograd.grad(bernoulli_kl(a, b), (a, b))
    assert all(g.abs().max().item() > 0.0 for g in grad_ours)


def test_official_loss_is_plain_bce_structure_loss():
    outputs = _outputs(3)
    target = (torch.rand(2, 1, 16, 16, generator=torch.Generator().manual_seed(4)) > 0.5).float()
    total, _ = xmsnet_loss(outputs, target, official=True)
    expected = sum(
        w * structure_loss(o, target, official_bce=True)
        for w, o in zip(XMSNET_SIDE_WEIGHTS, outputs, strict=True)
    )
    assert total.item() == pytest.approx(expected.item(), rel=1e-6)
    with pytest.raises(ValueError):
        xmsnet_loss(outputs[:6], target)


def test_separable_boundary_weight_equals_the_2d_window():
    from cmseg.models.xmsnet.loss import boundary_weight

    g = torch.rand(2, 1, 40, 50, dtype=torch.float64)
    direct = 1 + 5 * (torch.nn.functional.avg_pool2d(g, 31, stride=1, padding=15) - g).abs()
    torch.testing.assert_close(boundary_weight(g), direct, rtol=0, atol=1e-12)


def test_deep_supervision_weights_the_side_outputs_coarse_to_fine():
    outputs = _outputs(5)[:4]
    target = (torch.rand(2, 1, 16, 16, generator=torch.Generator().manual_seed(6)) > 0.5).float()
    total, parts = deep_supervision_loss(outputs, target)
    expected = sum((i + 1) / 4 * structure_loss(o, target) for i, o in enumerate(outputs))
    assert total.item() == pytest.approx(expected.item(), rel=1e-6)
    assert set(parts) == {"s0", "s1", "s2", "s3"}
    assert parts["s2"].item() == pytest.approx(structure_loss(outputs[2], target).item())
    assert not any(p.requires_grad for p in parts.values())
    total.backward()
    assert all(o.grad is not None and o.grad.abs().sum() > 0 for o in outputs)
