"""A2D-Sentences / JHMDB-Sentences evaluation, the MTTR -> ReferFormer -> SOC protocol.

Ground truth is a COCO-format dict (or JSON file): one image per (video, frame, referred
instance) and exactly one annotation per image with an RLE mask. Predictions are a COCO result
list ``[{"image_id", "category_id", "segmentation": RLE, "score"}, ...]``, usually every query
of the model for every image.

* mAP@[.5:.95], AP50, AP75, AP_S/M/L: pycocotools ``COCOeval(iouType="segm")`` with
  ``params.useCats = 0`` over all submitted predictions (reference: metrics_anchors.md 4.3).
* P@0.5..0.9, oIoU, mIoU: only the highest-scoring prediction per image, IoU =
  (I + 1e-6) / (U + 1e-6) in float32 and strict ``>`` (the "mttr" convention of
  :mod:`cmseg.metrics.masks`).

Every RLE is validated before pycocotools sees it: a counts string whose runs do not add up
to H*W makes pycocotools read uninitialised memory instead of failing.
"""

from __future__ import annotations

import contextlib
import copy
import io
import math
import os
from collections.abc import Iterable, Mapping
from numbers import Real
from typing import Any

import numpy as np
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from cmseg.errors import InputError
from cmseg.io import read_json
from cmseg.metrics.masks import PREC_THRESHOLDS, ris_iou, ris_scores, to_bool_mask

AP_KEYS: tuple[str, ...] = ("mAP", "AP50", "AP75", "AP_S", "AP_M", "AP_L")
"""compute() keys filled from ``COCOeval.stats[:6]``, in that order."""

PathLike = str | os.PathLike[str]


class _SchemaError(ValueError):
    """Bad content; becomes InputError(path, reason) when the content came from a file."""


# --------------------------------------------------------------------------------------------
# RLE helpers


def encode_rle(mask: Any) -> dict[str, Any]:
    """Encode a binary mask as a compressed COCO RLE that survives ``json.dumps``.

    Args:
        mask: (H, W) binary mask (bool, 0/1, or uint8 0/255).

    Returns:
        {"size": [H, W], "counts": str}; pycocotools accepts it as is.
    """
    array = to_bool_mask(mask, "mask")
    rle = mask_utils.encode(np.asfortranarray(array, dtype=np.uint8))
    return {"size": [int(v) for v in rle["size"]], "counts": rle["counts"].decode("ascii")}


def decode_rle(rle: Mapping[str, Any]) -> np.ndarray:
    """Decode a COCO RLE (compressed str/bytes counts, or an uncompressed list) to a mask.

    Args:
        rle: {"size": [H, W], "counts": ...}.

    Returns:
        (H, W) bool array.

    Raises:
        ValueError: malformed RLE (bad size, bad characters, runs not adding up to H*W).
    """
    normal, runs = _parse_rle(rle)
    height, width = normal["size"]
    # Runs alternate background / foreground (background first) over the pixels in
    # column-major order, hence the reshape to (W, H) and the transpose.
    values = (np.arange(runs.size) % 2).astype(bool)
    return np.ascontiguousarray(np.repeat(values, runs).reshape(width, height).T)


def _run_lengths(counts: bytes) -> np.ndarray:
    """Run lengths of a compressed COCO counts string (vectorised; validates the encoding).

    Each run length is written as 5-bit groups, least significant first, as characters
    48 + group; bit 0x20 says another group follows and bit 0x10 of the last group is the
    sign. From the fourth run on, the value stored is the difference to the run two before.
    """
    chars = np.frombuffer(counts, dtype=np.uint8).astype(np.int64) - 48
    if chars.size == 0:
        return np.zeros(0, dtype=np.int64)
    if chars.min() < 0 or chars.max() > 63:
        raise _SchemaError("RLE counts contain characters outside '0'..'o'")
    ends = np.flatnonzero((chars & 0x20) == 0)
    if ends.size == 0 or ends[-1] != chars.size - 1:
        raise _SchemaError("RLE counts string is truncated")
    starts = np.concatenate(([0], ends[:-1] + 1))
    position = np.arange(chars.size) - np.repeat(starts, ends - starts + 1)
    if position.max() > 7:  # over 8 groups (40 bits) is no uint32 run; keeps shifts in int64
        raise _SchemaError("RLE counts hold a run length that is too large")
    values = np.add.reduceat((chars & 0x1F) << (5 * position), starts)
    negative = (chars[ends] & 0x10) != 0
    values[negative] -= np.left_shift(1, 5 * (position[ends][negative] + 1))
    runs = values.copy()
    runs[1::2] = np.cumsum(values[1::2])  # undo the delta coding, odd runs
    runs[2::2] = np.cumsum(values[2::2])  # even runs from the third on
    return runs


