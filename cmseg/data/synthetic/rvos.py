"""Synthetic referring video object segmentation: clips of moving shapes with sentences about
appearance and motion, in the Ref-YouTube-VOS layout (default) or the MeViS layout.

Ref-YouTube-VOS layout (``layout="ytvos"``; reference/soc_rvos.md §4, cma_fsrvos.md §2)::

    <out>/train/JPEGImages/<vid>/<frame>.jpg       frames, JPEG quality 92
    <out>/train/Annotations/<vid>/<frame>.png      palette PNG (VOC colour map), value = obj_id
    <out>/train/meta.json                          {"videos": {vid: {"objects": {"1":
                                                     {"category": shape, "frames": [...]}}}}}
    <out>/valid/JPEGImages/...                     the same for the valid split, plus
    <out>/valid/Annotations/... and valid/meta.json  (see below)
    <out>/meta_expressions/train/meta_expressions.json
    <out>/meta_expressions/valid/meta_expressions.json
                                                   {"videos": {vid: {"expressions": {"0":
                                                     {"exp": str, "obj_id": "1"}}, "frames":
                                                     ["00000", "00005", ...]}}}

* ``<vid>`` is ``v<index:05d>``; frames are named like YouTube-VOS's annotated frames, every 5th
  source frame: ``00000``, ``00005``, ``00010``, ... Expression ids are ``"0"``, ``"1"``, ...
  per video; ``obj_id`` is a string starting at ``"1"``; ``meta.json`` lists, per object, its
  category (the shape name) and the frames where it is visible.
* The real Ref-YouTube-VOS ``valid`` split has **no public masks** (it is scored on the
  CodaLab server) and only ``JPEGImages``. The synthetic ``valid`` split also gets
  ``Annotations`` and ``meta.json`` so that it can be evaluated locally; a reader that follows
  the real dataset simply ignores them.
* Split: the first ``round(n * (1 - valid_fraction))`` clips are ``train``, the rest ``valid``.

MeViS layout (``layout="mevis"``; reference/soc_rvos.md §4)::

    <out>/train/JPEGImages/<vid>/<frame>.jpg       frames 00000, 00001, ... (consecutive)
    <out>/train/meta_expressions.json              {"videos": {vid: {"expressions": {"0":
                                                     {"exp": str, "obj_id": [int], "anno_id":
                                                     [int]}}, "frames": [...]}}}
    <out>/train/mask_dict.json                     {str(anno_id): [RLE or null per frame]}
    <out>/valid_u/...                              the same three (the local validation split)

* ``obj_id`` counts from 0 within a video; ``anno_id`` is unique over the split (one per object
  track); ``mask_dict`` holds one compressed COCO RLE (``{"size": [h, w], "counts": str}``) per
  frame in the order of ``frames``, ``null`` where the object is not visible.
* MeViS expressions may refer to several objects: when a clip holds twins (below), a plural
  expression ("the two red squares") refers to both (``obj_id`` with two entries).

**Clips.** 8-24 frames; 2-4 objects (shape and colour from the RIS vocabulary) on a static,
low-saturation cluttered background; each object moves in a straight line at constant speed
(``up``, ``down``, ``left``, ``right``: 25-45% of the side over the clip) or stays ``still``,
always fully inside the frame; objects may pass over one another (fixed depth order per clip;
annotations hold the visible pixels). With probability ``twin_prob`` a clip holds **twins**:
two objects of the same shape and colour that move differently, so only motion tells them
apart.

**Sentences.** ``the [COLOUR] SHAPE``, ``the [COLOUR] SHAPE MOTION`` and ``the object MOTION``
(also ``shape`` / ``thing`` for ``object``), where MOTION is one of ``moving up``,
``going up``, ``that moves up``, ``moving to the left``, ``standing still``, ... Each
sentence is kept only when exactly one object fits all its words (checked by construction). A
sentence is **motion-only** when the object's appearance (shape and colour) is shared with
another object: it can only be resolved from the motion. Each object gets 1-2 expressions.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np
from pycocotools import mask as mask_utils

from cmseg.data.synthetic import draw, files, processes
from cmseg.data.synthetic.ris import RIS_COLOURS, RIS_SHAPES
from cmseg.io import write_json

__all__ = [
    "MOTIONS",
    "MOTION_PHRASES",
    "make_clip",
    "clip_expressions",
    "plan_objects",
    "write_rvos",
    "parse_expression",
    "DEFAULT_N",
]

DEFAULT_N = 40
MOTIONS: tuple[str, ...] = ("up", "down", "left", "right", "still")
MOTION_PHRASES: dict[str, tuple[str, ...]] = {
    "up": ("moving up", "going up", "that moves up", "moving upwards"),
    "down": ("moving down", "going down", "that moves down", "moving downwards"),
    "left": ("moving left", "moving to the left", "going left", "that moves to the left"),
    "right": ("moving right", "moving to the right", "going right", "that moves to the right"),
    "still": ("standing still", "that does not move", "staying still"),
}
_DIRECTION = {"up": (0, -1), "down": (0, 1), "left": (-1, 0), "right": (1, 0), "still": (0, 0)}
_NOUNS = ("object", "shape", "thing")


def plan_objects(
    rng: np.random.Generator,
    twin_prob: float,
    shapes: tuple[str, ...] = RIS_SHAPES,
    k: int | None = None,
) -> list[dict[str, str]]:
    """Attributes of a clip's objects: ``shape``, ``colour``, ``motion``."""
    k = int(rng.integers(2, 5)) if k is None else k
    colours = list(rng.choice(RIS_COLOURS, size=min(3, len(RIS_COLOURS)), replace=False))
    objs = []
    for _ in range(k):
        objs.append(
            {
                "shape": str(shapes[int(rng.integers(len(shapes)))]),
                "colour": str(colours[int(rng.integers(len(colours)))]),
                "motion": MOTIONS[int(rng.integers(len(MOTIONS)))],
            }
        )
    if k >= 2 and rng.random() < twin_prob:
        others = [m for m in MOTIONS if m != objs[0]["motion"]]
        objs[1] = {**objs[0], "motion": others[int(rng.integers(len(others)))]}
    return objs


