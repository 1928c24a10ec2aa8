"""CMPC's loss: hand-computed values, the official (summed) reduction, resizing."""

from __future__ import annotations

import math

import pytest
import torch

from cmseg.models.cmpc import CMPCOutput
from cmseg.models.cmpc.loss import cmpc_loss


def _bce(x: float, g: float) -> float:
    p = 1 / (1 + math.exp(-x))
    return -(g * math.log(p) + (1 - g) * math.log(1 - p))


def test_loss_by_hand():
    final = torch.tensor([[0.5, -1.0], [2.0, 0.0]]).reshape(1, 1, 2, 2)
    levels = tuple(torch.full((1, 1, 2, 2), v) for v in (0.0, 1.0, -2.0))
    target = torch.tensor([[1.0, 0.0], [1.0, 0.0]]).reshape(1, 1, 2, 2)
    out = CMPCOutput(final=final, levels=levels, word_types=torch.zeros(1, 1, 4))
    g = target.flatten().tolist()
    final_bce = [_bce(x, gi) for x, gi in zip(final.flatten().tolist(), g, strict=True)]
    level_bce = [[_bce(v, gi) for gi in g] for v in (0.0, 1.0, -2.0)]

    total, parts = cmpc_loss(out, target)
    expected = 0.7 * sum(final_bce) / 4 + 0.1 * sum(sum(b) / 4 for b in level_bce)
    assert total.item() == pytest.approx(expected, rel=1e-6)
    assert set(parts) == {"final", "c3", "c4", "c5"}
    assert parts["c4"].item() == pytest.approx(sum(level_bce[1]) / 4, rel=1e-6)

    # The official reduction sums over pixels (and averages over the batch).
    pair = CMPCOutput(
        final.expand(2, -1, -1, -1),
        tuple(level.expand(2, -1, -1, -1) for level in levels),
        out.word_types,
    )
    total_sum, _ = cmpc_loss(pair, target.expand(2, -1, -1, -1), reduction="sum")
    assert total_sum.item() == pytest.approx(4 * expected, rel=1e-6)

    # Logits are resized to the target: a constant map stays constant.
    big_target = torch.zeros(1, 1, 8, 8)
    big_target[..., :4, :] = 1
    constant = CMPCOutput(torch.full((1, 1, 2, 2), 1.0), levels, out.word_types)
    half = (_bce(1.0, 1.0) + _bce(1.0, 0.0)) / 2
    level_half = sum((_bce(v, 1.0) + _bce(v, 0.0)) / 2 for v in (0.0, 1.0, -2.0))
    total_big, _ = cmpc_loss(constant, big_target)
    assert total_big.item() == pytest.approx(0.7 * half + 0.1 * level_half, rel=1e-6)
    with pytest.raises(ValueError, match="reduction"):
        cmpc_loss(out, target, reduction="max")  # type: ignore[arg-type]