def _normalise_rle(rle: Any) -> dict[str, Any]:
    """Validate an RLE and return {"size": [H, W], "counts": compressed str}."""
    return _parse_rle(rle)[0]


def _parse_rle(rle: Any) -> tuple[dict[str, Any], np.ndarray]:
    """Validate an RLE; return ({"size": [H, W], "counts": compressed str}, run lengths)."""
    if not isinstance(rle, Mapping) or "size" not in rle or "counts" not in rle:
        raise _SchemaError("segmentation must be an RLE object with 'size' and 'counts'")
    size = rle["size"]
    if (
        not isinstance(size, (list, tuple))
        or len(size) != 2
        or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in size)
    ):
        raise _SchemaError(f"RLE size must be [height, width] positive integers, got {size!r}")
    height, width = int(size[0]), int(size[1])
    counts = rle["counts"]
    if isinstance(counts, list):
        runs = _uncompressed_runs(counts)
        _check_runs(runs, height, width)
        compressed = mask_utils.frPyObjects(
            {"size": [height, width], "counts": counts}, height, width
        )
        return {"size": [height, width], "counts": compressed["counts"].decode("ascii")}, runs
    if isinstance(counts, str):
        try:
            counts = counts.encode("ascii")
        except UnicodeEncodeError:
            raise _SchemaError("RLE counts contain non-ASCII characters") from None
    if not isinstance(counts, bytes):
        raise _SchemaError("RLE counts must be a string or a list of integers")
    runs = _run_lengths(counts)
    _check_runs(runs, height, width)
    return {"size": [height, width], "counts": counts.decode("ascii")}, runs


def _uncompressed_runs(counts: list[Any]) -> np.ndarray:
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in counts):
        raise _SchemaError("uncompressed RLE counts must be integers")
    return np.asarray(counts, dtype=np.int64)


def _check_runs(runs: np.ndarray, height: int, width: int) -> None:
    if runs.size and runs.min() < 0:
        raise _SchemaError("RLE counts decode to a negative run length")
    if int(runs.sum()) != height * width:
        raise _SchemaError(
            f"RLE runs cover {int(runs.sum())} pixels but size {height}x{width} has {height * width}"
        )


def _bytes_rle(rle: Mapping[str, Any]) -> dict[str, Any]:
    # pycocotools' C functions take the counts as bytes; cmseg keeps them as str (JSON-safe).
    return {"size": rle["size"], "counts": rle["counts"].encode("ascii")}


def _rle_area(rle: Mapping[str, Any]) -> int:
    return int(mask_utils.area(_bytes_rle(rle)))


def _rle_intersection_union(a: dict[str, Any], b: dict[str, Any]) -> tuple[int, int]:
    """|a & b| and |a | b| of two validated, same-size RLEs, without decoding them."""
    inter = mask_utils.area(mask_utils.merge([a, b], intersect=True))
    union = mask_utils.area(mask_utils.merge([a, b], intersect=False))
    return int(inter), int(union)


# --------------------------------------------------------------------------------------------
# Loading and validating ground truth and results


def _is_id(value: Any) -> bool:
    return isinstance(value, (int, str)) and not isinstance(value, bool)


def _normalise_gt(data: Any) -> dict[str, Any]:
    """Validate a GT dict; return a new COCO dataset dict with every field COCOeval needs.

    Missing ``area`` (from the RLE), ``iscrowd`` (0), annotation ``id`` (position + 1),
    ``category_id`` (1) and ``categories`` (from the annotations) are filled in.
    """
    if not isinstance(data, Mapping):
        raise _SchemaError("ground truth must be a JSON object with 'images' and 'annotations'")
    images, annotations = data.get("images"), data.get("annotations")
    if not isinstance(images, list) or not isinstance(annotations, list):
        raise _SchemaError("ground truth needs 'images' and 'annotations' lists")
    if not images:
        raise _SchemaError("ground truth has no images")
    image_by_id: dict[Any, dict[str, Any]] = {}
    for index, image in enumerate(images):
        if not isinstance(image, Mapping) or not _is_id(image.get("id")):
            raise _SchemaError(f"image {index}: needs an integer or string 'id'")
        if image["id"] in image_by_id:
            raise _SchemaError(f"image {index}: duplicate id {image['id']!r}")
        image_by_id[image["id"]] = dict(image)
    anns = [
        _normalise_gt_annotation(index, ann, image_by_id) for index, ann in enumerate(annotations)
    ]
    _check_one_annotation_per_image(anns, image_by_id)
    categories = data.get("categories")
    if categories is None:
        categories = [{"id": c} for c in sorted({ann["category_id"] for ann in anns})]
    if not isinstance(categories, list) or not all(
        isinstance(c, Mapping) and _is_id(c.get("id")) for c in categories
    ):
        raise _SchemaError("'categories' must be a list of objects with an 'id'")
    known = {c["id"] for c in categories}
    for index, ann in enumerate(anns):
        if ann["category_id"] not in known:
            raise _SchemaError(
                f"annotation {index}: category_id {ann['category_id']!r} not in 'categories'"
            )
    return {
        "images": list(image_by_id.values()),
        "annotations": anns,
        "categories": [dict(c) for c in categories],
    }


