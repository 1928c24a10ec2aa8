"""Synthetic RGB-D / RGB-T salient (and camouflaged) object segmentation scenes.

Layout written (the SPNet / XMSNet folder layout, reference/xmsnet.md §3.3 and §4.1)::

    <out>/train/RGB/<name>.jpg      RGB, JPEG quality 92
    <out>/train/depth/<name>.png    depth, 8-bit grey PNG (``T/`` instead of ``depth/`` with
                                    modality="thermal", the VT5000 naming)
    <out>/train/GT/<name>.png       ground truth, 8-bit grey PNG with values 0 and 255
    <out>/test/...                  the same three folders
    <out>/cmseg_synth.json          what was generated (task, n, size, seed, options, counts)

Names are ``00000``, ``00001``, ... over the whole run (unique across sets, paired by stem);
the first ``round(n * (1 - test_fraction))`` scenes go to ``train``, the rest to ``test``.

What a scene is:

* a cluttered background: a two-colour texture plus 4-8 textured patches (ellipses,
  rectangles) of random, often saturated, colours;
* 3-6 textured objects drawn from the twelve shape classes; one of them is the **salient
  object**. It is drawn last (nearest, never occluded); it is never the largest object (by
  area) and never the most saturated one (by the saturation of its mean colour), so neither
  "biggest blob" nor "most colourful blob" finds it;
* the auxiliary map singles it out. **Depth** (bright = near, the disparity-like convention of
  the RGB-D SOD releases): a receding ground-plane ramp (0.05-0.45) with smooth noise; the
  distractors stand 0.06-0.2 above the ground behind them; the salient object floats at
  0.72-0.9; every object is a shallow dome; the map is rendered at a quarter of the RGB
  resolution (at least 64 px) and upsampled (soft edges, like a real depth sensor).
  **Thermal**: ambient 0.15-0.35 with smooth variation, distractors 0.35-0.55, the salient
  object 0.7-0.85 and hottest at its centre; the map is blurred (sigma = size / 100) like
  thermal optics;
* **camouflage** (share ``camouflage`` of the scenes): the salient object's texture is the
  background itself, taken from a shifted position and re-lit by x0.85-1.15, as in camouflaged
  object datasets; only a faint seam and the aux map reveal it.

Aux-map corruptions (all default off), applied in this order to the ``[0, 1]`` map:

* ``shift`` (px): RGB/aux misalignment, the map is translated by ``shift`` pixels in a random
  direction (border replicated);
* ``blur`` (px): Gaussian blur of that sigma;
* ``noise``: additive Gaussian noise of that sigma (in units of the full ``[0, 1]`` range);
* ``holes``: that fraction of the pixels, in smooth blobs, set to 0 (the "no measurement" code
  of depth sensors; read them with ``zero_is_invalid=True``);
* ``missing``: the probability that a scene's map is entirely 0 (a missing map is written as an
  all-zero PNG rather than left out, so that pairing by name stays complete).

:func:`write_corrupted_set` applies the same corruptions to a copy of an existing set (RGB and
GT copied byte for byte), which is how the demo shows robustness to bad aux maps.

:func:`rgb_blob_baseline` and :func:`aux_blob_baseline` are the two heuristics of the
difficulty check (docs/synthetic.md): the most salient colour blob, and the blob the aux map
singles out; :func:`difficulty` scores both with the S-measure.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from cmseg.data.synthetic import draw, files, processes

__all__ = [
    "Corruption",
    "make_scene",
    "corrupt_aux",
    "write_sod",
    "write_corrupted_set",
    "rgb_blob_baseline",
    "aux_blob_baseline",
    "difficulty",
    "AUX_DIRS",
]

#: Folder of the auxiliary map per modality (XMSNet reads ``depth/``; VT5000 ships ``T/``).
AUX_DIRS = {"depth": "depth", "thermal": "T"}
DEFAULT_N = 200


@dataclass(frozen=True)
class Corruption:
    """Aux-map corruptions (see the module docstring); all zero means a clean map."""

    noise: float = 0.0
    holes: float = 0.0
    blur: float = 0.0
    shift: float = 0.0
    missing: float = 0.0

    def __post_init__(self) -> None:
        for name in ("noise", "blur", "shift"):
            if not (getattr(self, name) >= 0 and math.isfinite(getattr(self, name))):
                raise ValueError(
                    f"{name} must be a finite number >= 0, got {getattr(self, name)!r}"
                )
        for name in ("holes", "missing"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(
                    f"{name} must be a fraction in [0, 1], got {getattr(self, name)!r}"
                )

    @property
    def active(self) -> bool:
        return any(v > 0 for v in asdict(self).values())


def corrupt_aux(aux: np.ndarray, rng: np.random.Generator, c: Corruption) -> np.ndarray:
    """Apply the corruptions to a ``float32`` ``[0, 1]`` map; returns a new ``float32`` map."""
    h, w = aux.shape
    out = aux.astype(np.float32, copy=True)
    if c.shift > 0:
        theta = rng.uniform(0, 2 * math.pi)
        m = np.float32([[1, 0, c.shift * math.cos(theta)], [0, 1, c.shift * math.sin(theta)]])
        out = cv2.warpAffine(
            out, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
        )
    if c.blur > 0:
        out = cv2.GaussianBlur(out, (0, 0), sigmaX=float(c.blur))
    if c.noise > 0:
        out += rng.standard_normal((h, w), dtype=np.float32) * np.float32(c.noise)
    np.clip(out, 0.0, 1.0, out=out)
    if c.holes > 0:
        field = draw.value_noise(rng, h, w, cell=max(4.0, min(h, w) / 10), octaves=2)
        out[field >= np.quantile(field, 1.0 - c.holes)] = 0.0
    if c.missing > 0 and rng.random() < c.missing:
        out[:] = 0.0
    return out


def _to_uint8(a: np.ndarray) -> np.ndarray:
    return np.clip(a * 255.0 + 0.5, 0, 255).astype(np.uint8)


def _dome(mask: np.ndarray, cx: float, cy: float, r: float, x0: int, y0: int) -> np.ndarray:
    """``1 - d^2 / r^2`` over a mask's bounding-box crop (a shallow bump in the aux map)."""
    h, w = mask.shape
    y, x = draw._grid(h, w)
    d2 = ((x + (x0 - cx)) ** 2 + (y + (y0 - cy)) ** 2) * (1.0 / (r * r))
    return np.clip(1.0 - d2, 0.0, 1.0)


