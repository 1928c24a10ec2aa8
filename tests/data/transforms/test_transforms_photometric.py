"""Photometric and noise transforms: ColorJitter, AuxNoise, MaskPepper."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageEnhance
from transforms_helpers import textured_sample

from cmseg.data import transforms as T


def test_color_jitter_touches_rgb_only():
    sample = {**textured_sample(), "sentence": "left"}
    out = T.ColorJitter(brightness=(1.3, 1.3), contrast=(0.7, 0.7))(sample, rng=0)
    assert not np.array_equal(out["image"], sample["image"])
    for key in ("aux", "aux_valid", "mask", "name", "sentence"):
        assert out[key] is sample[key]


def test_color_jitter_matches_pil_enhance_chain():
    # smooth mid-range image: no clipping between PIL's steps, so the fused matrix is exact
    # up to rounding
    yy, xx = np.mgrid[0:40, 0:50]
    img = np.stack([80 + xx, 90 + yy, 120 + (xx + yy) // 2], axis=2).astype(np.uint8)
    b, c, s, k = 1.1, 0.8, 1.3, 1.8
    pil = Image.fromarray(img)
    pil = ImageEnhance.Brightness(pil).enhance(b)
    pil = ImageEnhance.Contrast(pil).enhance(c)
    pil = ImageEnhance.Color(pil).enhance(s)
    pil = ImageEnhance.Sharpness(pil).enhance(k)
    jitter = T.ColorJitter(brightness=(b, b), contrast=(c, c), saturation=(s, s), sharpness=(k, k))
    ours = jitter({"image": img}, rng=0)["image"]
    diff = ours.astype(int) - np.asarray(pil).astype(int)
    # PIL truncates to uint8 after each of its four steps (about -0.5 each); we round once
    assert np.abs(diff).max() <= 4 and 0 <= diff.mean() <= 2


def test_color_jitter_step_grid():
    t = T.ColorJitter(brightness=(0.5, 1.5), step=0.1)
    gen = np.random.default_rng(0)
    draws = {round(t._draw(gen, (0.5, 1.5)), 6) for _ in range(400)}
    assert draws == {round(0.5 + 0.1 * i, 6) for i in range(11)}


def test_aux_noise_only_on_valid_aux():
    sample = textured_sample()
    out = T.AuxNoise(std=0.1)(sample, rng=0)
    valid = sample["aux_valid"]
    np.testing.assert_array_equal(out["aux"][~valid], sample["aux"][~valid])
    assert not np.array_equal(out["aux"][valid], sample["aux"][valid])
    assert out["aux"].dtype == np.float32 and 0 <= out["aux"].min() and out["aux"].max() <= 1
    for key in ("image", "aux_valid", "mask"):
        assert out[key] is sample[key]
    no_valid = {"aux": sample["aux"]}
    assert not np.array_equal(T.AuxNoise(std=0.1)(no_valid, rng=0)["aux"], sample["aux"])


def test_mask_pepper_count_and_scope():
    sample = textured_sample(100, 100)
    out = T.MaskPepper(0.0015)(sample, rng=0)
    changed = int((out["mask"] != sample["mask"]).sum())
    assert 0 < changed <= 15 and out["mask"].dtype == np.bool_
    for key in ("image", "aux", "aux_valid"):
        assert out[key] is sample[key]
    assert T.MaskPepper(0.0015, p=0.0)(sample, rng=0)["mask"] is sample["mask"]
