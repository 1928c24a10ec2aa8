"""``data check ris``: REFER (RefCOCO/+/g), ReferIt and JSON-lines referring datasets."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cmseg.data.check.common import (
    CheckResult,
    check_declared_size,
    parallel,
    read_mask_checked,
    segmentation_problem,
    size_problem,
    try_read,
)
from cmseg.data.formats import Problems, coco_segmentation_mask, safe_join
from cmseg.errors import InputError
from cmseg.io import read_image


def check_ris(root: Path, result: CheckResult, workers: int) -> None:
    """Check every referring layout found in ``root`` (REFER folders, ReferIt query files,
    ``*.jsonl`` files; ``root`` may also be one ``.jsonl`` file)."""
    if root.is_file() and root.suffix == ".jsonl":
        result.layout = "JSON lines"
        _check_jsonl(root, root.parent, result, workers)
        return
    layouts = []
    refer_dirs = sorted(
        {p.parent for p in root.glob("refs(*).p")} | {p.parent for p in root.glob("*/refs(*).p")}
    )
    query_files = sorted(
        list(root.glob("referit_query_*.json")) + list(root.glob("data/referit_query_*.json"))
    )
    jsonl = sorted(root.glob("*.jsonl"))
    for dataset_dir in refer_dirs:
        layouts.append(f"REFER {dataset_dir.name}")
        for refs in sorted(dataset_dir.glob("refs(*).p")):
            _check_refer(root, dataset_dir, refs.name[len("refs(") : -len(").p")], result, workers)
    for query in query_files:
        layouts.append(f"ReferIt {query.stem[len('referit_query_') :]}")
        _check_referit(root, query, result, workers)
    for path in jsonl:
        layouts.append(f"JSON lines {path.name}")
        _check_jsonl(path, root, result, workers)
    if not layouts:
        raise InputError(
            root,
            "no referring-segmentation layout found: expected "
            "<dataset>/refs(<split_by>).p + instances.json (REFER), "
            "referit_query_<split>.json + images/ + mask/ (ReferIt), or *.jsonl",
        )
    result.layout = ", ".join(layouts)


def _check_refer(
    root: Path, dataset_dir: Path, split_by: str, result: CheckResult, workers: int
) -> None:
    """Check one REFER ``refs(<split_by>).p`` with its ``instances.json``: every referred
    image (readable, of the declared size) and every referred mask (valid, not empty)."""
    from cmseg.data.formats.refer import index_refer

    problems = Problems(strict=False)
    ix = index_refer(root, dataset_dir.name, None, split_by=split_by, problems=problems)
    result.problems.extend(problems.items)
    result.items += len(ix.samples)
    by_image: dict[Any, list[dict[str, Any]]] = {}
    for ref in ix.refs:
        by_image.setdefault(ref["image_id"], []).append(ref)

    def one(image_id: Any) -> list[str]:
        out: list[str] = []
        info = ix.images[image_id]
        try:
            h, w = int(info["height"]), int(info["width"])
        except (TypeError, ValueError):
            return [f"{ix.instances_file}: image {image_id!r} has no integer height/width"]
        if ix.image_dir is not None:
            try:
                path = safe_join(
                    ix.image_dir, info["file_name"], what="file_name", source=ix.instances_file
                )
            except InputError as err:
                out.append(str(err))
            else:
                image = try_read(out, read_image, path)
                if image is not None:
                    check_declared_size(out, path, image, info, ix.instances_file)
        for ref in by_image[image_id]:
            seg = ix.anns[ref["ann_id"]]["segmentation"]
            reason, mask = segmentation_problem(seg, h, w, decode=True)
            where = f"{ix.instances_file}: annotation {ref['ann_id']!r} (ref {ref['ref_id']!r})"
            if reason:
                out.append(f"{where}: {reason}")
            elif mask is not None and not mask.any():
                out.append(f"{where}: mask is empty")
        return out

    result.problems.extend(parallel(one, sorted(by_image, key=str), workers))


def _check_referit(root: Path, query: Path, result: CheckResult, workers: int) -> None:
    """Check one ReferIt query file: the image and ``.mat`` mask of every referred region
    (each region once, however many sentences refer to it)."""
    from cmseg.data.formats.refer import index_referit, read_referit_mask

    split = query.stem[len("referit_query_") :]
    problems = Problems(strict=False)
    samples = index_referit(root, split, query_file=query, problems=problems)
    result.problems.extend(problems.items)
    result.items += len(samples)
    firsts = list({s.key: s for s in reversed(samples)}.values())[::-1]

    def one(s: Any) -> list[str]:
        out: list[str] = []
        image = try_read(out, read_image, s.image)
        mask = try_read(out, read_referit_mask, s.mask)
        if mask is not None and not mask.any():
            out.append(f"{s.mask}: mask is empty (no pixel with segimg_t == 0)")
        if image is not None and mask is not None:
            line = size_problem(s.image, image.shape, s.mask, mask.shape, "mask")
            if line:
                out.append(line)
        return out

    result.problems.extend(parallel(one, firsts, workers))


def _check_jsonl(path: Path, root: Path, result: CheckResult, workers: int) -> None:
    """Check one JSON-lines file: every line's image, and its mask (a binary, non-empty PNG of
    the image's size) or its RLE."""
    from cmseg.data.formats.jsonl_refs import index_jsonl

    problems = Problems(strict=False)
    samples = index_jsonl(path, root=root, problems=problems)
    result.problems.extend(problems.items)
    result.items += len(samples)

    def one(s: Any) -> list[str]:
        out: list[str] = []
        where = f"{path}:{s.line}"
        image = try_read(out, read_image, s.image)
        if s.mask is not None:
            mask = read_mask_checked(out, s.mask, binary=True, nonempty=True)
            if image is not None and mask is not None:
                line = size_problem(s.image, image.shape, s.mask, mask.shape, "mask")
                if line:
                    out.append(line)
        elif image is not None:
            try:
                mask = coco_segmentation_mask(s.rle, image.shape[0], image.shape[1])
            except ValueError as err:
                out.append(f"{where}: {err}")
            else:
                if not mask.any():
                    out.append(f"{where}: RLE mask is empty")
        return out

    result.problems.extend(parallel(one, samples, workers))
