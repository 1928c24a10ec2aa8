"""Dense pretraining of a feature pyramid, and the timm-layout file it is saved to."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import timm
import torch
from safetensors.torch import load_file

from cmseg.engine.backbone_pretraining import pixel_accuracy, pretrain_backbone
from cmseg.models.backbones import save_backbone_weights
from cmseg.models.cmpc import cmpc_backbone


def _squares(n: int, size: int = 32, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Grey noise with one red or one blue square; map 0: square or not, map 1: its colour."""
    rng = np.random.default_rng(seed)
    images = rng.integers(90, 160, (n, size, size, 3)).astype(np.uint8)
    labels = np.zeros((n, 2, size, size), np.int64)
    for i in range(n):
        y, x = rng.integers(2, size - 14, 2)
        colour = int(rng.integers(2))
        images[i, y : y + 12, x : x + 12] = (230, 30, 30) if colour == 0 else (30, 30, 230)
        labels[i, 0, y : y + 12, x : x + 12] = 1
        labels[i, 1, y : y + 12, x : x + 12] = 1 + colour
    return images, labels


@pytest.mark.parametrize("name", ["test_resnet", "regnetx_002"])
def test_saved_weights_are_timm_layout_and_load_back(tmp_path: Path, name: str, one_thread) -> None:
    torch.manual_seed(0)
    pyramid = cmpc_backbone(name)
    with torch.no_grad():  # not the initialisation, so that loading is visible
        for p in pyramid.parameters():
            p.add_(0.01 * torch.randn_like(p))
    path = tmp_path / "backbone.safetensors"
    written = save_backbone_weights(pyramid, name, path)
    on_disk = load_file(str(path))
    assert set(on_disk) == set(written)
    plain = set(timm.create_model(name, pretrained=False).state_dict())
    assert set(on_disk) <= plain  # the plain model's names (regnet: stages.0, not stages_0)

    torch.manual_seed(1)
    loaded = cmpc_backbone(name, weights=path).eval()
    pyramid.eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        for a, b in zip(pyramid(x), loaded(x), strict=True):
            torch.testing.assert_close(a, b)


def test_pretraining_learns_the_maps(one_thread) -> None:
    images, labels = _squares(24)
    torch.manual_seed(0)
    pyramid = cmpc_backbone("test_resnet")
    result = pretrain_backbone(
        pyramid, images, labels, [2, 3], steps=60, batch_size=8, lr=3e-3, seed=0
    )
    assert result.steps == 60 and len(result.losses) == 60 and result.seconds > 0
    assert np.mean(result.losses[-10:]) < 0.5 * np.mean(result.losses[:5])
    held_images, held_labels = _squares(16, seed=1)
    shape_acc, colour_acc = pixel_accuracy(pyramid, result.heads, held_images, held_labels)
    assert shape_acc > 0.8 and colour_acc > 0.8  # chance: 0.5 on the square's pixels


def test_pretraining_is_deterministic(one_thread) -> None:
    images, labels = _squares(8)
    runs = []
    for _ in range(2):
        torch.manual_seed(0)
        pyramid = cmpc_backbone("test_resnet")
        runs.append(
            pretrain_backbone(pyramid, images, labels, [2, 3], steps=3, batch_size=4, seed=5).losses
        )
    assert runs[0] == runs[1]


def test_bad_inputs_are_refused() -> None:
    images, labels = _squares(4)
    pyramid = cmpc_backbone("test_resnet")
    with pytest.raises(ValueError, match="holds class 2"):
        pretrain_backbone(pyramid, images, labels, [2, 2], steps=1)
    with pytest.raises(ValueError, match="2 label maps but 1 class counts"):
        pretrain_backbone(pyramid, images, labels, [2], steps=1)
    with pytest.raises(ValueError, match="labels must be"):
        pretrain_backbone(pyramid, images, labels[:2], [2, 3], steps=1)
