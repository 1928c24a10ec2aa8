"""FeatureCache: the same features as the module, computed once per distinct image, only
for frozen modules, within its memory budget; and its use by CMPC and the ris task."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from cmseg.errors import ConfigError
from cmseg.models import build_model
from cmseg.models.feature_cache import BLOCK_ROWS, FeatureCache, check_frozen
from cmseg.models.text import Vocabulary

pytestmark = pytest.mark.usefixtures("one_thread")


class CountingPyramid(nn.Module):
    """Two levels, frozen batch norm; counts the images it has seen."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.images_seen = 0

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        self.images_seen += x.shape[0]
        y = self.bn(self.conv(x))
        return [y, nn.functional.avg_pool2d(y, 2)]


def _frozen() -> CountingPyramid:
    torch.manual_seed(0)
    module = CountingPyramid().eval()
    module.requires_grad_(False)
    return module


def test_cached_features_equal_the_module_and_are_computed_once():
    module, cache = _frozen(), FeatureCache()
    a, b, c = (
        torch.randn(1, 3, 8, 8, generator=torch.Generator().manual_seed(s)) for s in range(3)
    )
    first = cache(module, torch.cat([a, b]))
    assert module.images_seen == 2 and (cache.hits, cache.misses, len(cache)) == (0, 2, 2)
    # a again (from memory), c new, a third time within the batch
    second = cache(module, torch.cat([a, c, a]))
    assert module.images_seen == 3 and (cache.hits, cache.misses) == (2, 3)
    reference = module(torch.cat([a, b]))
    for got, want in zip(first, reference, strict=True):
        torch.testing.assert_close(got, want)
    for got, want in zip(second, module(torch.cat([a, c, a])), strict=True):
        assert got.shape == want.shape
        torch.testing.assert_close(got, want)
    assert cache.bytes == BLOCK_ROWS * (4 * 8 * 8 + 4 * 4 * 4) * 4  # one block allocated


def test_a_changed_image_is_a_new_entry_and_the_budget_is_kept():
    module = _frozen()
    image = torch.randn(1, 3, 8, 8)
    per_image = (4 * 8 * 8 + 4 * 4 * 4) * 4
    cache = FeatureCache(max_bytes=per_image)  # room for one image
    cache(module, image)
    flipped = image.flip(-1)
    out = cache(module, flipped)
    torch.testing.assert_close(out[0], module(flipped)[0])
    assert len(cache) == 1 and cache.bytes == per_image
    cache(module, flipped)  # not stored, so computed again
    assert cache.misses == 3


def test_only_frozen_modules():
    module = CountingPyramid().eval()
    with pytest.raises(RuntimeError, match="parameters are trainable"):
        check_frozen(module)
    module.requires_grad_(False)
    module.bn.train()
    with pytest.raises(RuntimeError, match="bn .BatchNorm2d. is in training mode"):
        FeatureCache()(module, torch.zeros(1, 3, 8, 8))
    module.bn.eval()
    check_frozen(module)
    with pytest.raises(ValueError, match="max_bytes"):
        FeatureCache(max_bytes=-1)


def test_cmpc_with_a_cached_backbone_gives_the_same_loss_and_gradients():
    vocab = Vocabulary.build(["the red circle", "a blue square left of it"])
    torch.manual_seed(0)
    model = build_model("cmpc_tiny", vocabulary=vocab, freeze_backbone_bn=True)
    model.backbone.requires_grad_(False)
    images = torch.randn(2, 3, 64, 64)
    sentences = ["the red circle", "a blue square left of it"] * 2  # 2 sentences per image

    def loss_and_grads() -> tuple[torch.Tensor, list[torch.Tensor]]:
        model.zero_grad(set_to_none=True)
        out = model(images, sentences)
        loss = out.final.square().mean() + sum(lv.mean() for lv in out.levels)
        loss.backward()
        grads = [p.grad.clone() for p in model.parameters() if p.grad is not None]
        return loss.detach(), grads

    model.train()
    plain_loss, plain_grads = loss_and_grads()
    model.backbone_cache = FeatureCache()
    for _ in range(2):  # the first call fills the cache, the second reads it
        loss, grads = loss_and_grads()
        torch.testing.assert_close(loss, plain_loss)
        for got, want in zip(grads, plain_grads, strict=True):
            torch.testing.assert_close(got, want)
    assert (model.backbone_cache.misses, model.backbone_cache.hits) == (2, 2)
    assert not any(k.startswith("backbone_cache") for k in model.state_dict())


def test_ris_option_needs_a_frozen_backbone(tmp_path):
    from cmseg.tasks.ris.options import RISOptions

    with pytest.raises(ConfigError, match="needs data.options.freeze_backbone"):
        RISOptions.from_config({"cache_backbone_features": True})
    with pytest.raises(ConfigError, match="cache_gib"):
        RISOptions.from_config({"cache_gib": -1})
