"""Drawing primitives shared by the synthetic generators (DESIGN §7).

Everything here is plain numpy/OpenCV on ``uint8`` / ``float32`` arrays and is vectorised over
pixels; one 256x256 scene costs a few milliseconds.

* **Shapes** (:data:`SHAPES`): twelve classes drawn as filled polygons at any centre, radius and
  rotation; ``crescent`` and ``ring`` are differences of two discs. :func:`shape_mask` rasterises
  with 1/16-pixel vertex precision (OpenCV ``shift=4``); :func:`shape_polygon` gives the outline
  of the simple (hole-free) shapes, used where a dataset stores polygons (RefCOCO).
* **Textures**: value noise (octaves of a random grid upsampled bicubically), stripes, checker
  and dots, all ``float32`` in ``[0, 1]``; :func:`colourise` maps a texture between two colours.
* **Colours** (:data:`COLOURS`): named RGB colours, the words the sentence grammars use.
* **Scenes**: :func:`background` draws a cluttered textured background.
* **Writing** (:mod:`.files`, names re-exported here): atomic file writes and fast JPEG/PNG
  encoding; **processes** (:mod:`.processes`, also re-exported): :func:`parallel_map` spreads
  independent work over worker processes.
* **Randomness**: :func:`item_rng` gives every item (scene, group, image, clip) its own generator
  seeded by ``(seed, task, index)``, so the output does not depend on the order or the number
  of worker processes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import cache, lru_cache

import cv2
import numpy as np

from cmseg.data.synthetic.files import (
    encode_jpeg,
    encode_png,
    voc_palette,
    write_bytes,
    write_jpeg,
    write_png_fast,
)
from cmseg.data.synthetic.processes import default_workers, parallel_map

__all__ = [
    "SHAPES",
    "POLYGON_SHAPES",
    "COLOURS",
    "TASK_CODES",
    "item_rng",
    "shape_polygon",
    "shape_mask",
    "value_noise",
    "stripes",
    "checker",
    "dots",
    "random_texture",
    "colourise",
    "random_colour",
    "named_colour",
    "background",
    "paste",
    "sensor_noise",
    "draw_shape",
    "place_discs",
    "encode_jpeg",
    "encode_png",
    "write_bytes",
    "write_jpeg",
    "write_png_fast",
    "parallel_map",
    "default_workers",
    "mask_bbox",
    "unit_area",
    "voc_palette",
]

#: Shape classes, in the order that fixes their category ids (``id = index + 1``) everywhere.
SHAPES: tuple[str, ...] = (
    "circle",
    "square",
    "triangle",
    "star",
    "hexagon",
    "diamond",
    "cross",
    "heart",
    "pentagon",
    "arrow",
    "crescent",
    "ring",
)

#: Shapes whose outline is one simple polygon (no hole, no subtraction).
POLYGON_SHAPES: tuple[str, ...] = SHAPES[:10]

#: Named colours (RGB) used by the sentence grammars; distinct in hue or lightness.
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (215, 35, 35),
    "green": (40, 165, 55),
    "blue": (35, 75, 215),
    "yellow": (240, 215, 35),
    "orange": (245, 135, 20),
    "purple": (135, 50, 185),
    "cyan": (30, 200, 215),
    "pink": (245, 120, 185),
    "white": (240, 240, 240),
    "black": (25, 25, 25),
}

#: Stable small integers mixed into the seed so that tasks never share random streams.
TASK_CODES: dict[str, int] = {"sod": 1, "coseg": 2, "ris": 3, "rvos": 4, "fsrvos": 5, "corrupt": 6}


def item_rng(seed: int, task: str, *index: int) -> np.random.Generator:
    """The random generator of one item: a function of ``(seed, task, index...)`` only."""
    return np.random.default_rng([int(seed), TASK_CODES[task], *[int(i) for i in index]])


# --------------------------------------------------------------------------------------------
# Shapes


def _regular(k: int, start: float = -math.pi / 2, radius: float = 1.0) -> np.ndarray:
    t = start + np.arange(k) * (2 * math.pi / k)
    return np.stack([np.cos(t), np.sin(t)], axis=1) * radius


def _star(points: int = 5, inner: float = 0.45) -> np.ndarray:
    t = -math.pi / 2 + np.arange(2 * points) * (math.pi / points)
    r = np.where(np.arange(2 * points) % 2 == 0, 1.0, inner)
    return np.stack([np.cos(t) * r, np.sin(t) * r], axis=1)


def _heart(k: int = 40) -> np.ndarray:
    t = np.linspace(0, 2 * math.pi, k, endpoint=False)
    x = 16 * np.sin(t) ** 3
    y = -(13 * np.cos(t) - 5 * np.cos(2 * t) - 2 * np.cos(3 * t) - np.cos(4 * t))
    return np.stack([x, y], axis=1)


_CROSS = np.array(
    [
        (-0.33, -1), (0.33, -1), (0.33, -0.33), (1, -0.33), (1, 0.33), (0.33, 0.33),
        (0.33, 1), (-0.33, 1), (-0.33, 0.33), (-1, 0.33), (-1, -0.33), (-0.33, -0.33),
    ],
    dtype=np.float64,
)  # fmt: skip
_ARROW = np.array(
    [(-1, -0.25), (0.15, -0.25), (0.15, -0.65), (1, 0), (0.15, 0.65), (0.15, 0.25), (-1, 0.25)],
    dtype=np.float64,
)


def _fit_unit(poly: np.ndarray, scale: float = 1.0) -> np.ndarray:
    """Centre a polygon on its box centre and scale it so its farthest vertex is at ``scale``:
    every shape then lies inside the disc its radius names (placement relies on it)."""
    poly = poly - (poly.min(axis=0) + poly.max(axis=0)) / 2
    return poly * (scale / float(np.hypot(poly[:, 0], poly[:, 1]).max()))


_UNIT: dict[str, np.ndarray] = {
    "circle": _regular(48),
    "square": _regular(4, start=-math.pi / 4) * 0.92,
    "triangle": _regular(3),
    "star": _star(),
    "hexagon": _regular(6),
    "diamond": np.array([(0, -1), (0.62, 0), (0, 1), (-0.62, 0)], dtype=np.float64),
    "cross": _fit_unit(_CROSS, 0.95),
    "heart": _fit_unit(_heart()),
    "pentagon": _regular(5),
    "arrow": _fit_unit(_ARROW),
}
# (outer unit polygon, subtracted unit polygon) of the two shapes that are not one polygon.
_SUBTRACTED: dict[str, tuple[np.ndarray, np.ndarray]] = {
    "crescent": (_regular(48), _regular(48) * 0.82 + np.array([0.42, -0.18])),
    "ring": (_regular(48), _regular(48) * 0.55),
}


def _place(unit: np.ndarray, cx: float, cy: float, r: float, angle: float) -> np.ndarray:
    c, s = math.cos(angle), math.sin(angle)
    rot = unit @ np.array([[c, s], [-s, c]])
    return rot * r + np.array([cx, cy])


def shape_polygon(shape: str, cx: float, cy: float, r: float, angle: float = 0.0) -> np.ndarray:
    """Outline of a simple shape in pixel coordinates.

    Args:
        shape: one of :data:`POLYGON_SHAPES`.
        cx, cy: centre (x right, y down), pixels.
        r: radius of the circumscribed circle, pixels.
        angle: rotation in radians (counter-clockwise as seen on screen).

    Returns:
        ``float64`` ``(K, 2)`` array of ``(x, y)`` vertices.
    """
    if shape not in _UNIT:
        raise ValueError(f"shape {shape!r} is not a simple polygon (choose from {POLYGON_SHAPES})")
    return _place(_UNIT[shape], cx, cy, r, angle)


def _fill(canvas: np.ndarray, poly: np.ndarray, value: int) -> None:
    pts = np.round(poly * 16).astype(np.int32).reshape(1, -1, 2)
    cv2.fillPoly(canvas, pts, value, lineType=cv2.LINE_8, shift=4)


def shape_mask(
    shape: str, hw: tuple[int, int], cx: float, cy: float, r: float, angle: float = 0.0
) -> np.ndarray:
    """Rasterise one shape.

    Returns:
        ``bool`` ``(H, W)`` mask (clipped to the frame).
    """
    canvas = np.zeros(hw, dtype=np.uint8)
    if shape in _UNIT:
        _fill(canvas, _place(_UNIT[shape], cx, cy, r, angle), 1)
    elif shape in _SUBTRACTED:
        outer, inner = _SUBTRACTED[shape]
        _fill(canvas, _place(outer, cx, cy, r, angle), 1)
        _fill(canvas, _place(inner, cx, cy, r, angle), 0)
    else:
        raise ValueError(f"unknown shape {shape!r}; choose from {SHAPES}")
    return canvas.view(np.bool_)


@cache
def unit_area(shape: str) -> float:
    """Area of a shape of radius 1 (rasterised at radius 200), e.g. ``pi`` for the circle."""
    return float(shape_mask(shape, (420, 420), 210.0, 210.0, 200.0).sum()) / 200.0**2


def mask_bbox(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    """``(x0, y0, x1, y1)`` (exclusive ends) of a mask's foreground, or None when empty."""
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(mask.any(axis=0))
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