def _normalise_gt_annotation(
    index: int, ann: Any, image_by_id: Mapping[Any, Any]
) -> dict[str, Any]:
    if not isinstance(ann, Mapping):
        raise _SchemaError(f"annotation {index}: must be an object")
    if not _is_id(ann.get("image_id")) or ann["image_id"] not in image_by_id:
        raise _SchemaError(
            f"annotation {index}: image_id {ann.get('image_id')!r} is not an image id"
        )
    try:
        rle = _normalise_rle(ann.get("segmentation"))
    except _SchemaError as err:
        raise _SchemaError(f"annotation {index}: {err}") from None
    image = image_by_id[ann["image_id"]]
    # pycocotools reads the mask size from the image entry, so fill it in when absent.
    image.setdefault("height", rle["size"][0])
    image.setdefault("width", rle["size"][1])
    if [image["height"], image["width"]] != rle["size"]:
        raise _SchemaError(
            f"annotation {index}: RLE size {rle['size']} differs from its image's height/width"
        )
    out = dict(ann)
    out["segmentation"] = rle
    out.setdefault("id", index + 1)
    out.setdefault("iscrowd", 0)
    out.setdefault("category_id", 1)
    if not _is_id(out["id"]) or not _is_id(out["category_id"]):
        raise _SchemaError(
            f"annotation {index}: 'id' and 'category_id' must be integers or strings"
        )
    if "area" not in out:
        out["area"] = _rle_area(rle)
    if not isinstance(out["area"], Real) or isinstance(out["area"], bool) or out["area"] < 0:
        raise _SchemaError(f"annotation {index}: area must be a non-negative number")
    return out


def _check_one_annotation_per_image(
    anns: list[dict[str, Any]], image_by_id: Mapping[Any, Any]
) -> None:
    # The protocol has exactly one referred object per image; P@K/IoU would silently use the
    # first annotation otherwise.
    seen: set[Any] = set()
    ann_ids: set[Any] = set()
    for index, ann in enumerate(anns):
        if ann["image_id"] in seen:
            raise _SchemaError(
                f"annotation {index}: image {ann['image_id']!r} has more than one annotation"
            )
        if ann["id"] in ann_ids:
            raise _SchemaError(f"annotation {index}: duplicate annotation id {ann['id']!r}")
        seen.add(ann["image_id"])
        ann_ids.add(ann["id"])
    missing = [image_id for image_id in image_by_id if image_id not in seen]
    if missing:
        raise _SchemaError(
            f"image {missing[0]!r} has no annotation ({len(missing)} images without one)"
        )


def load_gt(source: Mapping[str, Any] | PathLike) -> dict[str, Any]:
    """Load and validate A2D/JHMDB-Sentences ground truth in COCO format.

    Args:
        source: the parsed dict, or the path of the JSON file.

    Returns:
        A new, validated COCO dataset dict (fields COCOeval needs filled in).

    Raises:
        InputError: ``source`` is a path and the file is unreadable, not JSON, or wrong.
        ValueError: ``source`` is a dict with the wrong schema.
    """
    if isinstance(source, Mapping):
        return _normalise_gt(source)
    data = read_json(source)
    try:
        return _normalise_gt(data)
    except _SchemaError as err:
        raise InputError(source, str(err)) from None


def load_results(path: PathLike) -> list[Any]:
    """Read a COCO result JSON file (a list); entries are validated by ``A2DEvaluator.update``.

    Raises:
        InputError: unreadable, not JSON, or not a JSON list.
    """
    data = read_json(path)
    if not isinstance(data, list):
        raise InputError(path, "results must be a JSON list of {image_id, segmentation, score}")
    return data


# --------------------------------------------------------------------------------------------
# Evaluator


