"""Shared blocks: the matrix-product bilinear resize and the L2 normalisation against
PyTorch's own ``F.interpolate`` / ``F.normalize`` (values and gradients)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from cmseg.models.layers import bilinear_matrix, resize_bilinear


@pytest.mark.parametrize(
    ("shape", "size"),
    [
        ((2, 1, 16, 16), (128, 128)),  # CMPC's logits to the mask
        ((1, 3, 7, 9), (20, 13)),  # odd, up in one axis
        ((2, 2, 33, 17), (5, 40)),  # down in one axis, up in the other
        ((1, 1, 1, 1), (4, 3)),  # a single pixel
        ((3, 4, 5), (9, 2)),  # any leading dims
    ],
)
def test_resize_bilinear_matches_interpolate(shape, size):
    x = torch.randn(*shape, dtype=torch.float64, requires_grad=True)
    ours = resize_bilinear(x, size)
    flat = x.reshape(-1, 1, *shape[-2:])
    ref = F.interpolate(flat, size=size, mode="bilinear", align_corners=False)
    ref = ref.reshape(*shape[:-2], *size)
    torch.testing.assert_close(ours, ref)
    weights = torch.randn_like(ref)
    (grad_ours,) = torch.autograd.grad((ours * weights).sum(), x)
    (grad_ref,) = torch.autograd.grad((ref * weights).sum(), x)
    torch.testing.assert_close(grad_ours, grad_ref)


def test_resize_bilinear_same_size_is_the_input_and_matrix_by_hand():
    x = torch.randn(1, 1, 4, 4)
    assert resize_bilinear(x, (4, 4)) is x
    # 2 -> 4 samples: sources (i + 0.5) / 2 - 0.5 = -0.25 (clamped to 0), 0.25, 0.75, 1.25
    # (its upper neighbour clamped to the last sample)
    expected = torch.tensor([[1.0, 0.0], [0.75, 0.25], [0.25, 0.75], [0.0, 1.0]])
    torch.testing.assert_close(bilinear_matrix(2, 4), expected)
    assert torch.allclose(bilinear_matrix(7, 3).sum(dim=1), torch.ones(3))
