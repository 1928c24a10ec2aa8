"""``cmseg predict ris``: masks of the objects that sentences refer to.

Three kinds of input::

    # images and sentences on the command line: every sentence on every image
    cmseg predict ris --checkpoint runs/ris/best --image a.jpg --sentence "the red cup" --out out/
    # a JSON-lines file ({"image", "sentence"[, "id", "mask" | "rle"]} per line)
    cmseg predict ris --checkpoint runs/ris/best --input refs.jsonl --out out/ [--gt-out gt/]
    # a split of a REFER dataset (RefCOCO / RefCOCO+ / RefCOCOg / refclef)
    cmseg predict ris --checkpoint runs/ris/best --input refer/data --split val --out out/ --gt-out gt/

Written (atomically; ``--skip-existing`` keeps masks already there):

* ``<out>/<name>.png``: the binary mask (0/255) at the image's size. ``<name>`` is
  ``<image stem>`` (one sentence on the command line) or ``<image stem>_<k>`` (the k-th of
  several), the line's ``id`` (JSON lines; ``line000007`` without one), or
  ``<ref_id>_<sent_id>`` (REFER);
* ``<out>/<name>_overlay.png``: the image with the mask tinted and outlined, always for
  command-line sentences and with ``--overlay`` for datasets;
* ``<out>/predictions.jsonl``: one line per mask, ``{"id", "image", "sentence", "mask"}``
  (itself a JSON-lines ris file);
* ``<gt-out>/<name>.png`` with ``--gt-out``: the ground-truth masks of a dataset, so that
  ``cmseg evaluate ris --pred <out> --gt <gt-out>`` scores the run with the official protocol.

Sentences of the same image share one pass of the visual backbone
(:class:`~cmseg.engine.predictors.RISPredictor`).
"""

from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cmseg.errors import CmsegError, ConfigError, InputError
from cmseg.io import IMAGE_EXTENSIONS, atomic_open, check_file, read_image, write_png
from cmseg.logs import progress