class A2DEvaluator:
    """mAP (pycocotools, all predictions) plus top-1 P@K / oIoU / mIoU, as MTTR reports them.

    Departures from MTTR's script, all on inputs where it would crash or silently mislead:

    * An image without any prediction counts as an empty predicted mask for P@K and IoU
      (I = 0, U = |G|, so its IoU is 1e-6 / (|G| + 1e-6), i.e. 0 for a non-empty target);
      MTTR raises IndexError there. For mAP its target is simply never matched.
    * Predictions whose ``category_id`` is not a GT category are refused: with useCats = 0
      pycocotools would drop them without a word. A missing ``category_id`` gets the first
      GT category (categories are ignored anyway).
    * RLEs, image ids and mask sizes are validated.

    Kept from MTTR: top-1 ties go to the prediction submitted last (``sorted(...)[-1]``);
    COCOeval ranks equal scores in submission order, so merge shards in a fixed order.
    AP_S/M/L are -1.0 (pycocotools' "undefined") when no target falls in that area range.
    """

    def __init__(self, gt: Mapping[str, Any] | PathLike) -> None:
        """Args: gt: ground-truth dict or JSON path (see :func:`load_gt`)."""
        self._gt = load_gt(gt)
        self._gt_rle = {ann["image_id"]: ann["segmentation"] for ann in self._gt["annotations"]}
        self._image_ids = [image["id"] for image in self._gt["images"]]
        self._category_ids = [c["id"] for c in self._gt["categories"]]
        self.reset()

    def reset(self) -> None:
        """Forget every prediction (the ground truth stays)."""
        self._results: list[dict[str, Any]] = []

    def __len__(self) -> int:
        return len(self._results)

    def update(self, results: Iterable[Mapping[str, Any]] | PathLike) -> None:
        """Add COCO-style predictions.

        Args:
            results: iterable of {"image_id", "segmentation": RLE, "score", "category_id"
                (optional)}, or the path of a JSON file holding such a list.

        Raises:
            InputError: ``results`` is a path and the file or one of its entries is bad.
            ValueError: an entry of an in-memory list is bad (nothing is added then).
        """
        if isinstance(results, (str, os.PathLike)):
            entries = load_results(results)
            try:
                self._results.extend(self._validated(entries))
            except _SchemaError as err:
                raise InputError(results, str(err)) from None
            return
        self._results.extend(self._validated(results))

    def update_masks(
        self, image_id: int | str, masks: Any, scores: Any, category_id: int | str | None = None
    ) -> None:
        """Add every query's mask for one image.

        Args:
            image_id: a GT image id.
            masks: (N, H, W) binary masks, or one (H, W) mask.
            scores: (N,) scores (any real values; only their order matters).
            category_id: optional; defaults to the first GT category.
        """
        stack = np.asarray(masks)
        if stack.ndim == 2:
            stack = stack[None]
        score_list = np.atleast_1d(np.asarray(scores, dtype=np.float64)).tolist()
        if stack.ndim != 3 or len(score_list) != stack.shape[0]:
            raise ValueError("masks must be (N, H, W) with one score per mask")
        entries = []
        for mask, score in zip(stack, score_list, strict=True):
            entry = {"image_id": image_id, "segmentation": encode_rle(mask), "score": score}
            if category_id is not None:
                entry["category_id"] = category_id
            entries.append(entry)
        self.update(entries)

    def _validated(self, entries: Iterable[Any]) -> list[dict[str, Any]]:
        return [self._validated_entry(index, entry) for index, entry in enumerate(entries)]

    def _validated_entry(self, index: int, entry: Any) -> dict[str, Any]:
        if not isinstance(entry, Mapping):
            raise _SchemaError(f"result {index}: must be an object")
        image_id = entry.get("image_id")
        if not _is_id(image_id) or image_id not in self._gt_rle:
            raise _SchemaError(f"result {index}: image_id {image_id!r} is not a ground-truth image")
        score = entry.get("score")
        if not isinstance(score, Real) or isinstance(score, bool) or not math.isfinite(score):
            raise _SchemaError(f"result {index}: score must be a finite number, got {score!r}")
        category_id = entry.get("category_id", self._category_ids[0])
        if category_id not in self._category_ids:
            raise _SchemaError(
                f"result {index}: category_id {category_id!r} is not a ground-truth category"
            )
        try:
            rle = _normalise_rle(entry.get("segmentation"))
        except _SchemaError as err:
            raise _SchemaError(f"result {index}: {err}") from None
        expected = self._gt_rle[image_id]["size"]
        if rle["size"] != expected:
            raise _SchemaError(
                f"result {index}: mask size {rle['size']} but ground truth is {expected}"
            )
        return {
            "image_id": image_id,
            "category_id": category_id,
            "segmentation": rle,
            "score": float(score),
        }

    def merge(self, other: A2DEvaluator) -> None:
        """Append the predictions of ``other`` (same ground truth) after this one's."""
        if not isinstance(other, A2DEvaluator) or other._image_ids != self._image_ids:
            raise ValueError("can only merge an A2DEvaluator built on the same ground truth")
        self._results.extend(other._results)

    def compute(self) -> dict[str, float]:
        """Run the protocol on every prediction added so far.

        Returns:
            {"mAP", "AP50", "AP75", "AP_S", "AP_M", "AP_L", "oIoU", "mIoU", "P@0.5", ...,
            "P@0.9", "num_items", "num_missing"}: scores are Python floats in [0, 1] (AP_S/M/L
            -1.0 when undefined); num_items counts GT images, num_missing those without any
            prediction.
        """
        scores = dict(zip(AP_KEYS, self._coco_ap(), strict=True))
        items = self._top1_items()
        ris = ris_scores([i["intersection"] for i in items], [i["union"] for i in items], "mttr")
        scores["oIoU"], scores["mIoU"] = ris["oIoU"], ris["mIoU"]
        for threshold in PREC_THRESHOLDS:
            scores[f"P@{threshold}"] = ris[f"prec@{threshold}"]
        scores["num_items"] = len(items)
        scores["num_missing"] = sum(not i["has_prediction"] for i in items)
        return scores

    def per_item(self) -> list[dict[str, Any]]:
        """Top-1 prediction per GT image, in GT order: {"image_id", "has_prediction", "score"
        (None when missing), "intersection", "union", "iou"} with the mttr IoU."""
        return self._top1_items()

    def _coco_ap(self) -> list[float]:
        # pycocotools prints progress on stdout; the CLI owns stdout, so it is swallowed here.
        with contextlib.redirect_stdout(io.StringIO()):
            coco_gt = COCO()
            coco_gt.dataset = copy.deepcopy(self._gt)
            coco_gt.createIndex()
            coco_dt = self._coco_results(coco_gt)
            evaluation = COCOeval(coco_gt, coco_dt, iouType="segm")
            evaluation.params.useCats = 0  # referring: one target per image, categories ignored
            evaluation.evaluate()
            evaluation.accumulate()
            evaluation.summarize()
        return [float(v) for v in evaluation.stats[: len(AP_KEYS)]]

    def _coco_results(self, coco_gt: COCO) -> COCO:
        if self._results:
            return coco_gt.loadRes(copy.deepcopy(self._results))
        # loadRes cannot take an empty list (it reads anns[0]); an empty result set scores
        # AP 0 wherever there is a target.
        coco_dt = COCO()
        coco_dt.dataset = {
            "images": list(coco_gt.dataset["images"]),
            "annotations": [],
            "categories": copy.deepcopy(coco_gt.dataset["categories"]),
        }
        coco_dt.createIndex()
        return coco_dt

    def _top1_items(self) -> list[dict[str, Any]]:
        best: dict[Any, dict[str, Any]] = {}
        for result in self._results:
            current = best.get(result["image_id"])
            if current is None or result["score"] >= current["score"]:  # ties: last one wins
                best[result["image_id"]] = result
        items = []
        for image_id in self._image_ids:
            gt_rle = _bytes_rle(self._gt_rle[image_id])
            chosen = best.get(image_id)
            if chosen is None:  # counted as an empty predicted mask
                inter, union = 0, int(mask_utils.area(gt_rle))
            else:
                inter, union = _rle_intersection_union(_bytes_rle(chosen["segmentation"]), gt_rle)
            items.append(
                {
                    "image_id": image_id,
                    "has_prediction": chosen is not None,
                    "score": None if chosen is None else chosen["score"],
                    "intersection": inter,
                    "union": union,
                }
            )
        ious = ris_iou([i["intersection"] for i in items], [i["union"] for i in items], "mttr")
        for item, iou in zip(items, ious, strict=True):
            item["iou"] = float(iou)
        return items


def evaluate_a2d(
    gt: Mapping[str, Any] | PathLike, results: Iterable[Mapping[str, Any]] | PathLike
) -> dict[str, float]:
    """One-call A2D/JHMDB-Sentences evaluation: ``A2DEvaluator(gt)``, ``update(results)``,
    ``compute()``. Paths raise InputError on bad files."""
    evaluator = A2DEvaluator(gt)
    evaluator.update(results)
    return evaluator.compute()
