"""Samples and alignment checks shared by the tests of :mod:`cmseg.data.transforms`."""

from __future__ import annotations

import cv2
import numpy as np


def shape_mask(h: int, w: int, seed: int = 0) -> np.ndarray:
    """A rectangle and a disk, away from the borders when the image allows."""
    rng = np.random.default_rng(seed)
    m = np.zeros((h, w), np.uint8)
    y0, x0 = int(rng.integers(0, max(1, h // 3))), int(rng.integers(0, max(1, w // 3)))
    y1, x1 = y0 + max(1, h // 3), x0 + max(1, w // 2)
    m[y0:y1, x0:x1] = 1
    cy, cx = int(rng.integers(0, h)), int(rng.integers(0, w))
    cv2.circle(m, (cx, cy), max(1, min(h, w) // 5), 1, -1)
    return m.astype(bool)


def sod_sample(h: int = 96, w: int = 128, seed: int = 0) -> dict:
    """Image, aux and mask all drawn from one mask, so alignment is checkable."""
    mask = shape_mask(h, w, seed)
    grey = mask.astype(np.uint8) * 255
    return {
        "image": np.repeat(grey[..., None], 3, axis=2),
        "aux": mask.astype(np.float32),
        "aux_valid": np.ones((h, w), bool),
        "mask": mask,
        "name": "s0",
        "set": "train",
    }


def textured_sample(h: int = 64, w: int = 80, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    return {
        "image": rng.integers(0, 256, (h, w, 3), dtype=np.uint8),
        "aux": rng.random((h, w), dtype=np.float32),
        "aux_valid": rng.random((h, w)) > 0.2,
        "mask": shape_mask(h, w, seed),
        "name": "t",
    }


def near_edge(a: np.ndarray, radius: int = 1) -> np.ndarray:
    """Pixels whose (2r+1)x(2r+1) neighbourhood in ``a`` is not constant."""
    u = a.astype(np.uint8)
    k = np.ones((2 * radius + 1, 2 * radius + 1), np.uint8)
    dil = cv2.dilate(u, k, borderType=cv2.BORDER_REPLICATE)
    ero = cv2.erode(u, k, borderType=cv2.BORDER_REPLICATE)
    return dil != ero


def assert_aligned(mask: np.ndarray, other: np.ndarray, radius: int = 1) -> None:
    """``other`` (a thresholded warped image) agrees with ``mask`` except within ``radius``
    px (1 unless the image is magnified a lot) of an edge of either."""
    assert mask.shape == other.shape
    bad = (mask != other) & ~near_edge(mask, radius) & ~near_edge(other, radius)
    assert not bad.any(), f"{int(bad.sum())} misaligned pixels away from any edge"


def check_sample_aligned(out: dict, radius: int = 1) -> None:
    mask = out["mask"]
    assert mask.dtype == np.bool_
    for c in range(3):
        assert_aligned(mask, out["image"][..., c] > 127, radius)
    assert_aligned(mask, out["aux"] > 0.5, radius)


def max_magnification(pipeline, h: int, w: int, seed: int) -> float:
    """How many output pixels one input pixel spans at most, measured by warping coordinate
    ramps with the same seed (geometric parameters do not depend on the pixels)."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    out = pipeline({"aux": xx, "aux_y": yy}, rng=seed)
    x, y = out["aux"], out["aux_y"]
    r, c = (x.shape[0] - 1) // 2, (x.shape[1] - 1) // 2
    steps = [
        (x[r + dr, c + dc] - x[r, c], y[r + dr, c + dc] - y[r, c])
        for dr, dc in ((0, 1), (1, 0))
        if r + dr < x.shape[0] and c + dc < x.shape[1]
    ]
    if not steps:
        return 1.0
    smallest = np.linalg.svd(np.array(steps), compute_uv=False).min()
    return float(1.0 / max(smallest, 1e-6))


def identical(a: dict, b: dict) -> bool:
    if a.keys() != b.keys():
        return False
    for k in a:
        x, y = a[k], b[k]
        if isinstance(x, np.ndarray):
            if not (isinstance(y, np.ndarray) and x.dtype == y.dtype and np.array_equal(x, y)):
                return False
        elif isinstance(x, list):
            if len(x) != len(y) or not all(np.array_equal(p, q) for p, q in zip(x, y, strict=True)):
                return False
        elif x != y:
            return False
    return True


def clip_sample(t: int = 4, h: int = 48, w: int = 64) -> dict:
    masks = np.stack([shape_mask(h, w, seed=i) for i in range(t)])
    frames = np.repeat(masks[..., None].astype(np.uint8) * 255, 3, axis=3)
    return {"frames": frames, "masks": masks, "sentence": "the left square moving up"}
