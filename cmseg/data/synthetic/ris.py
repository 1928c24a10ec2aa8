"""Synthetic referring image segmentation in the REFER (RefCOCO) layout, with the sentence grammar.

Layout written (reference/cmpc_refseg.md §4)::

    <out>/refcoco/refs(unc).p        pickle (protocol 2) of a list of ref dicts
    <out>/refcoco/instances.json     COCO: images, annotations (polygons), categories
    <out>/images/train2014/COCO_train2014_<image_id:012d>.jpg
    <out>/cmseg_synth.json           what was generated

* A ref dict has exactly the REFER keys: ``ref_id``, ``ann_id``, ``image_id``, ``split``
  (``train``/``val``/``testA``/``testB``), ``sentences`` (a list of ``{"tokens", "raw",
  "sent_id", "sent"}``), ``file_name``, ``category_id``, ``sent_ids``. ``sent`` is the lower-case
  normalised sentence and ``tokens`` its words; ``raw`` is the sentence as "typed" (sometimes
  capitalised, sometimes with a final period). ``file_name`` follows RefCOCO's
  ``COCO_train2014_<image_id:012d>_<ann_id>.jpg`` (REFER says to ignore it). The pickle holds
  only lists, dicts, str and int, so a restricted unpickler reads it.
* ``instances.json``: ``images`` ``[{id, file_name, height, width}]``; ``annotations``
  ``[{id, image_id, category_id, segmentation, area, bbox, iscrowd}]`` with ``segmentation``
  a polygon list ``[[x1, y1, x2, y2, ...]]`` as in RefCOCO (``iscrowd`` 0; ``area`` and
  ``bbox`` ``[x, y, w, h]`` are pycocotools' values for that polygon); ``categories``
  ``[{id, name, supercategory: "shape"}]`` for all twelve shape classes (ids 1..12, the order of
  :data:`~cmseg.data.synthetic.draw.SHAPES`, shared by every task).
* Every image, whatever its split, is under ``images/train2014`` as in RefCOCO. The REFER
  toolkit's default image folder is ``images/mscoco/images/train2014``; point a reader at
  ``<out>/images/train2014``.
* Ids: ``image_id`` = image index + 1; ``ann_id`` = ``image_id * 10 + j`` for its ``j``-th
  object (at most 6); ``ref_id`` and ``sent_id`` count from 0 in image order.
* Splits are by image (as in RefCOCO unc): image index mod 10 in 0-6 -> ``train``, 7 -> ``val``,
  8 -> ``testA``, 9 -> ``testB``. RefCOCO's testA holds people and testB other objects; here the
  two test splits are drawn alike.

The objects are drawn exactly as their polygons decode (the mask pycocotools gives for the
polygon is the mask painted), so the image and the annotation agree to the pixel.

**Scenes.** 3-6 objects, pairwise apart (no occlusion), on a low-saturation cluttered
background. Attributes: shape (8 classes: circle, square, triangle, star, arrow, diamond,
cross, heart), colour (red, green, blue, yellow, purple, orange, white: flat colour with light
shading), size (``small``: radius 8.4-11.2% of the side, ``big``: 15.4-19.6%; when the objects
do not fit apart they are all shrunk alike, so a big one stays bigger than a small one). The
shapes are told apart at the demo's 128 px: a small hexagon there differs from a circle by
under a pixel, so the arrow takes its place. Each image draws its
objects from 2-3 shapes and 2-3 colours, so most objects need two or three words. With
probability ``twin_prob`` an image holds a **twin pair**: two objects identical in shape, colour
and size, which only a spatial relation can tell apart.

**Sentences** (:mod:`.ris_grammar`, whose names are re-exported here)::

    S    -> NP | NP REL NP' | NP "that is" REL NP'      NP -> [SIZE] [COLOUR] SHAPE

Every sentence names exactly its referent, by its attributes or by a spatial relation to a
uniquely described anchor. A sentence is **relation-only** when the referent's full description
(size, colour and shape) matches another object too: no attribute sentence can name it.

:func:`parse_sentence` and :func:`resolve` read sentences back; :func:`difficulty` scores the
"colour and shape words alone" baseline against the full resolver from the files on disk.
"""

from __future__ import annotations

import json
import math
import pickle
import warnings
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from pycocotools import mask as mask_utils

from cmseg.data.synthetic import draw, files, processes
from cmseg.data.synthetic.ris_grammar import FALSE_MARGIN as FALSE_MARGIN
from cmseg.data.synthetic.ris_grammar import (
    RELATIONS,
    RIS_COLOURS,
    RIS_SHAPES,
    SIZE_WORDS,
    Obj,
    matches,
    parse_sentence,
    refs_for_image,
    relation,
    resolve,
)
from cmseg.data.synthetic.ris_grammar import TRUE_MARGIN as TRUE_MARGIN
from cmseg.io import atomic_open, write_json