# --------------------------------------------------------------------------------------------
# Textures (float32 in [0, 1])


@lru_cache(maxsize=16)
def _grid(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    y.setflags(write=False)
    x.setflags(write=False)
    return y, x


def value_noise(
    rng: np.random.Generator, h: int, w: int, cell: float = 16.0, octaves: int = 2
) -> np.ndarray:
    """Smooth random noise: octaves of a random grid (cell ``cell`` px) upsampled bicubically."""
    out = np.zeros((h, w), dtype=np.float32)
    total = 0.0
    amp = 1.0
    for _ in range(max(1, octaves)):
        gh = max(2, int(math.ceil(h / cell)) + 1)
        gw = max(2, int(math.ceil(w / cell)) + 1)
        grid = rng.random((gh, gw), dtype=np.float32)
        out += amp * cv2.resize(grid, (w, h), interpolation=cv2.INTER_CUBIC)
        total += amp
        amp *= 0.5
        cell = max(2.0, cell / 2)
    out /= total
    lo, hi = float(out.min()), float(out.max())
    if hi > lo:
        out = (out - lo) * (1.0 / (hi - lo))
    return out


def _rotated(h: int, w: int, angle: float) -> np.ndarray:
    y, x = _grid(h, w)
    return x * math.cos(angle) + y * math.sin(angle)


def stripes(
    h: int, w: int, period: float, angle: float, phase: float = 0.0, hard: bool = False
) -> np.ndarray:
    """Parallel stripes of ``period`` px at ``angle`` radians."""
    u = _rotated(h, w, angle)
    t = 0.5 + 0.5 * np.sin(u * (2 * math.pi / period) + phase)
    return (t > 0.5).astype(np.float32) if hard else t.astype(np.float32)


def checker(h: int, w: int, period: float, angle: float) -> np.ndarray:
    """A checkerboard of ``period`` px squares rotated by ``angle``."""
    u = _rotated(h, w, angle)
    v = _rotated(h, w, angle + math.pi / 2)
    return ((np.floor(u / period) + np.floor(v / period)) % 2).astype(np.float32)


def dots(rng: np.random.Generator, h: int, w: int, period: float) -> np.ndarray:
    """Soft round dots on a square lattice of ``period`` px with a random offset."""
    ox, oy = rng.random(2) * period
    fx = ((np.arange(w, dtype=np.float32) + ox) % period) / period - 0.5
    fy = ((np.arange(h, dtype=np.float32) + oy) % period) / period - 0.5
    d = fy[:, None] ** 2 + fx[None, :] ** 2
    return np.clip(1.0 - d * 8.0, 0.0, 1.0).astype(np.float32)


TEXTURE_KINDS: tuple[str, ...] = ("noise", "stripes", "checker", "dots", "grain")


def random_texture(
    rng: np.random.Generator, h: int, w: int, scale: float, kind: str | None = None
) -> np.ndarray:
    """A texture of one random kind; ``scale`` (px) sets its feature size."""
    kind = kind or TEXTURE_KINDS[int(rng.integers(len(TEXTURE_KINDS)))]
    scale = max(2.0, float(scale))
    if kind == "noise":
        return value_noise(rng, h, w, cell=scale, octaves=2)
    if kind == "stripes":
        return stripes(
            h, w, period=scale, angle=float(rng.random() * math.pi),
            phase=float(rng.random() * 6.3), hard=bool(rng.random() < 0.5),
        )  # fmt: skip
    if kind == "checker":
        return checker(h, w, period=scale / 2, angle=float(rng.random() * math.pi))
    if kind == "dots":
        return dots(rng, h, w, period=scale)
    if kind == "grain":
        return value_noise(rng, h, w, cell=max(2.0, scale / 4), octaves=1)
    raise ValueError(f"unknown texture kind {kind!r}")


def colourise(t: np.ndarray, c1: Sequence[float], c2: Sequence[float]) -> np.ndarray:
    """Map a ``[0, 1]`` texture linearly from colour ``c1`` to ``c2``: ``uint8`` ``(H, W, 3)``.

    The texture is quantised to 256 levels and mapped through a lookup table (one gather
    instead of float arithmetic on three channels).
    """
    a = np.asarray(c1, dtype=np.float32)
    b = np.asarray(c2, dtype=np.float32)
    lut = np.clip(a + np.linspace(0.0, 1.0, 256, dtype=np.float32)[:, None] * (b - a), 0, 255)
    idx = np.clip(t * np.float32(255.0) + np.float32(0.5), 0, 255).astype(np.uint8)
    return np.take(lut.astype(np.uint8), idx, axis=0)


def random_colour(
    rng: np.random.Generator,
    sat: tuple[float, float] = (0.2, 1.0),
    val: tuple[float, float] = (0.25, 1.0),
) -> np.ndarray:
    """A random RGB colour (``float32`` 0..255) with saturation and value drawn in ranges."""
    hue = rng.random() * 180.0
    s = rng.uniform(*sat) * 255.0
    v = rng.uniform(*val) * 255.0
    hsv = np.array([[[hue, s, v]]], dtype=np.float32)
    hsv = np.clip(hsv, 0, [179, 255, 255]).astype(np.uint8)
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0, 0].astype(np.float32)


