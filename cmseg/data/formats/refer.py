"""Referring image segmentation: RefCOCO/RefCOCO+/RefCOCOg (REFER), ReferIt, and JSON lines.

**REFER layout** (lichengunc/refer; reference cmpc_refseg.md §4), read by :class:`RefCOCO`::

    <root>/                                   the REFER ``data`` folder
        refcoco/   instances.json  refs(unc).p  refs(google).p
        refcoco+/  instances.json  refs(unc).p
        refcocog/  instances.json  refs(umd).p  refs(google).p
        refclef/   instances.json  refs(unc).p  refs(berkeley).p
        images/mscoco/images/train2014/COCO_train2014_000000xxxxxx.jpg
        images/saiapr_tc-12/...               (refclef)

``refs(<split_by>).p`` is a (Python 2) pickle of a list of refs ``{"ref_id", "ann_id",
"image_id", "category_id", "split", "sent_ids", "sentences": [{"sent_id", "tokens", "raw",
"sent"}], "file_name"}``; it is read with :func:`cmseg.data.safe_pickle.load_pickle`.
``instances.json`` is COCO-style (``images`` with ``file_name``/``height``/``width``,
``annotations`` with polygon or RLE ``segmentation``). All RefCOCO/+/g images, val and test
included, are COCO train2014 images. Splits are matched exactly (CMPC's ``ref['split'] ==
setname``; REFER's ``getRefIds`` also lets ``testA`` match ``testAB``). Default ``split_by``:
``unc`` for refcoco/refcoco+/refclef, ``umd`` for refcocog (the refer author's recommendation;
CMPC's "G-Ref" is ``google``). The mask of a ref is the union of its annotation's polygons
(CMPC; REFER's ``getMask`` sums them). One sample per (ref, sentence).

**ReferIt** (text_objseg's release used by CMPC/RRN; not refclef), read by :class:`ReferIt`::

    <root>/
        referit_query_trainval.json   {"<imgid>_<annid>": ["sentence", ...], ...}
        referit_query_test.json       (also looked for in <root>/data/)
        images/<imgid>.jpg
        mask/<imgid>_<annid>.mat      MATLAB file, key ``segimg_t``; foreground is ``== 0``

**JSON lines** (custom data), read by :class:`JsonlRefs`: one object per line, paths relative
to the file's folder::

    {"image": "images/a.jpg", "sentence": "the red cup", "mask": "masks/a_0.png", "id": "a_0"}
    {"image": "images/a.jpg", "sentence": "the left cup", "rle": {"size": [H, W], "counts": "..."}}

``mask`` is a binary PNG (0/255 or 0/1), ``rle`` a COCO RLE (compressed string or list
counts) whose size must be the image's; ``id`` is optional.

Sample dict (all three)::

    image     uint8 (H, W, 3)
    mask      bool (H, W)
    sentence  str
    ref_id    int | str
    sent_id   int | str
    name      str             "<ref_id>_<sent_id>" (REFER, ReferIt) or the line's id
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cmseg.data.formats import (
    CHECK_HINT,
    Problems,
    Reader,
    Transform,
    coco_segmentation_mask,
    find_child,
    load_json,
    load_mat_variable,
    missing_keys,
    require_folder,
    safe_join,
    same_size,
)
from cmseg.data.safe_pickle import load_pickle
from cmseg.errors import InputError
from cmseg.io import IMAGE_EXTENSIONS, read_image, read_mask, read_text

__all__ = [
    "DEFAULT_SPLIT_BY",
    "KNOWN_SPLITS",
    "RefCOCO",
    "ReferIt",
    "JsonlRefs",
    "ReferIndex",
    "index_refer",
    "index_referit",
    "index_jsonl",
    "read_referit_mask",
]

DEFAULT_SPLIT_BY = {"refcoco": "unc", "refcoco+": "unc", "refcocog": "umd", "refclef": "unc"}
#: Splits each release defines (reference cmpc_refseg.md §4), used only in messages.
KNOWN_SPLITS = {
    ("refcoco", "unc"): ("train", "val", "testA", "testB"),
    ("refcoco", "google"): ("train", "val", "test"),
    ("refcoco+", "unc"): ("train", "val", "testA", "testB"),
    ("refcocog", "google"): ("train", "val"),
    ("refcocog", "umd"): ("train", "val", "test"),
    ("refclef", "unc"): ("train", "val", "testA", "testB", "testC"),
    ("refclef", "berkeley"): ("train", "val", "test"),
}
_COCO_IMAGE_DIRS = ("images/mscoco/images/train2014", "images/mscoco/train2014", "images/train2014", "train2014", "coco/images/train2014")
_CLEF_IMAGE_DIRS = ("images/saiapr_tc-12", "saiapr_tc-12")


def _wrap(err: InputError, root: Path) -> InputError:
    return InputError(err.path, f"{err.reason} ({CHECK_HINT.format(task='ris', root=root)})")


# --------------------------------------------------------------------------------------------
# REFER (RefCOCO family)


@dataclass
class ReferIndex:
    dataset_dir: Path
    refs_file: Path
    instances_file: Path
    image_dir: Path | None
    refs: list[dict[str, Any]]              # of the requested split, validated
    images: dict[Any, dict[str, Any]]
    anns: dict[Any, dict[str, Any]]
    samples: list[tuple[int, int]]          # (position in refs, position in its sentences)


def refer_dataset_dir(root: Path, dataset: str) -> Path:
    """``root/<dataset>`` for a REFER data root, or ``root`` itself when it holds refs files."""
    if any(root.glob("refs(*).p")):
        return root
    folder = root / dataset
    if not folder.is_dir():
        raise InputError(root, f"no {dataset}/ folder with refs(*).p (expected the REFER data root)")
    return folder


def find_refer_image_dir(dataset_dir: Path, dataset: str) -> Path | None:
    candidates = _CLEF_IMAGE_DIRS if dataset == "refclef" else _COCO_IMAGE_DIRS
    for base in (dataset_dir.parent, dataset_dir):
        for rel in candidates:
            if (base / rel).is_dir():
                return base / rel
    return None


def index_refer(
    root: Path,
    dataset: str = "refcoco",
    split: str | None = "train",
    *,
    split_by: str | None = None,
    image_dir: Path | None = None,
    sentence_key: str = "sent",
    problems: Problems | None = None,
) -> ReferIndex:
    """Load and validate a REFER dataset; ``split=None`` keeps every split."""
    problems = problems if problems is not None else Problems(strict=True)
    root = require_folder(Path(root), "REFER data root")
    dataset_dir = refer_dataset_dir(root, dataset)
    split_by = split_by or DEFAULT_SPLIT_BY.get(dataset, "unc")
    refs_file = dataset_dir / f"refs({split_by}).p"
    if not refs_file.is_file():
        present = sorted(p.name for p in dataset_dir.glob("refs(*).p"))
        raise InputError(refs_file, f"no such file (present: {', '.join(present) or 'none'})")
    instances_file = dataset_dir / "instances.json"
    refs_raw = load_pickle(refs_file)
    if not isinstance(refs_raw, list):
        raise InputError(refs_file, f"expected a list of refs, got {type(refs_raw).__name__}")
    inst = load_json(instances_file)
    gone = missing_keys(inst, ("images", "annotations"))
    if gone:
        raise InputError(instances_file, f"lacks {', '.join(repr(k) for k in gone)}")
    images: dict[Any, dict[str, Any]] = {}
    for i, img in enumerate(inst["images"]):
        gone = missing_keys(img, ("id", "file_name", "height", "width"))
        if gone:
            problems.add(instances_file, f"images[{i}] lacks {', '.join(repr(k) for k in gone)}")
            continue
        images[img["id"]] = img
    anns: dict[Any, dict[str, Any]] = {}
    for i, ann in enumerate(inst["annotations"]):
        gone = missing_keys(ann, ("id", "image_id", "segmentation"))
        if gone:
            problems.add(instances_file, f"annotations[{i}] lacks {', '.join(repr(k) for k in gone)}")
            continue
        anns[ann["id"]] = ann
    if image_dir is None:
        image_dir = find_refer_image_dir(dataset_dir, dataset)
        if image_dir is None:
            tried = _CLEF_IMAGE_DIRS if dataset == "refclef" else _COCO_IMAGE_DIRS
            problems.add(dataset_dir.parent, f"no image folder (looked for {', '.join(tried)}); pass image_dir")
    refs: list[dict[str, Any]] = []
    samples: list[tuple[int, int]] = []
    splits_seen: set[str] = set()
    for i, ref in enumerate(refs_raw):
        where = f"ref {i}"
        gone = missing_keys(ref, ("ref_id", "ann_id", "image_id", "split", "sentences"))
        if gone:
            problems.add(refs_file, f"{where} lacks {', '.join(repr(k) for k in gone)}")
            continue
        where = f"ref {ref['ref_id']!r}"
        splits_seen.add(str(ref["split"]))
        if split is not None and ref["split"] != split:
            continue
        if ref["image_id"] not in images:
            problems.add(refs_file, f"{where}: image_id {ref['image_id']!r} is not in instances.json")
            continue
        ann = anns.get(ref["ann_id"])
        if ann is None:
            problems.add(refs_file, f"{where}: ann_id {ref['ann_id']!r} is not in instances.json")
            continue
        if ann["image_id"] != ref["image_id"]:
            problems.add(refs_file, f"{where}: ann_id {ref['ann_id']!r} belongs to image {ann['image_id']!r}, not {ref['image_id']!r}")
            continue
        sentences = ref["sentences"]
        if not isinstance(sentences, list) or not sentences:
            problems.add(refs_file, f"{where}: 'sentences' must be a non-empty list")
            continue
        good = []
        for j, sent in enumerate(sentences):
            gone = missing_keys(sent, ("sent_id", sentence_key))
            if gone or not isinstance(sent[sentence_key], str):
                problems.add(refs_file, f"{where}: sentence {j} lacks a 'sent_id' or a string {sentence_key!r}")
                continue
            good.append(j)
        position = len(refs)
        refs.append(ref)
        samples.extend((position, j) for j in good)
    if split is not None and not refs and not problems.items:
        known = KNOWN_SPLITS.get((dataset, split_by))
        hint = f"; {dataset}/{split_by} defines {', '.join(known)}" if known else ""
        raise InputError(refs_file, f"no refs with split {split!r} (splits present: {', '.join(sorted(splits_seen)) or 'none'}{hint})")
    return ReferIndex(dataset_dir, refs_file, instances_file, image_dir, refs, images, anns, samples)


class RefCOCO(Reader):
    """RefCOCO, RefCOCO+, RefCOCOg (and refclef) in the REFER layout (module doc).

    Args:
        root: the REFER data root (holding ``refcoco/`` ...) or one dataset folder.
        dataset: ``refcoco``, ``refcoco+``, ``refcocog`` or ``refclef``.
        split: ``train``, ``val``, ``testA``, ``testB``, ``test``... (exact match).
        split_by: ``unc``, ``umd``, ``google`` or ``berkeley`` (default per dataset).
        image_dir: folder of the images named by ``instances.json`` (default: REFER's place).
        sentence_key: ``sent`` (normalised, CMPC) or ``raw`` (original, LAVT/BERT).
        transform: called on each sample dict.
    """

    def __init__(
        self,
        root: str | Path,
        dataset: str = "refcoco",
        split: str = "train",
        *,
        split_by: str | None = None,
        image_dir: str | Path | None = None,
        sentence_key: str = "sent",
        transform: Transform | None = None,
    ) -> None:
        self.root = Path(root)
        self.dataset = dataset
        self.split = split
        self.sentence_key = sentence_key
        self.transform = transform
        try:
            self.index = index_refer(
                self.root, dataset, split, split_by=split_by,
                image_dir=Path(image_dir) if image_dir is not None else None, sentence_key=sentence_key,
            )
        except InputError as err:
            raise _wrap(err, self.root) from None
        assert self.index.image_dir is not None

    def __len__(self) -> int:
        return len(self.index.samples)

    def ref_mask(self, ref_pos: int) -> np.ndarray:
        """``bool (H, W)`` mask of ``index.refs[ref_pos]`` (the union of its annotation's
        polygons) at the size ``instances.json`` gives, without reading the image."""
        ix = self.index
        ref = ix.refs[ref_pos]
        info = ix.images[ref["image_id"]]
        try:
            return coco_segmentation_mask(
                ix.anns[ref["ann_id"]]["segmentation"], int(info["height"]), int(info["width"])
            )
        except ValueError as err:
            raise InputError(ix.instances_file, f"annotation {ref['ann_id']!r}: {err}") from None

    def _load(self, index: int) -> dict[str, Any]:
        ix = self.index
        ref_pos, sent_pos = ix.samples[index]
        ref = ix.refs[ref_pos]
        sent = ref["sentences"][sent_pos]
        info = ix.images[ref["image_id"]]
        assert ix.image_dir is not None
        path = safe_join(ix.image_dir, info["file_name"], what="file_name", source=ix.instances_file)
        image = read_image(path)
        h, w = int(info["height"]), int(info["width"])
        if image.shape[:2] != (h, w):
            raise InputError(path, f"image is {image.shape[1]}x{image.shape[0]} but instances.json says {w}x{h}")
        mask = self.ref_mask(ref_pos)
        return {
            "image": image,
            "mask": mask,
            "sentence": sent[self.sentence_key],
            "ref_id": ref["ref_id"],
            "sent_id": sent["sent_id"],
            "name": f"{ref['ref_id']}_{sent['sent_id']}",
            "image_id": ref["image_id"],
            "ann_id": ref["ann_id"],
            "category_id": ref.get("category_id"),
            "split": ref["split"],
        }


# --------------------------------------------------------------------------------------------
# ReferIt (text_objseg release)


@dataclass(frozen=True)
class ReferItSample:
    key: str
    sent_pos: int
    sentence: str
    image: Path
    mask: Path


def referit_query_file(root: Path, split: str) -> Path:
    for base in (root, root / "data"):
        path = base / f"referit_query_{split}.json"
        if path.is_file():
            return path
    raise InputError(root, f"no referit_query_{split}.json (looked in the root and in data/)")


def _find_image(folder: Path, stem: str) -> Path:
    """``folder/<stem>.jpg``, or the same stem with another image extension."""
    first = folder / f"{stem}.jpg"
    if first.is_file():
        return first
    for ext in IMAGE_EXTENSIONS:
        for cand in (folder / f"{stem}{ext}", folder / f"{stem}{ext.upper()}"):
            if cand.is_file():
                return cand
    return first


def index_referit(
    root: Path, split: str = "trainval", *, query_file: Path | None = None, problems: Problems | None = None
) -> list[ReferItSample]:
    problems = problems if problems is not None else Problems(strict=True)
    root = require_folder(Path(root), "ReferIt root")
    query_file = Path(query_file) if query_file is not None else referit_query_file(root, split)
    image_dir = find_child(root, ("images",))
    mask_dir = find_child(root, ("mask", "masks"))
    if image_dir is None:
        raise InputError(root, "no images/ folder")
    if mask_dir is None:
        raise InputError(root, "no mask/ folder")
    queries = load_json(query_file)
    if not isinstance(queries, Mapping):
        raise InputError(query_file, "expected an object mapping '<imgid>_<annid>' to a list of sentences")
    samples = []
    for key, sentences in queries.items():
        if "_" not in key:
            problems.add(query_file, f"key {key!r} is not '<imgid>_<annid>'")
            continue
        try:
            mask = safe_join(mask_dir, f"{key}.mat", what="key", source=query_file)
            stem = safe_join(image_dir, key.rsplit("_", 1)[0], what="key", source=query_file)
            image = _find_image(stem.parent, stem.name)
        except InputError as err:
            problems.error(err)
            continue
        if not isinstance(sentences, list) or not all(isinstance(s, str) for s in sentences) or not sentences:
            problems.add(query_file, f"{key!r}: expected a non-empty list of sentences")
            continue
        if not image.is_file():
            problems.add(image, f"image of {key!r} not found")
            continue
        if not mask.is_file():
            problems.add(mask, f"mask of {key!r} not found")
            continue
        samples.extend(ReferItSample(key, j, s, image, mask) for j, s in enumerate(sentences))
    return samples


def read_referit_mask(path: Path) -> np.ndarray:
    """Foreground of a ReferIt ``.mat`` mask: ``segimg_t == 0`` (text_objseg's convention)."""
    seg = load_mat_variable(path, "segimg_t")
    if seg.ndim != 2:
        raise InputError(path, f"'segimg_t' must be 2-D, got shape {seg.shape}")
    return seg == 0


class ReferIt(Reader):
    """ReferIt as text_objseg ships it (module doc).

    Args:
        root: folder holding ``images/``, ``mask/`` and the query JSON.
        split: ``trainval`` or ``test``.
        query_file: explicit ``referit_query_<split>.json``.
        transform: called on each sample dict.
    """

    def __init__(
        self,
        root: str | Path,
        split: str = "trainval",
        *,
        query_file: str | Path | None = None,
        transform: Transform | None = None,
    ) -> None:
        self.root = Path(root)
        self.transform = transform
        try:
            self.samples = index_referit(self.root, split, query_file=Path(query_file) if query_file else None)
        except InputError as err:
            raise _wrap(err, self.root) from None
        if not self.samples:
            raise InputError(self.root, f"no sample in split {split!r}")

    def __len__(self) -> int:
        return len(self.samples)

    def _load(self, index: int) -> dict[str, Any]:
        s = self.samples[index]
        image = read_image(s.image)
        mask = read_referit_mask(s.mask)
        same_size(s.image, image.shape, s.mask, mask.shape, "mask")
        return {
            "image": image,
            "mask": mask,
            "sentence": s.sentence,
            "ref_id": s.key,
            "sent_id": s.sent_pos,
            "name": f"{s.key}_{s.sent_pos}",
        }


# --------------------------------------------------------------------------------------------
# JSON lines


@dataclass(frozen=True)
class JsonlSample:
    line: int
    id: Any
    sentence: str
    image: Path
    mask: Path | None
    rle: dict[str, Any] | None


def index_jsonl(
    path: Path, *, root: Path | None = None, problems: Problems | None = None, require_mask: bool = True
) -> list[JsonlSample]:
    """Parse and validate a JSON-lines file (module doc); ``root`` defaults to its folder.

    With ``require_mask=False`` (prediction input) a line may hold neither ``mask`` nor
    ``rle``; it never may hold both.
    """
    problems = problems if problems is not None else Problems(strict=True)
    path = Path(path)
    root = Path(root) if root is not None else path.parent
    text = read_text(path, "JSON-lines")
    samples = []
    seen: dict[str, int] = {}
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{path}:{lineno}"
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as err:
            problems.add(where, f"invalid JSON: {err.msg}")
            continue
        if not isinstance(obj, Mapping):
            problems.add(where, "each line must be a JSON object")
            continue
        gone = missing_keys(obj, ("image", "sentence"))
        if gone:
            problems.add(where, f"missing key {', '.join(repr(k) for k in gone)}")
            continue
        if ("mask" in obj and "rle" in obj) or (require_mask and "mask" not in obj and "rle" not in obj):
            problems.add(where, "needs exactly one of 'mask' (PNG path) or 'rle' (COCO RLE)")
            continue
        if not isinstance(obj["sentence"], str) or not obj["sentence"].strip():
            problems.add(where, "'sentence' must be a non-empty string")
            continue
        try:
            image = safe_join(root, obj["image"], what="image path", source=where)
            mask = safe_join(root, obj["mask"], what="mask path", source=where) if "mask" in obj else None
        except InputError as err:
            problems.error(err)
            continue
        rle = obj.get("rle")
        if rle is not None and (not isinstance(rle, Mapping) or missing_keys(rle, ("size", "counts"))):
            problems.add(where, "'rle' must be an object with 'size' and 'counts'")
            continue
        ident = obj.get("id")
        if ident is not None:
            if isinstance(ident, bool) or not isinstance(ident, (int, str)):
                problems.add(where, "'id' must be a string or an integer")
                continue
            try:  # ids name prediction files: they must not escape an output folder either
                safe_join(root, ident, what="id", source=where)
            except InputError as err:
                problems.error(err)
                continue
        key = str(ident) if ident is not None else f"line{lineno:06d}"

        if key in seen:
            problems.add(where, f"duplicate id {ident!r} (first on line {seen[key]})")
            continue
        seen[key] = lineno
        samples.append(JsonlSample(lineno, ident, obj["sentence"], image, mask, dict(rle) if rle is not None else None))
    return samples


def decode_sample_rle(rle: Mapping[str, Any], shape: tuple[int, ...], source: str | Path) -> np.ndarray:
    """Decode a JSON-lines RLE, checking its size against the image's ``(H, W)``."""
    try:
        return coco_segmentation_mask(rle, int(shape[0]), int(shape[1]))
    except ValueError as err:
        raise InputError(source, str(err)) from None


class JsonlRefs(Reader):
    """Custom referring data as JSON lines (module doc).

    Args:
        path: the ``.jsonl`` file.
        root: folder the image/mask paths are relative to (default: the file's folder).
        transform: called on each sample dict.
    """

    def __init__(self, path: str | Path, *, root: str | Path | None = None, transform: Transform | None = None) -> None:
        self.path = Path(path)
        self.root = Path(root) if root is not None else self.path.parent
        self.transform = transform
        try:
            self.samples = index_jsonl(self.path, root=self.root)
        except InputError as err:
            raise _wrap(err, self.root) from None
        if not self.samples:
            raise InputError(self.path, "no sample (the file holds no JSON object)")

    def __len__(self) -> int:
        return len(self.samples)

    def _load(self, index: int) -> dict[str, Any]:
        s = self.samples[index]
        image = read_image(s.image)
        if s.mask is not None:
            mask = read_mask(s.mask, strict=True)
            same_size(s.image, image.shape, s.mask, mask.shape, "mask")
        else:
            assert s.rle is not None
            mask = decode_sample_rle(s.rle, image.shape, f"{self.path}:{s.line}")
        return {
            "image": image,
            "mask": mask,
            "sentence": s.sentence,
            "ref_id": s.id if s.id is not None else s.line,
            "sent_id": s.line,
            "name": str(s.id) if s.id is not None else f"line{s.line:06d}",
        }