__all__ = [
    "RIS_SHAPES",
    "RIS_COLOURS",
    "SIZE_WORDS",
    "RELATIONS",
    "Obj",
    "relation",
    "matches",
    "make_image",
    "parse_sentence",
    "resolve",
    "write_ris",
    "difficulty",
    "relation_only_refs",
    "DEFAULT_N",
]

DEFAULT_N = 100
SPLIT_OF_DIGIT = ("train",) * 7 + ("val", "testA", "testB")
#: Radius ranges of the circumscribed circle, as a share of the side. Big enough that a small
#: object spans 2-3 cells of a stride-8 map at 128 px (CMPC's resolution in the demo).
RADII = {"small": (0.084, 0.112), "big": (0.154, 0.196)}


# --------------------------------------------------------------------------------------------
# Images


def _plan_objects(rng: np.random.Generator, twin_prob: float) -> list[tuple[str, str, str]]:
    """``(shape, colour, size)`` of 3-6 objects drawn from 2-3 shapes and 2-3 colours; the
    second copies the first (a twin pair) with probability ``twin_prob``."""
    k = int(rng.integers(3, 7))
    shapes = list(rng.choice(RIS_SHAPES, size=int(rng.integers(2, 4)), replace=False))
    colours = list(rng.choice(RIS_COLOURS, size=int(rng.integers(2, 4)), replace=False))
    attrs = []
    for _ in range(k):
        attrs.append(
            (
                str(shapes[int(rng.integers(len(shapes)))]),
                str(colours[int(rng.integers(len(colours)))]),
                "small" if rng.random() < 0.5 else "big",
            )
        )
    if rng.random() < twin_prob:
        attrs[1] = attrs[0]
    return attrs


def _decode(rle: dict[str, Any]) -> np.ndarray:
    """pycocotools' decode as ``bool`` (its numpy-2 ``copy=`` DeprecationWarning silenced)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return mask_utils.decode(rle).astype(bool)


def _polygon_mask(poly: list[float], s: int) -> tuple[np.ndarray, list[float], float]:
    """Rasterise a flat polygon in an ``s x s`` image as pycocotools does: ``(mask, bbox,
    area)``, so the painted object and its annotation agree to the pixel."""
    rle = mask_utils.merge(mask_utils.frPyObjects([poly], s, s))
    mask = _decode(rle)
    bbox = [float(v) for v in mask_utils.toBbox(rle)]
    return mask, bbox, float(mask_utils.area(rle))


def make_image(
    rng: np.random.Generator, size: int, twin_prob: float
) -> tuple[np.ndarray, list[dict[str, Any]]]:
    """Draw one image and its objects.

    Returns:
        ``(rgb, objects)``; each object a dict: ``shape``, ``colour``, ``size``, ``polygon``
        (flat ``[x1, y1, ...]``), ``bbox`` and ``area`` (pycocotools'), and ``x``, ``y`` (box
        centre, what the relations compare).
    """
    s = size
    attrs = _plan_objects(rng, twin_prob)
    scale = 1.0
    while True:
        radii = np.array([rng.uniform(*RADII[a[2]]) for a in attrs]) * s * scale
        centres = draw.place_discs(rng, radii, s, gap=0.04 * s)
        if centres is not None:
            break
        scale *= 0.95
    rgb = draw.background(
        rng, s, s, clutter=int(rng.integers(3, 7)), sat=(0.0, 0.25), val=(0.3, 0.7)
    )
    objects = []
    for (shape, colour, size_word), r, (cx, cy) in zip(attrs, radii, centres, strict=True):
        angle = float(rng.uniform(-0.35, 0.35))
        poly = [round(float(v), 2) for v in draw.shape_polygon(shape, cx, cy, r, angle).ravel()]
        mask, bbox, area = _polygon_mask(poly, s)
        c1 = draw.named_colour(rng, colour)
        c2 = c1 * np.float32(rng.uniform(0.75, 0.9))
        x0, y0 = int(bbox[0]), int(bbox[1])
        x1, y1 = int(math.ceil(bbox[0] + bbox[2])), int(math.ceil(bbox[1] + bbox[3]))
        tex = draw.value_noise(rng, y1 - y0, x1 - x0, cell=max(4.0, r / 2), octaves=1)
        draw.paste(rgb, draw.colourise(tex, c1, c2), mask[y0:y1, x0:x1], (x0, y0))
        objects.append(
            {
                "shape": shape, "colour": colour, "size": size_word, "polygon": poly,
                "bbox": bbox, "area": area, "x": bbox[0] + bbox[2] / 2, "y": bbox[1] + bbox[3] / 2,
            }
        )  # fmt: skip
    rgb = cv2.GaussianBlur(rgb, (3, 3), 0.5)
    return rgb, objects


def _image_job(job: tuple[Any, ...]) -> dict[str, Any]:
    """Draw, write and describe image ``index`` (one job of :func:`write_ris`): its objects and
    refs, from the image's own generator."""
    out, index, seed, size, twin_prob = job
    rng = draw.item_rng(seed, "ris", index)
    rgb, objects = make_image(rng, size, twin_prob)
    image_id = index + 1
    files.write_jpeg(Path(out) / "images" / "train2014" / _file_name(image_id), rgb)
    objs = [Obj(o["shape"], o["colour"], o["size"], o["x"], o["y"]) for o in objects]
    return {"image_id": image_id, "objects": objects, "refs": refs_for_image(objs, size, rng)}