def named_colour(rng: np.random.Generator, name: str, jitter: float = 12.0) -> np.ndarray:
    """The RGB of a named colour with a small random jitter, ``float32``."""
    base = np.asarray(COLOURS[name], dtype=np.float32)
    return np.clip(base + rng.uniform(-jitter, jitter, 3).astype(np.float32), 0, 255)


def saturation(rgb: Sequence[float]) -> float:
    """HSV saturation of one RGB colour, 0..1."""
    c = np.asarray(rgb, dtype=np.float32)
    hi = float(c.max())
    return 0.0 if hi <= 0 else (hi - float(c.min())) / hi


# --------------------------------------------------------------------------------------------
# Scenes


def background(
    rng: np.random.Generator,
    h: int,
    w: int,
    clutter: int = 5,
    sat: tuple[float, float] = (0.1, 0.9),
    val: tuple[float, float] = (0.25, 0.95),
) -> np.ndarray:
    """A cluttered background: a two-colour base texture plus ``clutter`` textured patches
    (ellipses and rotated rectangles, which are not shape classes). ``uint8`` ``(H, W, 3)``."""
    side = min(h, w)
    base = random_texture(rng, h, w, scale=side * rng.uniform(0.05, 0.3))
    img = colourise(base, random_colour(rng, sat, val), random_colour(rng, sat, val))
    for _ in range(clutter):
        cx, cy = rng.uniform(0, w), rng.uniform(0, h)
        ax = side * rng.uniform(0.08, 0.35)
        ay = side * rng.uniform(0.05, 0.25)
        ang = float(rng.uniform(0, 180))
        ellipse = bool(rng.random() < 0.5)
        # Draw in a canvas the size of the patch's box only (clipped to the frame).
        box = cv2.boxPoints(((cx, cy), (2 * ax, 2 * ay), ang))
        x0, y0 = max(0, int(box[:, 0].min()) - 1), max(0, int(box[:, 1].min()) - 1)
        x1, y1 = min(w, int(box[:, 0].max()) + 2), min(h, int(box[:, 1].max()) + 2)
        if x1 <= x0 or y1 <= y0:
            continue
        local = np.zeros((y1 - y0, x1 - x0), dtype=np.uint8)
        if ellipse:
            cv2.ellipse(local, ((cx - x0, cy - y0), (2 * ax, 2 * ay), ang), 1, -1)
        else:
            pts = np.round(box - np.array([x0, y0], dtype=np.float32)).astype(np.int32)
            cv2.fillPoly(local, [pts], 1)
        tex = random_texture(rng, y1 - y0, x1 - x0, scale=side * rng.uniform(0.03, 0.15))
        rgb = colourise(tex, random_colour(rng, sat, val), random_colour(rng, sat, val))
        paste(img, rgb, local.view(np.bool_), (x0, y0))
    return img