@dataclass
class _ScenePlan:
    """The objects of a scene before drawing: per object a shape, radius (px), full area (px),
    two texture colours and their mean colour's saturation; which one is the salient
    ``target``, and the drawing ``order`` (the target last)."""

    shapes: list[str]
    radii: np.ndarray
    areas: np.ndarray
    colours: list[tuple[np.ndarray, np.ndarray]]
    sats: np.ndarray
    target: int
    order: list[int]


@dataclass
class _Camouflage:
    """Where a camouflaged target takes its texture: the background padded by ``pad`` px
    (reflected) and read at an offset of ``shift`` px."""

    pad: int
    background: np.ndarray
    shift: np.ndarray


def make_scene(
    rng: np.random.Generator,
    size: int,
    *,
    modality: str = "depth",
    camouflage: bool = False,
    corruption: Corruption | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
    """Draw one scene.

    Returns:
        ``(rgb, aux, gt, info)``: ``uint8`` ``(S, S, 3)``; ``uint8`` ``(S, S)`` aux map;
        ``bool`` ``(S, S)`` mask of the salient object; a small dict (``shapes``, ``target``
        index, ``camouflage``, per-object ``radii``, full ``areas`` (px) and mean-colour
        ``saturations``).
    """
    s = size
    rgb = draw.background(rng, s, s, clutter=int(rng.integers(4, 9)))
    aux = _aux_background(rng, s, modality)
    ground = aux.copy()
    plan = _plan_scene(rng, s)
    camo = _camouflage_source(rng, rgb) if camouflage else None

    gt = None
    for i in plan.order:
        mask = _draw_object(rng, rgb, aux, ground, plan, i, modality, camo)
        if mask is not None and i == plan.target:
            gt = mask.copy()

    aux = _sensor_aux(rng, aux, modality)
    if corruption is not None and corruption.active:
        aux = corrupt_aux(aux, rng, corruption)

    # Camera: a slight blur and sensor noise on the RGB.
    rgb_u8 = draw.sensor_noise(rng, cv2.GaussianBlur(rgb, (3, 3), 0.6), 5)
    assert gt is not None
    info = {
        "shapes": plan.shapes,
        "target": plan.target,
        "camouflage": bool(camouflage),
        "radii": [float(r) for r in plan.radii],
        "areas": [float(a) for a in plan.areas],
        "saturations": [float(v) for v in plan.sats],
    }
    return rgb_u8, _to_uint8(aux), gt, info


def _aux_background(rng: np.random.Generator, s: int, modality: str) -> np.ndarray:
    """The aux map without objects, ``float32`` ``(s, s)`` in ``[0, 1]``: a receding ground
    ramp with smooth noise (depth) or an ambient level with smooth variation (thermal)."""
    y, x = draw._grid(s, s)
    if modality == "depth":
        theta = rng.uniform(-0.5, 0.5)  # the ground recedes upwards, slightly tilted
        ramp = (y * math.cos(theta) + (x - s / 2) * math.sin(theta)) * (1.0 / s)
        aux = 0.05 + 0.32 * np.clip(ramp, 0, 1) + 0.08 * draw.value_noise(rng, s, s, cell=s / 4)
    elif modality == "thermal":
        aux = 0.15 + 0.2 * draw.value_noise(rng, s, s, cell=s / 3)
    else:
        raise ValueError(f"modality must be 'depth' or 'thermal', got {modality!r}")
    return aux.astype(np.float32)


def _plan_scene(rng: np.random.Generator, s: int) -> _ScenePlan:
    """3-6 objects (radii 7-17 % of the side, the largest at least 15 %) and the salient one:
    neither the largest by area nor the most saturated, so no "biggest" or "most colourful
    blob" heuristic finds it."""
    k = int(rng.integers(3, 7))
    radii = rng.uniform(0.07, 0.17, size=k) * s
    radii[int(np.argmax(radii))] = max(radii.max(), 0.15 * s)
    shapes = [draw.SHAPES[int(i)] for i in rng.integers(len(draw.SHAPES), size=k)]
    areas = np.array([r * r * draw.unit_area(sh) for r, sh in zip(radii, shapes, strict=True)])
    colours = [
        (
            draw.random_colour(rng, (0.35, 1.0), (0.35, 1.0)),
            draw.random_colour(rng, (0.35, 1.0), (0.35, 1.0)),
        )
        for _ in range(k)
    ]
    sats = np.array([draw.saturation((a + b) / 2) for a, b in colours])
    largest, most_colourful = int(np.argmax(areas)), int(np.argmax(sats))
    candidates = [i for i in range(k) if i not in (largest, most_colourful)]
    target = int(rng.choice(candidates))
    order = [i for i in rng.permutation(k) if i != target] + [target]  # target drawn last
    return _ScenePlan(shapes, radii, areas, colours, sats, target, order)


def _camouflage_source(rng: np.random.Generator, rgb: np.ndarray) -> _Camouflage:
    """The background, padded by half the side, and a random offset of 15-35 % of the side
    per axis: the camouflaged target wears the background from there."""
    s = rgb.shape[0]
    pad = s // 2
    bg_pad = cv2.copyMakeBorder(rgb, pad, pad, pad, pad, cv2.BORDER_REFLECT_101)
    bg_shift = rng.uniform(0.15, 0.35, size=2) * s * rng.choice([-1, 1], size=2)
    return _Camouflage(pad, bg_pad, bg_shift)


def _draw_object(
    rng: np.random.Generator,
    rgb: np.ndarray,
    aux: np.ndarray,
    ground: np.ndarray,
    plan: _ScenePlan,
    i: int,
    modality: str,
    camo: _Camouflage | None,
) -> np.ndarray | None:
    """Place object ``i`` at random, paint it into ``rgb`` and raise it in ``aux`` (both in
    place); returns its full ``bool`` ``(S, S)`` mask (None if it drew no pixel)."""
    s = rgb.shape[0]
    r = float(plan.radii[i])
    cx, cy = rng.uniform(r, s - r, size=2)
    mask = draw.shape_mask(
        plan.shapes[i], (s, s), cx, cy, r, angle=float(rng.uniform(0, 2 * math.pi))
    )
    bbox = draw.mask_bbox(mask)
    if bbox is None:  # pragma: no cover - radii >= 0.07 s always draw pixels
        return None
    x0, y0, x1, y1 = bbox
    m = mask[y0:y1, x0:x1]
    if i == plan.target and camo is not None:
        dx, dy = int(camo.shift[0]), int(camo.shift[1])
        ys, xs = y0 + camo.pad + dy, x0 + camo.pad + dx
        patch = camo.background[ys : ys + (y1 - y0), xs : xs + (x1 - x0)].astype(np.float32)
        patch = np.clip(patch * rng.uniform(0.85, 1.15), 0, 255).astype(np.uint8)
    else:
        tex = draw.random_texture(rng, y1 - y0, x1 - x0, scale=r * rng.uniform(0.3, 1.0))
        patch = draw.colourise(tex, *plan.colours[i])
    draw.paste(rgb, patch, m, (x0, y0))
    dome = _dome(m, cx, cy, r, x0, y0)
    region = aux[y0:y1, x0:x1]
    if i == plan.target:
        level = rng.uniform(0.72, 0.9) if modality == "depth" else rng.uniform(0.7, 0.85)
        bump = 0.08 if modality == "depth" else 0.12
    else:
        if modality == "depth":  # a distractor stands above the ground behind it
            level = float(ground[int(cy), int(cx)]) + rng.uniform(0.06, 0.2)
        else:
            level = rng.uniform(0.35, 0.55)
        bump = 0.05
    region[m] = (level + bump * dome)[m]
    return mask


def _sensor_aux(rng: np.random.Generator, aux: np.ndarray, modality: str) -> np.ndarray:
    """The aux map as a sensor sees it: thermal optics blur, or a depth sensor of a quarter of
    the resolution (at least 64 px); then +-3 grey levels of noise, clipped to ``[0, 1]``."""
    s = aux.shape[0]
    if modality == "thermal":  # soft thermal optics
        aux = cv2.GaussianBlur(aux, (0, 0), sigmaX=max(0.5, s / 100))
    else:  # a depth sensor of a quarter of the RGB resolution (at least 64 px)
        side = min(s, max(64, s // 4))
        low = cv2.resize(aux, (side, side), interpolation=cv2.INTER_AREA)
        aux = cv2.resize(low, (s, s), interpolation=cv2.INTER_LINEAR)
    # sensor noise: uniform in +-3 grey levels (sigma ~ 2 levels; integer draws are cheap)
    aux += rng.integers(-3, 4, size=(s, s), dtype=np.int8).astype(np.float32) * np.float32(1 / 255)
    np.clip(aux, 0, 1, out=aux)
    return aux


# --------------------------------------------------------------------------------------------
# Writing a benchmark


def _scene_job(job: tuple[Any, ...]) -> int:
    out, set_name, aux_dir, index, seed, size, modality, camo_share, corruption = job
    rng = draw.item_rng(seed, "sod", index)
    camo = bool(rng.random() < camo_share)
    rgb, aux, gt, _ = make_scene(
        rng, size, modality=modality, camouflage=camo, corruption=corruption
    )
    name = f"{index:05d}"
    base = Path(out) / set_name
    files.write_jpeg(base / "RGB" / f"{name}.jpg", rgb)
    files.write_png_fast(base / aux_dir / f"{name}.png", aux)
    files.write_png_fast(base / "GT" / f"{name}.png", gt)
    return int(camo)


def write_sod(
    out: Path,
    n: int | None = None,
    size: int = 256,
    seed: int = 0,
    *,
    modality: str = "depth",
    camouflage: float = 0.0,
    noise: float = 0.0,
    holes: float = 0.0,
    blur: float = 0.0,
    shift: float = 0.0,
    missing: float = 0.0,
    test_fraction: float = 0.2,
    workers: int | None = None,
) -> dict[str, Any]:
    """Write ``n`` scenes (default 200) in the SOD folder layout.

    Args:
        modality: ``"depth"`` (folder ``depth/``) or ``"thermal"`` (folder ``T/``).
        camouflage: share of the scenes (0..1; ``True`` = all) whose salient object wears the
            background's texture.
        noise, holes, blur, shift, missing: aux-map corruptions (module docstring).
        test_fraction: share of the scenes written to ``test`` (the rest to ``train``).
        workers: processes (default: up to the CPU count for large ``n``, 1 for small).

    Returns:
        counts per set and of camouflaged scenes.
    """
    n = DEFAULT_N if n is None else n
    if modality not in AUX_DIRS:
        raise ValueError(f"modality must be 'depth' or 'thermal', got {modality!r}")
    camo_share = float(camouflage)
    if not 0.0 <= camo_share <= 1.0:
        raise ValueError(f"camouflage must be a share in [0, 1], got {camouflage!r}")
    if not 0.0 <= test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in [0, 1), got {test_fraction!r}")
    corruption = Corruption(noise=noise, holes=holes, blur=blur, shift=shift, missing=missing)
    n_train = n - int(round(n * test_fraction)) if n > 1 else n
    aux_dir = AUX_DIRS[modality]
    jobs = [
        (str(out), "train" if i < n_train else "test", aux_dir, i, seed, size, modality,
         camo_share, corruption)
        for i in range(n)
    ]  # fmt: skip
    workers = processes.resolve_workers(workers, n)
    camo_flags = processes.parallel_map(_scene_job, jobs, workers)
    return {
        "n": n,
        "workers": workers,
        "sets": {"train": n_train, "test": n - n_train},
        "aux_dir": aux_dir,
        "camouflaged": int(sum(camo_flags)),
        "files": 3 * n,
    }


def write_corrupted_set(
    root: Path,
    set_name: str,
    out: Path,
    *,
    noise: float = 0.0,
    holes: float = 0.0,
    blur: float = 0.0,
    shift: float = 0.0,
    missing: float = 0.0,
    seed: int = 0,
    aux_dir: str | None = None,
) -> dict[str, Any]:
    """Copy ``<root>/<set_name>`` to ``<out>/<set_name>`` with corrupted aux maps.

    RGB and GT files are copied byte for byte; every aux map (8- or 16-bit PNG) is read,
    scaled to ``[0, 1]`` by its bit depth, corrupted (module docstring) and written as 8-bit
    PNG under the same name. The corruption of a map depends on ``(seed, its name)`` only.

    Args:
        aux_dir: ``"depth"`` or ``"T"``; found automatically when omitted.

    Returns:
        ``{"set", "aux_dir", "maps", "copied"}``.
    """
    src = Path(root) / set_name
    if aux_dir is None:
        found = [d for d in AUX_DIRS.values() if (src / d).is_dir()]
        if len(found) != 1:
            raise ValueError(
                f"{src}: expected exactly one of depth/ or T/, found {found or 'none'}"
            )
        aux_dir = found[0]
    corruption = Corruption(noise=noise, holes=holes, blur=blur, shift=shift, missing=missing)
    dst = Path(out) / set_name
    copied = 0
    for folder in ("RGB", "GT"):
        for path in sorted((src / folder).iterdir()):
            if path.is_file() and not path.name.startswith("."):
                files.write_bytes(dst / folder / path.name, path.read_bytes())
                copied += 1
    maps = 0
    for path in sorted((src / aux_dir).iterdir()):
        if not path.is_file() or path.name.startswith("."):
            continue
        raw = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        if raw is None:
            raise ValueError(f"{path}: not a readable image")
        if raw.ndim == 3:
            raw = raw.mean(axis=2)
        scale = 65535.0 if raw.dtype == np.uint16 else 255.0
        aux = raw.astype(np.float32) / np.float32(scale)
        stem_code = int.from_bytes(
            hashlib.blake2b(path.stem.encode(), digest_size=7).digest(), "big"
        )
        rng = draw.item_rng(seed, "corrupt", stem_code)
        files.write_png_fast(
            dst / aux_dir / f"{path.stem}.png", _to_uint8(corrupt_aux(aux, rng, corruption))
        )
        maps += 1
    return {"set": set_name, "aux_dir": aux_dir, "maps": maps, "copied": copied}


# --------------------------------------------------------------------------------------------
# The difficulty check: two blob heuristics


def _best_blob(score: np.ndarray, binary: np.ndarray, by: str = "sum") -> np.ndarray:
    """The connected component of ``binary`` with the largest summed (or mean) ``score``.

    Components smaller than 0.2% of the image are ignored when another one exists.
    """
    n, labels = cv2.connectedComponents(binary.astype(np.uint8), connectivity=8)
    if n <= 1:
        return np.zeros(binary.shape, dtype=np.uint8)
    sums = np.bincount(labels.ravel(), weights=score.ravel(), minlength=n)
    areas = np.bincount(labels.ravel(), minlength=n).astype(np.float64)
    value = sums if by == "sum" else sums / np.maximum(areas, 1)
    value[0] = -np.inf
    small = areas < 0.002 * binary.size
    if (~small[1:]).any():
        value[small] = -np.inf
    return (labels == int(np.argmax(value))).astype(np.uint8) * 255


def rgb_blob_baseline(rgb: np.ndarray) -> np.ndarray:
    """The most salient colour blob, ignoring the aux map.

    Frequency-tuned colour contrast (distance in Lab between the smoothed image and the image's
    mean colour), thresholded at twice its mean; the component with the most saliency wins.

    Returns:
        ``uint8`` ``(H, W)`` map, 0/255.
    """
    lab = cv2.cvtColor(cv2.GaussianBlur(rgb, (5, 5), 1.0), cv2.COLOR_RGB2LAB).astype(np.float32)
    sal = np.sqrt(((lab - lab.reshape(-1, 3).mean(axis=0)) ** 2).sum(axis=2))
    sal = cv2.GaussianBlur(sal, (0, 0), 2.0)
    return _best_blob(sal, sal >= min(2.0 * float(sal.mean()), float(sal.max())))


def aux_blob_baseline(aux: np.ndarray) -> np.ndarray:
    """The blob the aux map singles out.

    Pixels that stand out from the typical value: above ``median + 0.6 * (p99.5 - median)``
    of the smoothed map; the component with the highest mean value (the nearest or warmest)
    wins.

    Returns:
        ``uint8`` ``(H, W)`` map, 0/255.
    """
    a = cv2.GaussianBlur(aux, (5, 5), 1.0).astype(np.float32)
    med, top = np.percentile(a, [50.0, 99.5])
    return _best_blob(a, a > med + 0.6 * (top - med), by="mean")


def _smeasure_scorer() -> Any:
    """A fresh object with ``step(pred_uint8, gt_uint8)`` and ``value() -> float`` (mean S).

    The project's :class:`cmseg.metrics.sod.SODEvaluator` (PySODMetrics conventions); when
    that module is missing, PySODMetrics' ``Smeasure`` itself.
    """
    try:
        from cmseg.metrics.sod import SODEvaluator
    except ImportError:
        import py_sod_metrics

        class _Py:
            def __init__(self) -> None:
                self.m = py_sod_metrics.Smeasure()

            def step(self, pred: np.ndarray, gt: np.ndarray) -> None:
                self.m.step(pred=pred, gt=gt)

            def value(self) -> float:
                return float(self.m.get_results()["sm"])

        return _Py()

    class _Own:
        def __init__(self) -> None:
            self.m = SODEvaluator()

        def step(self, pred: np.ndarray, gt: np.ndarray) -> None:
            self.m.update(pred, gt)

        def value(self) -> float:
            return float(self.m.compute()["sm"])

    return _Own()


def difficulty(root: Path, set_name: str = "test", limit: int | None = None) -> dict[str, Any]:
    """S-measure of the two blob heuristics on a written set.

    Returns:
        ``{"images", "S_rgb_blob", "S_aux_blob", "gap"}`` (gap = aux minus rgb).
    """
    base = Path(root) / set_name
    aux_dir = next(d for d in AUX_DIRS.values() if (base / d).is_dir())
    names = sorted(p.stem for p in (base / "GT").glob("*.png"))[:limit]
    rgb_score, aux_score = _smeasure_scorer(), _smeasure_scorer()
    for name in names:
        rgb = cv2.cvtColor(cv2.imread(str(base / "RGB" / f"{name}.jpg")), cv2.COLOR_BGR2RGB)
        aux = cv2.imread(str(base / aux_dir / f"{name}.png"), cv2.IMREAD_GRAYSCALE)
        gt = cv2.imread(str(base / "GT" / f"{name}.png"), cv2.IMREAD_GRAYSCALE)
        rgb_score.step(rgb_blob_baseline(rgb), gt)
        aux_score.step(aux_blob_baseline(aux), gt)
    s_rgb, s_aux = rgb_score.value(), aux_score.value()
    return {"images": len(names), "S_rgb_blob": s_rgb, "S_aux_blob": s_aux, "gap": s_aux - s_rgb}