def _file_name(image_id: int) -> str:
    """The image's file name under ``images/train2014`` (RefCOCO's)."""
    return f"COCO_train2014_{image_id:012d}.jpg"


# --------------------------------------------------------------------------------------------
# Writing the REFER files


def write_ris(
    out: Path,
    n: int | None = None,
    size: int = 256,
    seed: int = 0,
    *,
    twin_prob: float = 0.6,
    workers: int | None = None,
) -> dict[str, Any]:
    """Write ``n`` images (default 100) with refs in the REFER layout.

    Args:
        twin_prob: probability that an image holds a twin pair (identical shape, colour and
            size), the source of relation-only sentences.
        workers: processes (default: up to the CPU count for large jobs).

    Returns:
        images/refs/sentences per split and the share of relation-only sentences.
    """
    n = DEFAULT_N if n is None else n
    if not 0.0 <= twin_prob <= 1.0:
        raise ValueError(f"twin_prob must be in [0, 1], got {twin_prob!r}")
    jobs = [(str(out), i, seed, size, float(twin_prob)) for i in range(n)]
    workers = processes.resolve_workers(workers, n, per_worker=200)
    results = processes.parallel_map(_image_job, jobs, workers)

    instances, refs, stats = _refer_records(results, size)
    root = Path(out) / "refcoco"
    write_json(root / "instances.json", instances, indent=None)
    with atomic_open(root / "refs(unc).p", "wb") as handle:
        pickle.dump(refs, handle, protocol=2)
    total = sum(v["sentences"] for v in stats.values())
    rel_only = sum(v["relation_only"] for v in stats.values())
    return {
        "n": n,
        "workers": workers,
        "splits": stats,
        "refs": len(refs),
        "sentences": total,
        "relation_only_sentences": rel_only,
        "relation_only_share": round(rel_only / total, 4) if total else 0.0,
        "files": n + 2,
    }


def _refer_records(
    results: list[dict[str, Any]], size: int
) -> tuple[dict[str, Any], list[dict[str, Any]], dict[str, dict[str, int]]]:
    """``instances.json``, the refs pickle's list and per-split counts from the images' jobs.

    Ids follow the module docstring: ``ann_id = image_id * 10 + j``; ``ref_id`` and
    ``sent_id`` count from 0 in image order.
    """
    images, annotations, refs = [], [], []
    sent_id = 0
    stats = {s: {"images": 0, "refs": 0, "sentences": 0, "relation_only": 0} for s in
             ("train", "val", "testA", "testB")}  # fmt: skip
    for res in results:
        image_id = res["image_id"]
        split = SPLIT_OF_DIGIT[(image_id - 1) % 10]
        stats[split]["images"] += 1
        images.append({"id": image_id, "file_name": _file_name(image_id), "height": size,
                       "width": size})  # fmt: skip
        annotations.extend(_annotations(image_id, res["objects"]))
        for ref in res["refs"]:
            record = _ref_record(ref, res, split, ref_id=len(refs), first_sent_id=sent_id)
            sent_id += len(record["sentences"])
            stats[split]["relation_only"] += sum(int(s["relation_only"]) for s in ref["sentences"])
            stats[split]["refs"] += 1
            stats[split]["sentences"] += len(record["sentences"])
            refs.append(record)
    categories = [
        {"id": i + 1, "name": name, "supercategory": "shape"} for i, name in enumerate(draw.SHAPES)
    ]
    instances = {"images": images, "annotations": annotations, "categories": categories}
    return instances, refs, stats