def draw_shape(
    img: np.ndarray,
    rng: np.random.Generator,
    shape: str,
    cx: float,
    cy: float,
    r: float,
    angle: float,
    c1: Sequence[float],
    c2: Sequence[float],
    *,
    texture: str | None = None,
    texture_scale: float | None = None,
    labels: np.ndarray | None = None,
    label: int = 0,
) -> np.ndarray:
    """Draw one textured shape into ``img`` (in place) and return its full ``bool`` mask.

    The texture (``texture`` kind or a random one, feature size ``texture_scale`` px, default
    ``r / 2``) runs from colour ``c1`` to ``c2`` and is computed over the shape's bounding box
    only. With ``labels``, the shape's pixels are set to ``label`` there (later shapes
    overwrite earlier ones, which gives visible masks under occlusion).
    """
    h, w = img.shape[:2]
    mask = shape_mask(shape, (h, w), cx, cy, r, angle)
    bbox = mask_bbox(mask)
    if bbox is None:
        return mask
    x0, y0, x1, y1 = bbox
    m = mask[y0:y1, x0:x1]
    tex = random_texture(rng, y1 - y0, x1 - x0, scale=texture_scale or r / 2, kind=texture)
    paste(img, colourise(tex, c1, c2), m, (x0, y0))
    if labels is not None:
        labels[y0:y1, x0:x1][m] = label
    return mask


