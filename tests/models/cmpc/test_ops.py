"""CMPC's tensor operations."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from cmseg.models.cmpc.ops import l2_normalize


def test_l2_normalize_matches_f_normalize_with_zero_vectors():
    x = torch.randn(3, 5, 4, 4, dtype=torch.float64)
    x[0, :, 1, 1] = 0  # a zero vector: both give 0 and the same (1 / eps) gradient
    x.requires_grad_(True)
    for dim in (1, -1):
        ours, ref = l2_normalize(x, dim=dim), F.normalize(x, dim=dim)
        torch.testing.assert_close(ours, ref)
        weights = torch.randn_like(ref)
        (grad_ours,) = torch.autograd.grad((ours * weights).sum(), x)
        (grad_ref,) = torch.autograd.grad((ref * weights).sum(), x)
        torch.testing.assert_close(grad_ours, grad_ref)
    norms = l2_normalize(x, dim=1).norm(dim=1)
    assert torch.allclose(norms[1:], torch.ones_like(norms[1:]))