def _annotations(image_id: int, objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The COCO annotations of one image's objects (polygon, pycocotools' area and box)."""
    return [
        {
            "id": image_id * 10 + j,
            "image_id": image_id,
            "category_id": draw.SHAPES.index(o["shape"]) + 1,
            "segmentation": [o["polygon"]],
            "area": o["area"],
            "bbox": o["bbox"],
            "iscrowd": 0,
        }
        for j, o in enumerate(objects)
    ]


def _ref_record(
    ref: dict[str, Any], res: dict[str, Any], split: str, *, ref_id: int, first_sent_id: int
) -> dict[str, Any]:
    """One REFER ref dict (exactly the REFER keys) for a ref of an image's job ``res``; its
    sentences get consecutive ids from ``first_sent_id``."""
    image_id = res["image_id"]
    ann_id = image_id * 10 + ref["obj"]
    sentences = [
        {"tokens": s["sent"].split(), "raw": s["raw"], "sent_id": first_sent_id + k,
         "sent": s["sent"]}
        for k, s in enumerate(ref["sentences"])
    ]  # fmt: skip
    return {
        "ref_id": ref_id,
        "ann_id": ann_id,
        "image_id": image_id,
        "split": split,
        "sentences": sentences,
        "file_name": f"COCO_train2014_{image_id:012d}_{ann_id}.jpg",
        "category_id": draw.SHAPES.index(res["objects"][ref["obj"]]["shape"]) + 1,
        "sent_ids": [s["sent_id"] for s in sentences],
    }


# --------------------------------------------------------------------------------------------
# Reading the files back


def _colour_name(rgb: np.ndarray) -> str:
    """The named colour (of :data:`RIS_COLOURS`) nearest to an RGB value."""
    palette = np.array([draw.COLOURS[c] for c in RIS_COLOURS], dtype=np.float32)
    return RIS_COLOURS[int(np.argmin(((palette - rgb.astype(np.float32)) ** 2).sum(axis=1)))]


def _unit_area(shape: str) -> float:
    """Area of the polygon of ``shape`` at radius 1 (what size words are judged against)."""
    return float(cv2.contourArea(draw.shape_polygon(shape, 0.0, 0.0, 1.0).astype(np.float32)))


class _PlainUnpickler(pickle.Unpickler):
    """Reads pickles of builtin containers and scalars only: any class or function reference
    (the way a pickle runs code) is refused (DESIGN §6)."""

    def find_class(self, module: str, name: str) -> Any:
        raise pickle.UnpicklingError(f"refs pickle references {module}.{name}; refused")


def load_scenes(root: Path) -> tuple[dict[int, list[tuple[int, Obj]]], list[dict[str, Any]], int]:
    """Objects of every image re-derived from the files alone (a check of what is on disk).

    Shape from the category, size from the area relative to the shape's unit area, colour from
    the median pixel inside the (eroded) mask, position from the box centre.

    Returns:
        ``({image_id: [(ann_id, Obj), ...]}, refs, side)``.
    """
    root = Path(root)
    inst = json.loads((root / "refcoco" / "instances.json").read_text())
    with open(root / "refcoco" / "refs(unc).p", "rb") as handle:
        refs = _PlainUnpickler(handle).load()
    cats = {c["id"]: c["name"] for c in inst["categories"]}
    imgs = {im["id"]: im for im in inst["images"]}
    side = int(inst["images"][0]["width"]) if inst["images"] else 0
    scenes: dict[int, list[tuple[int, Obj]]] = {}
    cache: dict[int, np.ndarray] = {}
    kernel = np.ones((3, 3), np.uint8)
    for ann in inst["annotations"]:
        im = imgs[ann["image_id"]]
        if im["id"] not in cache:
            bgr = cv2.imread(str(root / "images" / "train2014" / im["file_name"]))
            cache[im["id"]] = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        rgb = cache[im["id"]]
        rle = mask_utils.merge(
            mask_utils.frPyObjects(ann["segmentation"], im["height"], im["width"])
        )
        mask = cv2.erode(_decode(rle).view(np.uint8), kernel).astype(bool)
        shape = cats[ann["category_id"]]
        radius = math.sqrt(ann["area"] / _unit_area(shape)) / side
        size = "small" if radius < (RADII["small"][1] + RADII["big"][0]) / 2 else "big"
        colour = _colour_name(np.median(rgb[mask], axis=0))
        x, y, w, h = ann["bbox"]
        scenes.setdefault(im["id"], []).append(
            (ann["id"], Obj(shape, colour, size, x + w / 2, y + h / 2))
        )
    return scenes, refs, side


def _relation_only(objs: list[Obj], target: int) -> bool:
    """Whether another object has the referent's full description (size, colour, shape)."""
    desc = objs[target]
    return sum(matches(o, desc.shape, desc.colour, desc.size) for o in objs) > 1