def place_discs(
    rng: np.random.Generator,
    radii: Sequence[float],
    size: int,
    gap: float = 0.0,
    tries: int = 200,
) -> np.ndarray | None:
    """Centres for discs of ``radii`` inside a ``size`` square, pairwise ``gap`` px apart.

    Greedy rejection sampling, largest disc first. Returns ``float64`` ``(K, 2)`` ``(x, y)``
    in the input order, or None when some disc found no room in ``tries`` attempts.
    """
    radii = np.asarray(radii, dtype=np.float64)
    centres = np.zeros((len(radii), 2))
    placed: list[int] = []
    for i in np.argsort(-radii, kind="stable"):
        r = radii[i]
        for _ in range(tries):
            c = rng.uniform(r, size - r, size=2)
            if all(np.hypot(*(c - centres[j])) >= r + radii[j] + gap for j in placed):
                centres[i] = c
                placed.append(int(i))
                break
        else:
            return None
    return centres


def paste(img: np.ndarray, patch: np.ndarray, mask: np.ndarray, at: tuple[int, int]) -> None:
    """Copy ``patch`` into ``img`` where ``mask`` is set; ``at`` = ``(x0, y0)`` of the patch."""
    x0, y0 = at
    h, w = mask.shape
    region = img[y0 : y0 + h, x0 : x0 + w]
    where = mask[..., None] if region.ndim == 3 else mask
    np.copyto(region, patch, where=where)


def sensor_noise(rng: np.random.Generator, rgb: np.ndarray, amplitude: int = 5) -> np.ndarray:
    """Add uniform integer noise in ``[-amplitude, amplitude]`` to a ``uint8`` image (a cheap
    stand-in for camera noise; integer draws are several times faster than Gaussian floats)."""
    noise = rng.integers(-amplitude, amplitude + 1, size=rgb.shape, dtype=np.int16)
    return np.clip(rgb.astype(np.int16) + noise, 0, 255).astype(np.uint8)
