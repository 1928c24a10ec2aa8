"""Geometric transforms: alignment of every array, clips and groups, fused warps."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from PIL import Image
from transforms_helpers import (
    assert_aligned,
    check_sample_aligned,
    clip_sample,
    shape_mask,
    sod_sample,
    textured_sample,
)

from cmseg.data import transforms as T

GEOMETRIC = {
    "flip": T.HorizontalFlip(p=1.0),
    "scale_crop": T.RandomScaleCrop(scale=(0.3, 0.9)),
    "center_crop": T.RandomCenterCrop(30),
    "rotation": T.RandomRotation(25, p=1.0),
    "rotation_int": T.RandomRotation((-15, 14), p=1.0, integer=True),
    "resize_up": T.Resize((150, 170)),
    "resize_down": T.Resize((40, 50)),
    "resize_far_down": T.Resize((17, 23)),  # > 2x shrink: area prefilter path
    "fused": T.Compose(
        [
            T.HorizontalFlip(),
            T.RandomScaleCrop(),
            T.RandomRotation(20, p=1.0),
            T.Resize(64),
        ]
    ),
    "sod_recipe_geometry": T.Compose(T.sod_train_transforms(72).transforms[:4]),
}


# ---------------------------------------------------------------------------------------------
# Alignment


@pytest.mark.parametrize("name", sorted(GEOMETRIC))
@pytest.mark.parametrize("seed", range(4))
def test_geometric_transforms_keep_alignment(name, seed):
    sample = sod_sample(96, 128, seed)
    out = GEOMETRIC[name](sample, rng=seed)
    shapes = {out[k].shape[:2] for k in ("image", "aux", "aux_valid", "mask")}
    assert len(shapes) == 1
    assert out["image"].dtype == np.uint8 and out["aux"].dtype == np.float32
    assert out["aux_valid"].dtype == np.bool_
    check_sample_aligned(out)
    assert out["name"] == "s0" and out["set"] == "train"


def test_rotation_corners_are_invalid_black_and_background():
    h, w = 60, 80
    sample = {
        "image": np.full((h, w, 3), 200, np.uint8),
        "aux": np.full((h, w), 0.7, np.float32),
        "aux_valid": np.ones((h, w), bool),
        "mask": np.ones((h, w), bool),
    }
    out = T.RandomRotation((30, 30), p=1.0)(sample, rng=0)
    corner = (slice(0, 3), slice(0, 3))
    assert not out["aux_valid"][corner].any() and not out["mask"][corner].any()
    assert (out["image"][corner] == 0).all() and (out["aux"][corner] == 0).all()
    assert out["aux_valid"][h // 2, w // 2] and out["mask"][h // 2, w // 2]
    np.testing.assert_array_equal(out["aux_valid"], out["mask"])
    # an all-valid map is not warped but taken from the coverage: same result, also for stacks
    clip = {"aux_valid": np.ones((3, h, w), bool), "masks": np.ones((3, h, w), bool)}
    pipeline = T.Compose([T.RandomScaleCrop(), T.RandomRotation(30, p=1.0), T.Resize(40)])
    for seed in range(3):
        out = pipeline(clip, rng=seed)
        assert out["aux_valid"].shape == (3, 40, 40)
        np.testing.assert_array_equal(out["aux_valid"], out["masks"])


def test_rotation_direction_matches_pil():
    mask = shape_mask(81, 101, seed=5)
    ours = T.RandomRotation((20, 20), p=1.0)({"mask": mask}, rng=0)["mask"]
    pil = np.asarray(Image.fromarray(mask.astype(np.uint8) * 255).rotate(20, Image.NEAREST)) > 0
    iou = (ours & pil).sum() / (ours | pil).sum()
    assert iou > 0.97


def test_resize_matches_cv2_resize_linear():
    img = textured_sample(31, 47)["image"]
    ours = T.Resize((62, 94))({"image": img}, rng=0)["image"]
    ref = cv2.resize(img, (94, 62), interpolation=cv2.INTER_LINEAR)
    assert np.abs(ours.astype(int) - ref.astype(int)).max() <= 1


@pytest.mark.parametrize("size", [(60, 70), (20, 25), (13, 17)])
def test_resize_fast_path_agrees_with_general_warp(size):
    # Without rotation the fused map runs as crop + cv2.resize; a negligible rotation (last,
    # so that the other steps draw the same parameters) forces the cv2.warpAffine path.
    h, w = 48, 64
    sample = {**textured_sample(h, w), "labels_mask": np.arange(h * w).reshape(h, w)}
    steps = [T.HorizontalFlip(p=1.0), T.RandomScaleCrop(scale=(0.6, 0.9)), T.Resize(size)]
    fast = T.Compose(steps)(sample, rng=1)
    slow = T.Compose([*steps, T.RandomRotation((1e-7, 1e-7), p=1.0)])(sample, rng=1)
    # nearest: the same source pixel, up to ties (exactly half-way) broken the other way
    fy, fx = np.divmod(fast["labels_mask"], w)
    sy, sx = np.divmod(slow["labels_mask"], w)
    assert np.abs(fy - sy).max() <= 1 and np.abs(fx - sx).max() <= 1
    assert (fast["labels_mask"] == slow["labels_mask"]).mean() > 0.8
    assert (fast["mask"] == slow["mask"]).mean() > 0.9
    # (at the border, resizing the crop replicates its edge where the warp reads the pixels
    # just outside the crop window: compare the interior)
    diff = np.abs(fast["image"].astype(int) - slow["image"].astype(int))[1:-1, 1:-1]
    if min(size) >= 24:  # same bilinear weights, up to OpenCV's 1/32 px warp positions
        assert diff.max() <= 8 and diff.mean() <= 2
    else:  # > 2x shrink: area average vs area prefilter + bilinear
        assert diff.mean() <= 25


def test_center_crop_is_centred_and_in_range():
    h, w = 70, 90
    img = np.arange(h * w, dtype=np.int32).reshape(h, w)
    for seed in range(30):
        out = T.RandomCenterCrop(30)({"mask": img}, rng=seed)["mask"]
        oh, ow = out.shape
        assert h - 30 <= oh <= h - 1 and w - 30 <= ow <= w - 1
        top, left = (h - oh) // 2, (w - ow) // 2
        np.testing.assert_array_equal(out, img[top : top + oh, left : left + ow])


def test_scale_crop_window_inside_and_exact():
    h, w = 50, 70
    img = np.arange(h * w, dtype=np.int32).reshape(h, w)
    t = T.RandomScaleCrop(scale=(0.2, 0.8), ratio=(0.5, 2.0))
    for seed in range(30):
        out = t({"mask": img}, rng=seed)["mask"]
        oh, ow = out.shape
        y0, x0 = divmod(int(out[0, 0]), w)
        np.testing.assert_array_equal(out, img[y0 : y0 + oh, x0 : x0 + ow])
        assert 0.2 * h * w * 0.8 <= oh * ow <= 0.8 * h * w * 1.25


def test_integer_label_masks_keep_their_labels():
    labels = np.zeros((40, 50), np.int64)
    labels[5:20, 5:25], labels[22:35, 20:45] = 3, 7
    out = T.Compose([T.RandomRotation(20, p=1.0), T.Resize(33)])({"mask": labels}, rng=1)["mask"]
    assert out.dtype == np.int64 and set(np.unique(out)) <= {0, 3, 7}


def test_fused_and_sequential_geometry_agree():
    steps = [T.HorizontalFlip(), T.RandomScaleCrop(), T.RandomRotation(20, p=1.0), T.Resize(64)]
    sample = sod_sample(96, 128, 2)
    for seed in range(5):
        fused = T.Compose(steps)(sample, rng=seed)
        gen = np.random.default_rng(seed)
        seq = sample
        for step in steps:
            seq = step(seq, rng=gen)
        assert fused["mask"].shape == seq["mask"].shape == (64, 64)
        assert_aligned(fused["mask"], seq["mask"])


def test_compose_accepts_plain_callables():
    def add_flag(sample):
        return {**sample, "flag": True}

    def noisy(sample, rng):
        return {**sample, "draw": float(rng.random())}

    pipeline = T.Compose([T.HorizontalFlip(p=1.0), add_flag, noisy, T.Resize(8)])
    out = pipeline(textured_sample(16, 16), rng=3)
    assert out["flag"] and out["image"].shape == (8, 8, 3)
    assert out["draw"] == pipeline(textured_sample(16, 16), rng=3)["draw"]


def test_size_mismatch_is_an_error():
    sample = sod_sample(40, 50)
    sample["mask"] = np.zeros((40, 51), bool)
    with pytest.raises(ValueError, match="differ in size"):
        T.HorizontalFlip(p=1.0)(sample, rng=0)


# ---------------------------------------------------------------------------------------------
# Clips and groups


CLIP_PIPELINE = T.Compose(
    [
        T.HorizontalFlip(),
        T.RandomScaleCrop(),
        T.RandomRotation(15, p=1.0),
        T.Resize((40, 56)),
        T.ColorJitter(),
    ]
)


@pytest.mark.parametrize("seed", range(6))
def test_clip_frames_share_one_transform(seed):
    clip = clip_sample()
    out = CLIP_PIPELINE(clip, rng=seed)
    assert out["frames"].shape == (4, 40, 56, 3) and out["masks"].shape == (4, 40, 56)
    for i in range(len(clip["frames"])):
        single = {
            "image": clip["frames"][i],
            "mask": clip["masks"][i],
            "sentence": clip["sentence"],
        }
        ref = CLIP_PIPELINE(single, rng=seed)
        np.testing.assert_array_equal(out["frames"][i], ref["image"])
        np.testing.assert_array_equal(out["masks"][i], ref["mask"])
        assert out["sentence"] == ref["sentence"]
    geometric = T.Compose(CLIP_PIPELINE.transforms[:4])(clip, rng=seed)
    for frame, mask in zip(geometric["frames"], geometric["masks"], strict=True):
        assert_aligned(mask, frame[..., 0] > 127)


def test_coseg_group_of_different_sizes():
    sizes = [(40, 60), (64, 48), (33, 33)]
    masks = [shape_mask(h, w, i) for i, (h, w) in enumerate(sizes)]
    images = [np.repeat(m[..., None].astype(np.uint8) * 255, 3, axis=2) for m in masks]
    group = {"images": images, "masks": masks, "class": "cat"}
    flipped = T.HorizontalFlip(p=1.0)(group, rng=0)
    for img, m, out_img, out_m in zip(
        images, masks, flipped["images"], flipped["masks"], strict=True
    ):
        np.testing.assert_array_equal(out_img, img[:, ::-1])
        np.testing.assert_array_equal(out_m, m[:, ::-1])
    out = T.Compose([T.RandomRotation(20, p=1.0), T.Resize(32)])(group, rng=4)
    for img, m in zip(out["images"], out["masks"], strict=True):
        assert img.shape == (32, 32, 3) and m.shape == (32, 32)
        assert_aligned(m, img[..., 0] > 127)
    bad = {"images": images, "masks": masks[:2]}
    with pytest.raises(ValueError, match="length"):
        T.HorizontalFlip()(bad, rng=0)


def test_xmsnet_rotation_parameters():
    t = T.RandomRotation((-15, 14), p=0.2, integer=True)
    gen = np.random.default_rng(0)
    draws = [t.sample(gen) for _ in range(4000)]
    angles = [a for a in draws if a is not None]
    assert 0.17 < len(angles) / len(draws) < 0.23
    assert set(angles) <= set(range(-15, 15)) - {0} and len(set(angles)) == 29
