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

**JSON lines** (custom data), read by :class:`JsonlRefs`: see :mod:`.jsonl_refs` (its names
are importable from here too).

Sample dict (all three)::

    image     uint8 (H, W, 3)
    mask      bool (H, W)
    sentence  str
    ref_id    int | str
    sent_id   int | str
    name      str             "<ref_id>_<sent_id>" (REFER, ReferIt) or the line's id
"""

from __future__ import annotations

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
from cmseg.data.formats.jsonl_refs import JsonlRefs, index_jsonl
from cmseg.data.formats.jsonl_refs import JsonlSample as JsonlSample
from cmseg.data.formats.jsonl_refs import decode_sample_rle as decode_sample_rle
from cmseg.data.safe_pickle import load_pickle
from cmseg.errors import InputError
from cmseg.io import IMAGE_EXTENSIONS, read_image

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
_COCO_IMAGE_DIRS = (
    "images/mscoco/images/train2014",
    "images/mscoco/train2014",
    "images/train2014",
    "train2014",
    "coco/images/train2014",
)
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
    refs: list[dict[str, Any]]  # of the requested split, validated
    images: dict[Any, dict[str, Any]]
    anns: dict[Any, dict[str, Any]]
    samples: list[tuple[int, int]]  # (position in refs, position in its sentences)


def refer_dataset_dir(root: Path, dataset: str) -> Path:
    """``root/<dataset>`` for a REFER data root, or ``root`` itself when it holds refs files."""
    if any(root.glob("refs(*).p")):
        return root
    folder = root / dataset
    if not folder.is_dir():
        raise InputError(
            root, f"no {dataset}/ folder with refs(*).p (expected the REFER data root)"
        )
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
    """Load and validate a REFER dataset; ``split=None`` keeps every split.

    Raises :class:`InputError` for a missing or unreadable refs file or ``instances.json``,
    and, when nothing else is wrong, for a split without refs (naming the splits present).
    Other problems (a ref naming an unknown image, a sentence without text, ...) go to
    ``problems``: the first one raises in strict mode, all are collected otherwise.
    """
    problems = problems if problems is not None else Problems(strict=True)
    root = require_folder(Path(root), "REFER data root")
    dataset_dir = refer_dataset_dir(root, dataset)
    split_by = split_by or DEFAULT_SPLIT_BY.get(dataset, "unc")
    refs_file = dataset_dir / f"refs({split_by}).p"
    instances_file = dataset_dir / "instances.json"
    refs_raw = _load_refs(refs_file, dataset_dir)
    images, anns = _load_instances(instances_file, problems)
    if image_dir is None:
        image_dir = _default_image_dir(dataset_dir, dataset, problems)
    refs, samples, splits_seen = _select_refs(
        refs_raw, split, images, anns, sentence_key, refs_file, problems
    )
    if split is not None and not refs and not problems.items:
        known = KNOWN_SPLITS.get((dataset, split_by))
        hint = f"; {dataset}/{split_by} defines {', '.join(known)}" if known else ""
        present = ", ".join(sorted(splits_seen)) or "none"
        raise InputError(
            refs_file, f"no refs with split {split!r} (splits present: {present}{hint})"
        )
    return ReferIndex(
        dataset_dir, refs_file, instances_file, image_dir, refs, images, anns, samples
    )


def _load_refs(refs_file: Path, dataset_dir: Path) -> list[Any]:
    """The list in ``refs(<split_by>).p`` (safe unpickling); the error names the refs files
    that are present when this one is not."""
    if not refs_file.is_file():
        present = sorted(p.name for p in dataset_dir.glob("refs(*).p"))
        raise InputError(refs_file, f"no such file (present: {', '.join(present) or 'none'})")
    refs_raw = load_pickle(refs_file)
    if not isinstance(refs_raw, list):
        raise InputError(refs_file, f"expected a list of refs, got {type(refs_raw).__name__}")
    return refs_raw


def _load_instances(
    instances_file: Path, problems: Problems
) -> tuple[dict[Any, dict[str, Any]], dict[Any, dict[str, Any]]]:
    """``(images, annotations)`` of ``instances.json`` by id; records without the keys the
    readers use are problems (and left out)."""
    inst = load_json(instances_file)
    gone = missing_keys(inst, ("images", "annotations"))
    if gone:
        raise InputError(instances_file, f"lacks {', '.join(repr(k) for k in gone)}")
    images = _by_id(inst["images"], ("id", "file_name", "height", "width"), "images",
                    instances_file, problems)  # fmt: skip
    anns = _by_id(inst["annotations"], ("id", "image_id", "segmentation"), "annotations",
                  instances_file, problems)  # fmt: skip
    return images, anns


def _by_id(
    records: list[Any], keys: tuple[str, ...], what: str, source: Path, problems: Problems
) -> dict[Any, dict[str, Any]]:
    """The records that have every one of ``keys``, by their ``id``."""
    out: dict[Any, dict[str, Any]] = {}
    for i, record in enumerate(records):
        gone = missing_keys(record, keys)
        if gone:
            problems.add(source, f"{what}[{i}] lacks {', '.join(repr(k) for k in gone)}")
            continue
        out[record["id"]] = record
    return out


def _default_image_dir(dataset_dir: Path, dataset: str, problems: Problems) -> Path | None:
    """REFER's image folder for ``dataset`` (:func:`find_refer_image_dir`); a problem when
    there is none."""
    image_dir = find_refer_image_dir(dataset_dir, dataset)
    if image_dir is None:
        tried = _CLEF_IMAGE_DIRS if dataset == "refclef" else _COCO_IMAGE_DIRS
        problems.add(
            dataset_dir.parent, f"no image folder (looked for {', '.join(tried)}); pass image_dir"
        )
    return image_dir


def _select_refs(
    refs_raw: list[Any],
    split: str | None,
    images: Mapping[Any, Any],
    anns: Mapping[Any, dict[str, Any]],
    sentence_key: str,
    refs_file: Path,
    problems: Problems,
) -> tuple[list[dict[str, Any]], list[tuple[int, int]], set[str]]:
    """The valid refs of ``split`` (None: all), their ``(ref position, sentence position)``
    samples, and every split name seen (for the "no refs with split" message)."""
    refs: list[dict[str, Any]] = []
    samples: list[tuple[int, int]] = []
    splits_seen: set[str] = set()
    for i, ref in enumerate(refs_raw):
        gone = missing_keys(ref, ("ref_id", "ann_id", "image_id", "split", "sentences"))
        if gone:
            problems.add(refs_file, f"ref {i} lacks {', '.join(repr(k) for k in gone)}")
            continue
        where = f"ref {ref['ref_id']!r}"
        splits_seen.add(str(ref["split"]))
        if split is not None and ref["split"] != split:
            continue
        reason = _ref_problem(ref, images, anns)
        if reason is not None:
            problems.add(refs_file, f"{where}: {reason}")
            continue
        good = []
        for j, sent in enumerate(ref["sentences"]):
            gone = missing_keys(sent, ("sent_id", sentence_key))
            if gone or not isinstance(sent[sentence_key], str):
                problems.add(
                    refs_file,
                    f"{where}: sentence {j} lacks a 'sent_id' or a string {sentence_key!r}",
                )
                continue
            good.append(j)
        position = len(refs)
        refs.append(ref)
        samples.extend((position, j) for j in good)
    return refs, samples, splits_seen


def _ref_problem(
    ref: dict[str, Any], images: Mapping[Any, Any], anns: Mapping[Any, dict[str, Any]]
) -> str | None:
    """Why a ref cannot be used (its image or annotation unknown or mismatched, no
    sentences), or None."""
    if ref["image_id"] not in images:
        return f"image_id {ref['image_id']!r} is not in instances.json"
    ann = anns.get(ref["ann_id"])
    if ann is None:
        return f"ann_id {ref['ann_id']!r} is not in instances.json"
    if ann["image_id"] != ref["image_id"]:
        return (
            f"ann_id {ref['ann_id']!r} belongs to image {ann['image_id']!r}, "
            f"not {ref['image_id']!r}"
        )
    sentences = ref["sentences"]
    if not isinstance(sentences, list) or not sentences:
        return "'sentences' must be a non-empty list"
    return None


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
                self.root,
                dataset,
                split,
                split_by=split_by,
                image_dir=Path(image_dir) if image_dir is not None else None,
                sentence_key=sentence_key,
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
        path = safe_join(
            ix.image_dir, info["file_name"], what="file_name", source=ix.instances_file
        )
        image = read_image(path)
        h, w = int(info["height"]), int(info["width"])
        if image.shape[:2] != (h, w):
            raise InputError(
                path, f"image is {image.shape[1]}x{image.shape[0]} but instances.json says {w}x{h}"
            )
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
    root: Path,
    split: str = "trainval",
    *,
    query_file: Path | None = None,
    problems: Problems | None = None,
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
        raise InputError(
            query_file, "expected an object mapping '<imgid>_<annid>' to a list of sentences"
        )
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
        if (
            not isinstance(sentences, list)
            or not all(isinstance(s, str) for s in sentences)
            or not sentences
        ):
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
            self.samples = index_referit(
                self.root, split, query_file=Path(query_file) if query_file else None
            )
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
