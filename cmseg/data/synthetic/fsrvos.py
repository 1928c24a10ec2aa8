"""Synthetic few-shot referring video object segmentation in the Mini-Ref-YouTube-VOS layout.

Layout written (reference/cma_fsrvos.md §2; the folders the CMA code reads)::

    <out>/train/JPEGImages/<vid>/<frame>.jpg       frames 00000, 00005, ... (JPEG quality 92)
    <out>/train/Annotations/<vid>/<frame>.png      palette PNG (VOC colour map), value = obj_id
    <out>/train/meta.json                          {"videos": {vid: {"objects": {"1":
                                                     {"category": name, "frames": [...]}}}}}
    <out>/meta_expressions/train/meta_expressions.json
                                                   {"videos": {vid: {"expressions": {"0":
                                                     {"exp": str, "obj_id": "1"}},
                                                   "frames": [...]}}}
    <out>/categories.json                          {name: id}, ids 1..classes
    <out>/cmseg_synth.json                         what was generated, with the folds

Like Mini-Ref-YouTube-VOS, everything is in ``train``: the few-shot folds split the
*classes*, not the videos. ``categories.json`` plays the role of CMA's
``datasets/categories.py`` (the name -> id table the real benchmark keeps in code): class ids
are 1..``classes`` in the order of :data:`~cmseg.data.synthetic.draw.SHAPES`, and fold ``g``
(1..4) tests the classes with ``(id - 1) % 4 == g - 1`` and trains on the others, CMA's rule.
With the default 12 classes every fold tests 3 classes and trains on 9.

**Videos.** Video ``i`` belongs to class ``i mod classes`` (so every class has about
``n / classes`` videos; at least 2 are needed for a support and a query). It holds 1-2 objects
of its class (with probability ``twin_prob`` two of the same colour that move differently) and
0-2 distractor objects of other classes, rendered like :mod:`.rvos` (8-24 frames, straight-line
motion or still). Expressions (1-2 per object, grammar of :mod:`.rvos`, each referring to
exactly one object) are written **only for the objects of the video's class**, so the category
of a video's expressions, the rule CMA uses to assign videos to classes (``catToVids``), is its
class; ``meta.json`` still lists every object with its own category.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from cmseg.data.synthetic import draw, processes
from cmseg.data.synthetic.ris import RIS_COLOURS
from cmseg.data.synthetic.rvos import MOTIONS, render_and_write, write_video_json
from cmseg.io import write_json

__all__ = ["write_fsrvos", "folds", "plan_video", "DEFAULT_N", "MIN_CLASSES"]

MIN_CLASSES = 8
DEFAULT_VIDEOS_PER_CLASS = 8
DEFAULT_N = len(draw.SHAPES) * DEFAULT_VIDEOS_PER_CLASS


def folds(classes: int) -> dict[int, list[str]]:
    """Test classes of each fold ``1..4`` by CMA's rule ``(id - 1) % 4 == g - 1``."""
    return {
        g: [draw.SHAPES[i - 1] for i in range(1, classes + 1) if (i - 1) % 4 == g - 1]
        for g in range(1, 5)
    }


def plan_video(
    rng: np.random.Generator, cls: int, classes: int, twin_prob: float
) -> tuple[list[dict[str, str]], list[int]]:
    """Objects of a video of class index ``cls`` and the indices of its class objects."""
    names = draw.SHAPES[:classes]
    n_cls = 2 if rng.random() < 0.5 else 1
    colours = list(rng.choice(RIS_COLOURS, size=3, replace=False))
    motions = [str(m) for m in rng.permutation(MOTIONS)]
    objs = []
    for k in range(n_cls):
        objs.append({"shape": names[cls], "colour": str(colours[int(rng.integers(3))]),
                     "motion": motions[k]})  # fmt: skip
    if n_cls == 2 and rng.random() < twin_prob:
        objs[1]["colour"] = objs[0]["colour"]
    others = [i for i in range(classes) if i != cls]
    for _ in range(int(rng.integers(0, 3))):
        objs.append(
            {
                "shape": names[others[int(rng.integers(len(others)))]],
                "colour": str(colours[int(rng.integers(3))]),
                "motion": MOTIONS[int(rng.integers(len(MOTIONS)))],
            }
        )
    return objs, list(range(n_cls))


def _video_job(job: tuple[Any, ...]) -> dict[str, Any]:
    out, index, seed, size, classes, twin_prob = job
    rng = draw.item_rng(seed, "fsrvos", index)
    n_frames = int(rng.integers(8, 25))
    objs, targets = plan_video(rng, index % classes, classes, twin_prob)
    res = render_and_write(out, index, "train", rng, size, objs, n_frames, "ytvos", targets)
    res["class"] = draw.SHAPES[index % classes]
    return res


def write_fsrvos(
    out: Path,
    n: int | None = None,
    size: int = 256,
    seed: int = 0,
    *,
    classes: int = len(draw.SHAPES),
    twin_prob: float = 0.3,
    workers: int | None = None,
) -> dict[str, Any]:
    """Write ``n`` videos (default 8 per class) in the Mini-Ref-YouTube-VOS layout.

    Args:
        classes: number of classes, 8..12 (ids 1..classes).
        twin_prob: probability that a video's two class objects share their colour.
        workers: processes (default: up to the CPU count for large jobs).

    Returns:
        videos, frames and expressions; videos per class; the folds.
    """
    if not MIN_CLASSES <= classes <= len(draw.SHAPES):
        raise ValueError(f"classes must be in [{MIN_CLASSES}, {len(draw.SHAPES)}], got {classes!r}")
    n = classes * DEFAULT_VIDEOS_PER_CLASS if n is None else n
    if n < 2 * classes:
        raise ValueError(f"n must be at least 2 videos per class ({2 * classes}), got {n}")
    if not 0.0 <= twin_prob <= 1.0:
        raise ValueError(f"twin_prob must be in [0, 1], got {twin_prob!r}")
    jobs = [(str(out), i, seed, size, classes, float(twin_prob)) for i in range(n)]
    workers = processes.resolve_workers(workers, n, per_worker=20)
    results = processes.parallel_map(_video_job, jobs, workers)
    stats = write_video_json(Path(out), results, "ytvos", ("train",))
    write_json(Path(out) / "categories.json",
               {name: i + 1 for i, name in enumerate(draw.SHAPES[:classes])})  # fmt: skip
    per_class = {name: 0 for name in draw.SHAPES[:classes]}
    for r in results:
        per_class[r["class"]] += 1
    return {
        "n": n,
        "workers": workers,
        "classes": classes,
        "splits": stats,
        "videos_per_class": per_class,
        "folds": {str(g): names for g, names in folds(classes).items()},
        "files": 2 * sum(r["n_frames"] for r in results) + 3,
    }