def make_clip(
    rng: np.random.Generator, size: int, objs: list[dict[str, str]], n_frames: int
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Render a clip.

    Returns:
        ``(frames, labels)``: ``n_frames`` RGB ``uint8`` ``(S, S, 3)`` frames and ``uint8``
        ``(S, S)`` label maps (0 background, ``k + 1`` = object ``k``, visible pixels).
    """
    s = size
    bg = draw.background(
        rng, s, s, clutter=int(rng.integers(3, 7)), sat=(0.0, 0.25), val=(0.3, 0.7)
    )
    tracks = []
    for o in objs:
        r = rng.uniform(0.07, 0.11) * s
        dx, dy = _DIRECTION[o["motion"]]
        dist = rng.uniform(0.25, 0.45) * s if o["motion"] != "still" else 0.0
        lo_x, hi_x = r + max(0.0, -dx * dist), s - r - max(0.0, dx * dist)
        lo_y, hi_y = r + max(0.0, -dy * dist), s - r - max(0.0, dy * dist)
        x0, y0 = rng.uniform(lo_x, hi_x), rng.uniform(lo_y, hi_y)
        c1 = draw.named_colour(rng, o["colour"])
        tracks.append(
            {
                "r": r, "x0": x0, "y0": y0, "dx": dx * dist, "dy": dy * dist,
                "angle": float(rng.uniform(-0.3, 0.3)), "spin": float(rng.uniform(-0.02, 0.02)),
                "c1": c1, "c2": c1 * np.float32(rng.uniform(0.75, 0.9)),
                "tex_seed": int(rng.integers(1 << 31)),
            }
        )  # fmt: skip
    order = rng.permutation(len(objs))  # back to front
    frames, labels = [], []
    steps = max(1, n_frames - 1)
    for t in range(n_frames):
        img = bg.copy()
        lab = np.zeros((s, s), dtype=np.uint8)
        for k in order:
            tr = tracks[k]
            cx = tr["x0"] + tr["dx"] * t / steps
            cy = tr["y0"] + tr["dy"] * t / steps
            # The same texture seed every frame: the object keeps its look while it moves.
            tex_rng = np.random.default_rng(tr["tex_seed"])
            draw.draw_shape(
                img, tex_rng, objs[k]["shape"], cx, cy, tr["r"], tr["angle"] + tr["spin"] * t,
                tr["c1"], tr["c2"], texture="noise", texture_scale=tr["r"] / 2,
                labels=lab, label=int(k) + 1,
            )  # fmt: skip
        img = cv2.GaussianBlur(img, (3, 3), 0.5)
        frames.append(img)
        labels.append(lab)
    return frames, labels


def _fits(o: dict[str, str], shape: str | None, colour: str | None, motion: str | None) -> bool:
    return (
        (shape is None or o["shape"] == shape)
        and (colour is None or o["colour"] == colour)
        and (motion is None or o["motion"] == motion)
    )


def clip_expressions(
    objs: list[dict[str, str]],
    rng: np.random.Generator,
    targets: list[int] | None = None,
    per_object: tuple[int, int] = (1, 2),
) -> list[dict[str, Any]]:
    """Sentences for the objects ``targets`` (default all), each referring to exactly one.

    Returns:
        ``[{"obj": k, "exp": str, "motion_only": bool}, ...]`` in object order.
    """
    out = []
    for k in range(len(objs)) if targets is None else targets:
        o = objs[k]
        motion_only = sum(_fits(x, o["shape"], o["colour"], None) for x in objs) > 1
        cands = []
        for use_colour, use_shape, use_motion in (
            (False, True, False), (True, True, False), (False, True, True),
            (True, True, True), (False, False, True), (True, False, True),
        ):  # fmt: skip
            words = (
                o["shape"] if use_shape else None,
                o["colour"] if use_colour else None,
                o["motion"] if use_motion else None,
            )
            if [i for i, x in enumerate(objs) if _fits(x, *words)] == [k]:
                cands.append((use_colour, use_shape, use_motion))
        if not cands:
            continue
        want = int(rng.integers(per_object[0], per_object[1] + 1))
        # Prefer sentences with motion half of the time, so that motion is always in play.
        with_motion = [c for c in cands if c[2]]
        picks: list[tuple[bool, bool, bool]] = []
        if with_motion and rng.random() < 0.5:
            picks.append(with_motion[int(rng.integers(len(with_motion)))])
        for i in rng.permutation(len(cands)):
            if len(picks) >= want:
                break
            if cands[int(i)] not in picks:
                picks.append(cands[int(i)])
        seen = set()
        for use_colour, use_shape, use_motion in picks[:want]:
            words = ["the"]
            if use_colour:
                words.append(o["colour"])
            words.append(o["shape"] if use_shape else _NOUNS[int(rng.integers(len(_NOUNS)))])
            if use_motion:
                phrases = MOTION_PHRASES[o["motion"]]
                words.append(phrases[int(rng.integers(len(phrases)))])
            exp = " ".join(words)
            if exp not in seen:
                seen.add(exp)
                out.append({"obj": k, "exp": exp, "motion_only": motion_only})
    return out


def _plural(shape: str) -> str:
    return shape + ("es" if shape.endswith(("s", "x", "sh", "ch")) else "s")


def parse_expression(exp: str) -> tuple[str | None, str | None, str | None]:
    """``(shape, colour, motion)`` words of an expression of the grammar (None when absent)."""
    text = " ".join(exp.lower().split())
    words = text.split()
    shape = next((w for w in words if w in RIS_SHAPES), None)
    colour = next((w for w in words if w in RIS_COLOURS), None)
    motion = None
    for m, phrases in MOTION_PHRASES.items():
        if any(text.endswith(p) or f" {p} " in f" {text} " for p in phrases):
            motion = m
            break
    return shape, colour, motion


# --------------------------------------------------------------------------------------------
# Writing


def _frame_names(n_frames: int, layout: str) -> list[str]:
    step = 5 if layout == "ytvos" else 1
    return [f"{t * step:05d}" for t in range(n_frames)]


def _clip_job(job: tuple[Any, ...]) -> dict[str, Any]:
    out, index, split, seed, size, twin_prob, layout, task = job
    rng = draw.item_rng(seed, task, index)
    n_frames = int(rng.integers(8, 25))
    objs = plan_objects(rng, twin_prob)
    return render_and_write(out, index, split, rng, size, objs, n_frames, layout, None)


def render_and_write(
    out: str,
    index: int,
    split: str,
    rng: np.random.Generator,
    size: int,
    objs: list[dict[str, str]],
    n_frames: int,
    layout: str,
    targets: list[int] | None,
) -> dict[str, Any]:
    """Render one clip, write its frames (and palette annotations for ``ytvos``), and return
    the metadata the JSON files need. Shared with :mod:`.fsrvos`."""
    frames, labels = make_clip(rng, size, objs, n_frames)
    exps = clip_expressions(objs, rng, targets)
    vid = f"v{index:05d}"
    names = _frame_names(n_frames, layout)
    base = Path(out) / split
    palette = files.voc_palette()
    for name, frame, lab in zip(names, frames, labels, strict=True):
        files.write_jpeg(base / "JPEGImages" / vid / f"{name}.jpg", frame)
        if layout == "ytvos":
            files.write_png_fast(base / "Annotations" / vid / f"{name}.png", lab, palette=palette)
    visible = [
        [names[t] for t in range(n_frames) if (labels[t] == k + 1).any()] for k in range(len(objs))
    ]
    rles = None
    if layout == "mevis":
        rles = []
        for k in range(len(objs)):
            per_frame = []
            for lab in labels:
                m = lab == k + 1
                if m.any():
                    rle = mask_utils.encode(np.asfortranarray(m.astype(np.uint8)))
                    per_frame.append({"size": [int(v) for v in rle["size"]],
                                      "counts": rle["counts"].decode("ascii")})  # fmt: skip
                else:
                    per_frame.append(None)
            rles.append(per_frame)
        # Plural expression for twins (MeViS allows several objects per expression).
        twins = [k for k in range(1, len(objs)) if objs[k]["shape"] == objs[0]["shape"]
                 and objs[k]["colour"] == objs[0]["colour"]]  # fmt: skip
        group = [0, *twins]
        same = [
            k for k, o in enumerate(objs) if _fits(o, objs[0]["shape"], objs[0]["colour"], None)
        ]
        if (
            twins
            and len(group) == 2
            and same == group
            and (targets is None or set(group) <= set(targets))
        ):
            if rng.random() < 0.5:
                plural = f"the two {objs[0]['colour']} {_plural(objs[0]['shape'])}"
                exps.append({"obj": group, "exp": plural, "motion_only": False})
    return {
        "vid": vid, "split": split, "frames": names, "objects": objs, "visible": visible,
        "expressions": exps, "rles": rles, "n_frames": n_frames,
    }  # fmt: skip


def write_video_json(
    out: Path, results: list[dict[str, Any]], layout: str, splits: tuple[str, ...]
) -> dict[str, Any]:
    """Write the JSON files of a ytvos/mevis layout from the clip metadata; returns counts."""
    stats: dict[str, dict[str, int]] = {}
    for split in splits:
        vids = [r for r in results if r["split"] == split]
        st = {
            "videos": len(vids),
            "frames": 0,
            "expressions": 0,
            "motion_only": 0,
            "multi_object": 0,
        }
        videos_exp: dict[str, Any] = {}
        videos_meta: dict[str, Any] = {}
        mask_dict: dict[str, Any] = {}
        anno_id = 0
        for r in vids:
            st["frames"] += r["n_frames"]
            if layout == "ytvos":
                exps = {
                    str(i): {"exp": e["exp"], "obj_id": str(e["obj"] + 1)}
                    for i, e in enumerate(r["expressions"])
                }
                videos_meta[r["vid"]] = {
                    "objects": {
                        str(k + 1): {"category": o["shape"], "frames": r["visible"][k]}
                        for k, o in enumerate(r["objects"])
                    }
                }
            else:
                first = anno_id
                for k in range(len(r["objects"])):
                    mask_dict[str(first + k)] = r["rles"][k]
                anno_id += len(r["objects"])
                exps = {}
                for i, e in enumerate(r["expressions"]):
                    objs = e["obj"] if isinstance(e["obj"], list) else [e["obj"]]
                    exps[str(i)] = {
                        "exp": e["exp"],
                        "obj_id": objs,
                        "anno_id": [first + k for k in objs],
                    }
                    st["multi_object"] += int(len(objs) > 1)
            st["expressions"] += len(r["expressions"])
            st["motion_only"] += sum(int(e["motion_only"]) for e in r["expressions"])
            videos_exp[r["vid"]] = {"expressions": exps, "frames": r["frames"]}
        if layout == "ytvos":
            write_json(
                out / "meta_expressions" / split / "meta_expressions.json",
                {"videos": videos_exp},
                indent=None,
            )
            write_json(out / split / "meta.json", {"videos": videos_meta}, indent=None)
        else:
            write_json(out / split / "meta_expressions.json", {"videos": videos_exp}, indent=None)
            write_json(out / split / "mask_dict.json", mask_dict, indent=None)
        stats[split] = st
    return stats


def write_rvos(
    out: Path,
    n: int | None = None,
    size: int = 256,
    seed: int = 0,
    *,
    layout: str = "ytvos",
    twin_prob: float = 0.5,
    valid_fraction: float = 0.2,
    workers: int | None = None,
) -> dict[str, Any]:
    """Write ``n`` clips (default 40).

    Args:
        layout: ``"ytvos"`` (Ref-YouTube-VOS: ``train``/``valid``) or ``"mevis"`` (MeViS:
            ``train``/``valid_u``).
        twin_prob: probability that a clip holds twins (same look, different motion).
        valid_fraction: share of the clips in the validation split.
        workers: processes (default: up to the CPU count for large jobs).

    Returns:
        videos, frames, expressions and motion-only expressions per split.
    """
    n = DEFAULT_N if n is None else n
    if layout not in ("ytvos", "mevis"):
        raise ValueError(f"layout must be 'ytvos' or 'mevis', got {layout!r}")
    if not 0.0 <= twin_prob <= 1.0:
        raise ValueError(f"twin_prob must be in [0, 1], got {twin_prob!r}")
    if not 0.0 <= valid_fraction < 1.0:
        raise ValueError(f"valid_fraction must be in [0, 1), got {valid_fraction!r}")
    splits = ("train", "valid") if layout == "ytvos" else ("train", "valid_u")
    n_train = n - int(round(n * valid_fraction)) if n > 1 else n
    jobs = [
        (
            str(out),
            i,
            splits[0] if i < n_train else splits[1],
            seed,
            size,
            float(twin_prob),
            layout,
            "rvos",
        )
        for i in range(n)
    ]
    workers = processes.resolve_workers(workers, n, per_worker=20)
    results = processes.parallel_map(_clip_job, jobs, workers)
    stats = write_video_json(Path(out), results, layout, splits)
    n_files = sum(r["n_frames"] for r in results) * (2 if layout == "ytvos" else 1)
    n_files += 2 * len(splits)
    total = sum(s["expressions"] for s in stats.values())
    motion_only = sum(s["motion_only"] for s in stats.values())
    return {
        "n": n,
        "workers": workers,
        "layout": layout,
        "splits": stats,
        "motion_only_share": round(motion_only / total, 4) if total else 0.0,
        "files": n_files,
    }
