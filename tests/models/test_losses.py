"""The losses shared by several methods (cmseg.models.losses): hand-computed values."""

from __future__ import annotations

import pytest
import torch

from cmseg.models.losses import dice_loss


def test_dice_loss_by_hand():
    # sigmoid(0) = 0.5 everywhere on a 2x2 map with one target pixel:
    # 1 - (2 * 0.5 + 1) / (4 * 0.5 + 1 + 1) = 1 - 2 / 4 = 0.5
    logits = torch.zeros(1, 1, 2, 2)
    target = torch.tensor([[[[1.0, 0.0], [0.0, 0.0]]]])
    assert dice_loss(logits, target).item() == pytest.approx(0.5)
    # a confident, exact prediction and an empty target with an empty prediction: ~0
    sure = (target * 2 - 1) * 30
    assert dice_loss(sure, target).item() == pytest.approx(0.0, abs=1e-6)
    empty = torch.zeros(1, 1, 2, 2)
    assert dice_loss(torch.full((1, 1, 2, 2), -30.0), empty).item() == pytest.approx(0.0, abs=1e-6)
    # logits at a lower resolution are resized to the target
    coarse = dice_loss(torch.zeros(2, 1, 1, 1), torch.ones(2, 1, 4, 4))
    assert coarse.item() == pytest.approx(1 - 17 / 25)