def relation_only_refs(root: Path) -> set[int]:
    """``ref_id`` of every ref whose sentences only a spatial relation resolves (its referent's
    size, colour and shape fit another object too), derived from the files on disk."""
    scenes, refs, _ = load_scenes(root)
    out = set()
    for ref in refs:
        entries = scenes[ref["image_id"]]
        target = [a for a, _ in entries].index(ref["ann_id"])
        if _relation_only([o for _, o in entries], target):
            out.add(int(ref["ref_id"]))
    return out


#: Per relation, the coordinate to minimise to find the object furthest in its direction.
_FURTHEST: dict[str, Any] = {
    "left": lambda o: o.x,
    "right": lambda o: -o.x,
    "above": lambda o: o.y,
    "below": lambda o: -o.y,
}


def _furthest(parsed: dict[str, Any], objs: list[Obj]) -> int | None:
    """The "relation word without its anchor" reader of :func:`difficulty`: among the objects
    that fit the head words, the first one (no relation) or the one furthest in the
    relation's direction; None when nothing fits."""
    head = [i for i, o in enumerate(objs) if matches(o, *parsed["head"])]
    if not head:
        return None
    if parsed["rel"] is None:
        return head[0]
    return min(head, key=lambda i: _FURTHEST[parsed["rel"]](objs[i]))


def difficulty(root: Path) -> dict[str, Any]:
    """Score two readers of the sentences against the annotations on disk.

    * ``full``: the grammar resolver with relations (:func:`resolve`): the share of sentences
      that resolve to exactly their referent;
    * ``colour_shape``: "colour and shape words alone": among the objects whose shape and colour
      fit the sentence's head words, the first one in annotation order.
    * ``relation_word``: "the relation word without its anchor": among the objects that fit
      the head words, the one furthest in the relation's direction (the leftmost for "left of",
      ...). It resolves every valid relational sentence, because the relations are monotone:
      when "A left of C" is true and "B left of C" false, A is left of B whatever C is. A
      model can thus answer the relation-only sentences without locating the anchor.

    Returns:
        accuracies overall and on the relation-only sentences, and how many of those the
        colour-and-shape reader finds ambiguous (several candidates).
    """
    scenes, refs, side = load_scenes(root)
    counts = {"sentences": 0, "full_correct": 0, "cs_correct": 0, "rw_correct": 0,
              "relation_only": 0, "ro_full_correct": 0, "ro_cs_correct": 0,
              "ro_cs_ambiguous": 0, "ro_rw_correct": 0}  # fmt: skip
    for ref in refs:
        entries = scenes[ref["image_id"]]
        objs = [o for _, o in entries]
        target = [a for a, _ in entries].index(ref["ann_id"])
        rel_only = _relation_only(objs, target)
        for s in ref["sentences"]:
            parsed = parse_sentence(s["sent"])
            full = resolve(parsed, objs, side)
            shape, colour, _ = parsed["head"]
            cs = [i for i, o in enumerate(objs) if matches(o, shape, colour, None)]
            rw = _furthest(parsed, objs)
            counts["sentences"] += 1
            counts["full_correct"] += int(full == [target])
            counts["cs_correct"] += int(bool(cs) and cs[0] == target)
            counts["rw_correct"] += int(rw == target)
            if rel_only:
                counts["relation_only"] += 1
                counts["ro_full_correct"] += int(full == [target])
                counts["ro_cs_correct"] += int(bool(cs) and cs[0] == target)
                counts["ro_cs_ambiguous"] += int(len(cs) > 1)
                counts["ro_rw_correct"] += int(rw == target)
    n, r = counts["sentences"], counts["relation_only"]
    return {
        **counts,
        "full_accuracy": counts["full_correct"] / n if n else float("nan"),
        "colour_shape_accuracy": counts["cs_correct"] / n if n else float("nan"),
        "relation_word_accuracy": counts["rw_correct"] / n if n else float("nan"),
        "relation_only_full_accuracy": counts["ro_full_correct"] / r if r else float("nan"),
        "relation_only_colour_shape_accuracy": counts["ro_cs_correct"] / r if r else float("nan"),
        "relation_only_relation_word_accuracy": counts["ro_rw_correct"] / r if r else float("nan"),
        "relation_only_share": r / n if n else float("nan"),
    }
