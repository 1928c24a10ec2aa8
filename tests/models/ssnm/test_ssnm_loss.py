"""SSNM's loss against the official formulas written out by hand."""

from __future__ import annotations

import pytest
import torch
from torch.nn import functional as F

from cmseg.models.ssnm.loss import pixel_weights, ssnm_loss
from cmseg.models.ssnm.model import SSNMOutput


def _output(b=2, n=3, h=8, w=8, k=5, seed=0, cls=True) -> SSNMOutput:
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(b, n, 2, h, w, generator=g)
    cls_logits = torch.randn(b, k, generator=g) if cls else None
    return SSNMOutput(
        mask=torch.softmax(logits, dim=2)[:, :, 0],
        logits=logits,
        cls=torch.sigmoid(cls_logits) if cls else None,
        cls_logits=cls_logits,
        spatial=torch.zeros(b, n, 1, 1),
    )


def test_equals_the_official_loss():
    out = _output()
    masks = (torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(1)) > 0.7).float()
    labels = torch.zeros(2, 5)
    labels[0, 1] = labels[1, 3] = labels[1, 4] = 1
    total, parts = ssnm_loss(out, masks, labels)
    # official loss.py: p = foreground fraction; w = p on fg, 1 - p on bg; BCE on the
    # probability; BCE of the sigmoid class scores; smooth L1 on the probability.
    p = masks.sum() / masks.numel()
    w = torch.where(masks == 1, p, 1 - p)
    wbce = F.binary_cross_entropy(out.mask, masks, weight=w)
    cls = F.binary_cross_entropy(out.cls, labels)
    sl1 = F.smooth_l1_loss(out.mask, masks)
    assert torch.allclose(parts["wbce"], wbce, atol=1e-6)
    assert torch.allclose(parts["cls"], cls, atol=1e-6)
    assert torch.allclose(parts["smooth_l1"], sl1, atol=1e-7)
    assert torch.allclose(total, wbce + cls + sl1, atol=1e-5)


def test_weights_and_balanced_option():
    masks = torch.zeros(1, 2, 4, 4)
    masks[..., :1, :] = 1  # a quarter foreground
    official = pixel_weights(masks)
    balanced = pixel_weights(masks, "balanced")
    assert torch.allclose(official[masks == 1], torch.tensor(0.25))
    assert torch.allclose(official[masks == 0], torch.tensor(0.75))
    assert torch.allclose(balanced[masks == 1], torch.tensor(0.75))
    with pytest.raises(ValueError, match="foreground_weight"):
        pixel_weights(masks, "hed")
    out = _output(b=1, n=2, h=4, w=4)
    total, parts = ssnm_loss(out, masks, torch.zeros(1, 5), weights=(2.0, 0.0, 3.0))
    assert torch.allclose(total, 2 * parts["wbce"] + 3 * parts["smooth_l1"])


def test_without_classifier_there_is_no_cls_term():
    out = _output(cls=False)
    total, parts = ssnm_loss(out, torch.zeros(2, 3, 8, 8))
    assert "cls" not in parts
    assert torch.allclose(total, parts["wbce"] + parts["smooth_l1"])
    with pytest.raises(ValueError, match="labels"):
        ssnm_loss(_output(), torch.zeros(2, 3, 8, 8))


def test_gradients_match_the_probability_form():
    """The logit form gives the official gradients (no clamp is reached here)."""
    out = _output()
    out.logits.requires_grad_(True)
    masks = (torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(2)) > 0.5).float()
    mask = torch.softmax(out.logits, dim=2)[:, :, 0]
    mine = SSNMOutput(mask, out.logits, None, None, out.spatial)
    total, _ = ssnm_loss(mine, masks)
    (g_ours,) = torch.autograd.grad(total, out.logits)
    p = masks.mean()
    w = torch.where(masks == 1, p, 1 - p)
    mask2 = torch.softmax(out.logits, dim=2)[:, :, 0]
    ref = F.binary_cross_entropy(mask2, masks, weight=w) + F.smooth_l1_loss(mask2, masks)
    (g_ref,) = torch.autograd.grad(ref, out.logits)
    assert torch.allclose(g_ours, g_ref, atol=1e-7)
