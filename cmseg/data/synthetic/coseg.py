"""Synthetic object co-segmentation groups.

Layout written (the processed SSNM test layout, reference/ssnm_coseg.md §5, with ``<split>``
in the place of the dataset name)::

    <out>/train/image/<class>/<name>.jpg         RGB, JPEG quality 92
    <out>/train/groundtruth/<class>/<name>.png   8-bit grey PNG, 0 and 255
    <out>/test/...                               the same two folders
    <out>/cmseg_synth.json                       what was generated, including every group

``<class>`` is a shape name (``circle``, ``square``, ...). ``<name>`` is ``g<group>_<k>``
(group number over the whole run, zero-padded to 4 digits; ``k`` = 0..4), so that the sorted
file list of a class folder splits into consecutive chunks of 5 that are exactly the groups
(SSNM's inference groups a class folder in consecutive chunks of 5). The GT name is the image
name with ``.png``.

What a group is: ``group_size`` (default 5) images that share one shape class, the group's
**common class**. Each image holds 1-2 instances of the common class (80% one) and 1-3
distractor objects of other classes (rarely 0, see below), on a cluttered textured background
(ellipses and rectangles, never a shape class). Colours and textures are drawn per object, so
the common object differs in appearance across the group and a distractor may share its
colour: only the shape is common. By construction no distractor class appears in every image
of a group (when one does, it is removed from one image), so the common class is unique. The
GT of an image is the union of the pixels of its common-class instances (objects do not
overlap: centres are at least the sum of the radii plus 2% of the side apart).

Groups cycle through the classes (group ``g`` has class ``g mod classes``), so there are
several groups per class; per class, the last ``round(k * test_fraction)`` of its ``k`` groups
(at least one when ``k >= 2``) go to ``test``, the others to ``train``.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from cmseg.data.synthetic import draw, files, processes

__all__ = ["write_coseg", "plan_groups", "make_image", "DEFAULT_N"]

DEFAULT_N = 60


def plan_groups(
    n: int, seed: int, classes: int, group_size: int, test_fraction: float
) -> list[dict[str, Any]]:
    """Decide every group: class, split, and per image the common-instance count and the
    distractor classes. Pure function of its arguments."""
    names = draw.SHAPES[:classes]
    per_class: dict[int, list[int]] = {}
    for g in range(n):
        per_class.setdefault(g % classes, []).append(g)
    test_groups: set[int] = set()
    for groups in per_class.values():
        k = len(groups)
        n_test = max(1, int(round(k * test_fraction))) if k >= 2 and test_fraction > 0 else 0
        test_groups.update(groups[k - n_test :])
    plans = []
    for g in range(n):
        rng = draw.item_rng(seed, "coseg", g)
        c = g % classes
        others = [i for i in range(classes) if i != c]
        images = []
        for _ in range(group_size):
            n_common = 1 if rng.random() < 0.8 else 2
            n_dis = int(rng.integers(1, 4))
            dis = [int(i) for i in rng.choice(others, size=n_dis, replace=True)]
            images.append({"common": n_common, "distractors": dis})
        shared = set.intersection(*(set(im["distractors"]) for im in images))
        if shared:  # a distractor class in every image: drop it from one image
            j = int(rng.integers(group_size))
            images[j]["distractors"] = [d for d in images[j]["distractors"] if d not in shared]
        plans.append(
            {
                "group": g,
                "class": names[c],
                "split": "test" if g in test_groups else "train",
                "images": [
                    {"common": im["common"], "distractors": [names[i] for i in im["distractors"]]}
                    for im in images
                ],
            }
        )
    return plans


def make_image(
    rng: np.random.Generator, size: int, common: str, n_common: int, distractors: list[str]
) -> tuple[np.ndarray, np.ndarray]:
    """Draw one group image.

    Returns:
        ``(rgb, gt)``: ``uint8`` ``(S, S, 3)`` and ``bool`` ``(S, S)`` (visible common pixels).
    """
    s = size
    rgb = draw.background(rng, s, s, clutter=int(rng.integers(3, 7)))
    shapes = [common] * n_common + list(distractors)
    k = len(shapes)
    scale = 1.0
    while True:
        radii = np.concatenate(
            [rng.uniform(0.12, 0.22, n_common), rng.uniform(0.08, 0.18, k - n_common)]
        ) * (s * scale)
        centres = draw.place_discs(rng, radii, s, gap=0.02 * s)
        if centres is not None:
            break
        scale *= 0.9
    labels = np.zeros((s, s), dtype=np.uint8)
    for i in rng.permutation(k):
        c1 = draw.random_colour(rng, (0.3, 1.0), (0.3, 1.0))
        c2 = c1 * rng.uniform(0.5, 0.9) if rng.random() < 0.5 else draw.random_colour(rng)
        draw.draw_shape(
            rgb, rng, shapes[i], centres[i, 0], centres[i, 1], radii[i],
            float(rng.uniform(0, 2 * math.pi)), c1, c2,
            texture_scale=radii[i] * rng.uniform(0.3, 1.0), labels=labels, label=int(i) + 1,
        )  # fmt: skip
    gt = (labels >= 1) & (labels <= n_common)
    rgb = cv2.GaussianBlur(rgb, (3, 3), 0.6)
    return rgb, gt


def _image_job(job: tuple[Any, ...]) -> None:
    out, seed, size, plan, k = job
    im = plan["images"][k]
    rng = draw.item_rng(seed, "coseg", plan["group"], k + 1)
    rgb, gt = make_image(rng, size, plan["class"], im["common"], im["distractors"])
    name = f"g{plan['group']:04d}_{k}"
    base = Path(out) / plan["split"]
    files.write_jpeg(base / "image" / plan["class"] / f"{name}.jpg", rgb)
    files.write_png_fast(base / "groundtruth" / plan["class"] / f"{name}.png", gt)


def write_coseg(
    out: Path,
    n: int | None = None,
    size: int = 256,
    seed: int = 0,
    *,
    classes: int = len(draw.SHAPES),
    group_size: int = 5,
    test_fraction: float = 0.2,
    workers: int | None = None,
) -> dict[str, Any]:
    """Write ``n`` groups (default 60) of ``group_size`` images.

    Args:
        classes: how many shape classes to use (2..12; the first ones of
            :data:`~cmseg.data.synthetic.draw.SHAPES`).
        group_size: images per group (default 5, SSNM's group size).
        test_fraction: per class, the share of its groups written to ``test``.
        workers: processes (default: up to the CPU count for large jobs).

    Returns:
        groups and images per split, groups per class, and the group list.
    """
    n = DEFAULT_N if n is None else n
    if not 2 <= classes <= len(draw.SHAPES):
        raise ValueError(f"classes must be in [2, {len(draw.SHAPES)}], got {classes!r}")
    if not 1 <= group_size <= 100:
        raise ValueError(f"group_size must be in [1, 100], got {group_size!r}")
    if not 0.0 <= test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in [0, 1), got {test_fraction!r}")
    plans = plan_groups(n, seed, classes, group_size, test_fraction)
    jobs = [(str(out), seed, size, p, k) for p in plans for k in range(group_size)]
    workers = processes.resolve_workers(workers, len(jobs))
    processes.parallel_map(_image_job, jobs, workers)
    groups = {s: sum(p["split"] == s for p in plans) for s in ("train", "test")}
    return {
        "n": n,
        "workers": workers,
        "groups": groups,
        "images": {s: v * group_size for s, v in groups.items()},
        "groups_per_class": {c: sum(p["class"] == c for p in plans) for c in draw.SHAPES[:classes]},
        "files": 2 * len(jobs),
        "group_list": [
            {
                "split": p["split"],
                "class": p["class"],
                "names": [f"g{p['group']:04d}_{k}" for k in range(group_size)],
                "distractors": [im["distractors"] for im in p["images"]],
            }
            for p in plans
        ],
    }
