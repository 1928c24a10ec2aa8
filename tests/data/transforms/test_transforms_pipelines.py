"""ToTensor, the ready-made sod pipeline, pickling, and properties on random sizes."""

from __future__ import annotations

import math
import pickle
import subprocess
import sys
import warnings

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from transforms_helpers import (
    check_sample_aligned,
    clip_sample,
    identical,
    max_magnification,
    sod_sample,
    textured_sample,
)

from cmseg.data import transforms as T


def test_to_tensor_shapes_and_normalisation():
    import torch

    sample = textured_sample(20, 30)
    sample["image"][0, 0] = (np.array(T.IMAGENET_MEAN) * 255).round().astype(np.uint8)
    out = T.ToTensor()(sample, rng=0)
    assert out["image"].shape == (3, 20, 30) and out["image"].dtype == torch.float32
    assert out["image"][:, 0, 0].abs().max() < 0.01
    expected = (sample["image"] / 255.0 - np.array(T.IMAGENET_MEAN)) / np.array(T.IMAGENET_STD)
    np.testing.assert_allclose(out["image"].numpy(), expected.transpose(2, 0, 1), atol=1e-5)
    plain = T.ToTensor(normalize=False)(sample, rng=0)["image"].numpy()
    np.testing.assert_allclose(plain, sample["image"].transpose(2, 0, 1) / 255.0, atol=1e-6)
    assert out["aux"].shape == (1, 20, 30) and out["aux"].dtype == torch.float32
    assert out["aux_valid"].shape == (1, 20, 30) and out["aux_valid"].dtype == torch.bool
    assert out["mask"].shape == (1, 20, 30) and out["mask"].dtype == torch.float32
    assert set(out["mask"].unique().tolist()) <= {0.0, 1.0}
    assert out["name"] == "t"
    clip = T.ToTensor()(clip_sample(3, 8, 10), rng=0)
    assert clip["frames"].shape == (3, 3, 8, 10) and clip["masks"].shape == (3, 1, 8, 10)
    frozen = textured_sample(6, 7)
    for value in frozen.values():
        if isinstance(value, np.ndarray):
            value.flags.writeable = False  # as np.asarray(PIL image) returns
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        T.ToTensor()(frozen, rng=0)
    labels = T.ToTensor()({"mask": np.zeros((4, 5), np.uint8)}, rng=0)["mask"]
    assert labels.dtype == torch.int64 and labels.shape == (4, 5)


def test_sod_train_transforms_output():
    import torch

    pipeline = T.sod_train_transforms(64)
    out = pipeline(textured_sample(70, 90), rng=0)
    assert out["image"].shape == (3, 64, 64) and out["mask"].shape == (1, 64, 64)
    assert out["aux"].shape == (1, 64, 64) and out["image"].dtype == torch.float32
    names = [type(t).__name__ for t in pipeline.transforms]
    assert names == [
        "HorizontalFlip",
        "RandomCenterCrop",
        "RandomRotation",
        "Resize",
        "ColorJitter",
        "MaskPepper",
        "ToTensor",
    ]


def test_pipelines_pickle():
    # DataLoader workers started with "spawn" receive the dataset (and its transform) pickled
    pipeline = T.sod_train_transforms(32)
    clone = pickle.loads(pickle.dumps(pipeline))
    sample = textured_sample(40, 50)
    a, b = pipeline(sample, rng=5), clone(sample, rng=5)
    assert all(np.array_equal(a[k], b[k]) for k in ("image", "aux", "aux_valid", "mask"))


def test_import_does_not_load_torch():
    code = "import sys, cmseg.data.transforms; print('torch' in sys.modules)"
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert res.stdout.strip() == "False"


def test_inputs_are_not_modified():
    sample = {**textured_sample(), "sentence": "left"}
    saved = {k: v.copy() if isinstance(v, np.ndarray) else v for k, v in sample.items()}
    pipeline = T.sod_train_transforms(48, aux_noise=0.1, to_tensor=False)
    for seed in range(5):
        pipeline(sample, rng=seed)
    assert identical(sample, saved)


# ---------------------------------------------------------------------------------------------
# Properties on random sizes


@st.composite
def geometric_pipelines(draw):
    steps = []
    if draw(st.booleans()):
        steps.append(T.HorizontalFlip(p=draw(st.sampled_from([0.0, 0.5, 1.0]))))
    crop = draw(st.sampled_from(["none", "scale", "center"]))
    if crop == "scale":
        lo = draw(st.floats(0.1, 1.0))
        steps.append(T.RandomScaleCrop(scale=(lo, 1.0)))
    elif crop == "center":
        steps.append(T.RandomCenterCrop(draw(st.integers(1, 30))))
    if draw(st.booleans()):
        steps.append(T.RandomRotation(draw(st.floats(0, 45)), p=draw(st.sampled_from([0.5, 1.0]))))
    if draw(st.booleans()):
        steps.append(T.Resize((draw(st.integers(4, 90)), draw(st.integers(4, 90)))))
    return T.Compose(steps)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    h=st.integers(2, 80),
    w=st.integers(2, 80),
    seed=st.integers(0, 2**32 - 1),
    pipeline=geometric_pipelines(),
)
def test_property_geometry_aligned_deterministic(h, w, seed, pipeline):
    sample = sod_sample(h, w, seed % 1000)
    out = pipeline(sample, rng=seed)
    again = pipeline(sample, rng=seed)
    assert identical(out, again)
    hw = out["mask"].shape
    assert out["image"].shape == (*hw, 3) and out["aux"].shape == hw
    assert out["aux_valid"].shape == hw and out["aux_valid"].dtype == np.bool_
    assert min(hw) >= 1
    # a bilinear upscale rounds corners over about one *input* pixel: allow that many
    magnification = min(max_magnification(pipeline, h, w, seed), max(hw))
    radius = max(1, math.ceil(magnification - 1e-6))
    check_sample_aligned(out, radius)


@settings(max_examples=40, deadline=None)
@given(
    h=st.integers(3, 60),
    w=st.integers(3, 60),
    t=st.integers(1, 4),
    seed=st.integers(0, 2**32 - 1),
)
def test_property_full_recipe_on_clips(h, w, t, seed):
    rng = np.random.default_rng(seed)
    clip = {
        "frames": rng.integers(0, 256, (t, h, w, 3), dtype=np.uint8),
        "aux": rng.random((t, h, w), dtype=np.float32),
        "aux_valid": rng.random((t, h, w)) > 0.3,
        "masks": rng.random((t, h, w)) > 0.5,
    }
    pipeline = T.sod_train_transforms(24, aux_noise=0.05, to_tensor=False)
    out = pipeline(clip, rng=seed)
    assert out["frames"].shape == (t, 24, 24, 3) and out["frames"].dtype == np.uint8
    assert out["masks"].shape == (t, 24, 24) and out["masks"].dtype == np.bool_
    assert out["aux"].dtype == np.float32 and 0 <= out["aux"].min() and out["aux"].max() <= 1
    assert identical(out, pipeline(clip, rng=seed))