__all__ = ["Query", "run_predict_ris", "command_line_queries", "dataset_queries"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Query:
    """One sentence to segment in one image.

    Attributes:
        name: output file stem.
        image_key: queries with the same key share an image (and its cached features).
        image: path of the image (for the index and error messages).
        sentence: the referring sentence.
        gt: reads the ground-truth mask (``bool (H, W)``), or None.
    """

    name: str
    image_key: str
    image: Path
    sentence: str
    gt: Callable[[], np.ndarray] | None = None


def command_line_queries(images: Sequence[str], sentences: Sequence[str]) -> list[Query]:
    """Every sentence on every image; names ``<stem>`` or ``<stem>_<k>``.

    Raises:
        InputError: a missing or unsupported image file, or two images with one stem.
    """
    queries: list[Query] = []
    stems: dict[str, Path] = {}
    for text in images:
        path = Path(text)
        if path.is_dir():
            raise InputError(path, "is a folder; give image files, a .jsonl file or a REFER root with --split")
        check_file(path, IMAGE_EXTENSIONS)
        if path.stem in stems:
            raise InputError(path, f"same name as {stems[path.stem]}: their masks would collide")
        stems[path.stem] = path
        for k, sentence in enumerate(sentences):
            name = path.stem if len(sentences) == 1 else f"{path.stem}_{k}"
            queries.append(Query(name, str(path), path, sentence))
    return queries


def dataset_queries(source: str, *, split: str | None, options: dict[str, Any]) -> list[Query]:
    """The (image, sentence) pairs of a JSON-lines file or a REFER split.

    Args:
        source: a ``.jsonl`` file, or a REFER data root (with ``split``).
        split: the REFER split (``val``, ``testA``...); ignored for JSON lines.
        options: the checkpoint's ``data.options`` (``dataset``, ``split_by``, ``image_dir``,
            ``sentence_key``), overridden by the command line.

    Raises:
        InputError: the files are missing or malformed.
        ConfigError: a REFER root without ``--split``.
    """
    from cmseg.data.formats.refer import RefCOCO, decode_sample_rle, index_jsonl
    from cmseg.io import read_mask

    path = Path(source)
    if path.is_file() and path.suffix.lower() == ".jsonl":
        samples = index_jsonl(path, require_mask=False)
        if not samples:
            raise InputError(path, "no sample (the file holds no JSON object)")
        queries = []
        for s in samples:
            name = str(s.id) if s.id is not None else f"line{s.line:06d}"
            gt: Callable[[], np.ndarray] | None = None
            if s.mask is not None:
                gt = lambda m=s.mask: read_mask(m, strict=True)  # noqa: E731
            elif s.rle is not None:
                gt = lambda s=s: decode_sample_rle(s.rle, read_image(s.image).shape, f"{path}:{s.line}")  # noqa: E731
            queries.append(Query(name, str(s.image), s.image, s.sentence, gt))
        return queries
    if not path.is_dir():
        raise InputError(path, "no such file or folder (expected an image, a .jsonl file or a REFER root)")
    if not split:
        raise ConfigError(f"{path} is a folder: name the REFER split to predict with --split (e.g. val)")
    reader = RefCOCO(
        path,
        options.get("dataset", "refcoco"),
        split,
        split_by=options.get("split_by"),
        image_dir=options.get("image_dir") or None,
        sentence_key=options.get("sentence_key", "sent"),
    )
    ix = reader.index
    queries = []
    for ref_pos, sent_pos in ix.samples:
        ref = ix.refs[ref_pos]
        sent = ref["sentences"][sent_pos]
        image = ix.image_dir / ix.images[ref["image_id"]]["file_name"]
        queries.append(
            Query(
                f"{ref['ref_id']}_{sent['sent_id']}",
                str(ref["image_id"]),
                image,
                sent[reader.sentence_key],
                lambda ref_pos=ref_pos: reader.ref_mask(ref_pos),  # the annotation, no image
            )
        )
    if not queries:
        raise InputError(path, f"split {split!r} of {reader.dataset} holds no sentence")
    return queries


def _by_image(queries: Sequence[Query]) -> Iterator[list[Query]]:
    """Queries grouped by image, in first-seen order."""
    groups: dict[str, list[Query]] = {}
    for q in queries:
        groups.setdefault(q.image_key, []).append(q)
    yield from groups.values()


def _check_names(queries: Sequence[Query], out: Path) -> None:
    seen: dict[str, Query] = {}
    for q in queries:
        if q.name in seen:
            raise InputError(q.image, f"two sentences would both be written as {q.name}.png")
        seen[q.name] = q
        if (out / f"{q.name}.png").resolve() == q.image.resolve():
            raise InputError(q.image, f"--out {out} would overwrite this input with its mask")


def run_predict_ris(args: argparse.Namespace) -> int:
    """Run ``cmseg predict ris`` (module docstring); returns the exit code."""
    from cmseg.engine.checkpoint import load_checkpoint_meta

    if getattr(args, "aux", None):
        raise ConfigError("--aux is not used by 'predict ris'")
    sentences = list(args.sentence or [])
    inputs = list(args.input)
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise InputError(out, "exists and is not a folder")
    gt_out = Path(args.gt_out) if getattr(args, "gt_out", None) else None

    dataset_input = len(inputs) == 1 and (Path(inputs[0]).is_dir() or inputs[0].lower().endswith(".jsonl"))
    if dataset_input:
        if sentences:
            raise ConfigError("--sentence goes with image files; a dataset brings its own sentences")
        meta = load_checkpoint_meta(args.checkpoint)  # the dataset options it was trained with
        options = dict(((meta.get("config") or {}).get("data") or {}).get("options") or {})
        for key in ("dataset", "split_by"):
            if getattr(args, key, None):
                options[key] = getattr(args, key)
        queries = dataset_queries(inputs[0], split=getattr(args, "split", None), options=options)
        overlays = bool(getattr(args, "overlay", False))
    else:
        if not sentences:
            raise ConfigError('give at least one --sentence "..." for the image(s)')
        if gt_out is not None:
            raise ConfigError("--gt-out needs a dataset input (a .jsonl file or a REFER root)")
        queries = command_line_queries(inputs, sentences)
        overlays = True
    _check_names(queries, out)
    todo = [q for q in queries if not (args.skip_existing and (out / f"{q.name}.png").is_file())]
    skipped = len(queries) - len(todo)
    if not todo:
        log.info("all %d mask(s) already exist in %s (--skip-existing): nothing to do", len(queries), out)
        return 0

    from cmseg.engine.predictors import RISPredictor  # torch: only when there is work
    from cmseg.viz import overlay_mask

    predictor = RISPredictor.from_checkpoint(args.checkpoint, device=args.device)
    predictor.max_sentences = max(1, int(args.batch_size))
    groups = list(_by_image(todo))
    log.info(
        "predicting %d sentence(s) on %d image(s) on %s%s",
        len(todo),
        len(groups),
        predictor.device,
        f" ({skipped} existing skipped)" if skipped else "",
    )
    out.mkdir(parents=True, exist_ok=True)
    if gt_out is not None:
        gt_out.mkdir(parents=True, exist_ok=True)
    index: list[dict[str, Any]] = []
    failed: list[str] = []
    for group in progress(groups, desc="predict", total=len(groups), unit="image"):
        try:
            image = read_image(group[0].image)
            predictor.set_image(image)
            masks = predictor.predict_sentences([q.sentence for q in group])
        except CmsegError as err:
            log.error("error: %s", err)
            failed.extend(q.name for q in group)
            continue
        for q, mask in zip(group, masks, strict=True):
            write_png(out / f"{q.name}.png", mask)
            if overlays:
                write_png(out / f"{q.name}_overlay.png", overlay_mask(image, mask))
            if gt_out is not None and q.gt is not None:
                write_png(gt_out / f"{q.name}.png", np.asarray(q.gt(), dtype=bool))
            index.append({"id": q.name, "image": str(q.image.resolve()), "sentence": q.sentence, "mask": f"{q.name}.png"})
        predictor.reset_image()
    _write_index(out / "predictions.jsonl", index)
    log.info("wrote %d mask(s) to %s%s", len(index), out, f" ({skipped} existing skipped)" if skipped else "")
    if failed:
        raise InputError(out, f"{len(failed)} sentence(s) failed (listed above)")
    return 0


def _write_index(path: Path, rows: Sequence[dict[str, Any]]) -> None:
    """Add ``rows`` to the JSON-lines index (rows of a name already there are replaced)."""
    kept: dict[str, dict[str, Any]] = {}
    if path.is_file():
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                row = json.loads(line)
                kept[str(row["id"])] = row
            except (ValueError, KeyError, TypeError):
                continue  # a damaged old index is rebuilt from this run
    for row in rows:
        kept[row["id"]] = row
    with atomic_open(path, "w", encoding="utf-8") as handle:
        for row in kept.values():
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
