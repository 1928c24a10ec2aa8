"""The ``ris`` part of ``cmseg predict``: masks of the objects that sentences refer to.

Three kinds of input, chosen by the flags (never guessed from what a folder holds)::

    # photos: image files, folders of images, shell patterns; every sentence on every image
    cmseg predict ris --checkpoint runs/ris/best --image a.jpg --sentence "the red cup" --out out/
    cmseg predict ris --checkpoint runs/ris/best --image photos/ --image more/*.jpg \
        --sentence "the red cup" --sentence "the dog on the left" --out out/
    # one JSON-lines file ({"image", "sentence"[, "id", "mask" | "rle"]} per line; paths
    # absolute or relative to the file's folder, so cmseg's own predictions.jsonl reads back)
    cmseg predict ris --checkpoint runs/ris/best --input refs.jsonl --out out/ [--gt-out gt/]
    # --split: one folder is a REFER data root (RefCOCO / RefCOCO+ / RefCOCOg / refclef)
    cmseg predict ris --checkpoint runs/ris/best --input refer/data --split val --out out/ --gt-out gt/

Sentences (``--sentence`` and JSON lines at once, before the model loads; those of a REFER
split item by item) must hold a word (:func:`cmseg.data.sentences.check_sentence`); one cut to
the text encoder's token limit or without a known word is predicted with a warning (the first
few of each kind, then the counts at the end).

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
(:class:`~cmseg.tasks.ris.predictor.RISPredictor`). What every task's ``predict`` shares
(``--skip-existing``, atomic writes, the list of failures) is
:func:`cmseg.engine.prediction.run_prediction`.
"""

from __future__ import annotations

import argparse
import functools
import json
import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cmseg.data.sentences import check_sentence
from cmseg.engine.prediction import Outcome, PredictCommand, PredictItem, collect_images
from cmseg.errors import CmsegError, ConfigError, InputError
from cmseg.io import atomic_open, read_image

__all__ = ["Query", "command_line_queries", "dataset_queries", "PREDICT"]

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
        mask: the ground-truth file when there is one (never overwritten by a prediction).
    """

    name: str
    image_key: str
    image: Path
    sentence: str
    gt: Callable[[], np.ndarray] | None = None
    mask: Path | None = None


def command_line_queries(images: Sequence[str], sentences: Sequence[str]) -> list[Query]:
    """Every sentence on every image; names ``<stem>`` or ``<stem>_<k>``.

    Args:
        images: image files, folders of images and patterns
            (:func:`~cmseg.engine.prediction.collect_images`).
        sentences: the sentences, already checked.

    Raises:
        InputError: a missing or unsupported image file, a folder without images, or two
            images with one stem.
        ConfigError: a folder without images that is a REFER data root (``--split`` missing).
    """
    try:
        found = collect_images(images)
    except InputError as err:
        if Path(err.path).is_dir() and _looks_like_refer(Path(err.path)):
            raise ConfigError(
                f"{err.path} holds no image but is a REFER data root: add --split (e.g. "
                "--split val) to predict one of its splits"
            ) from None
        raise
    queries: list[Query] = []
    for stem, path in found.items():
        for k, sentence in enumerate(sentences):
            name = stem if len(sentences) == 1 else f"{stem}_{k}"
            queries.append(Query(name, str(path), path, sentence))
    return queries


def _looks_like_refer(folder: Path) -> bool:
    """A REFER data root (``<dataset>/refs(<split_by>).p``), or one dataset's folder."""
    return any(folder.glob("refs(*).p")) or any(folder.glob("*/refs(*).p"))


def _decode_line_rle(sample: Any, where: str) -> np.ndarray:
    """The mask of a JSON-lines sample given as COCO RLE, at its image's size."""
    from cmseg.data.formats.refer import decode_sample_rle

    return decode_sample_rle(sample.rle, read_image(sample.image).shape, where)


def dataset_queries(source: str, *, split: str | None, options: dict[str, Any]) -> list[Query]:
    """The (image, sentence) pairs of a JSON-lines file or a REFER split.

    Args:
        source: a ``.jsonl`` file (``split`` None), or a REFER data root (with ``split``).
        split: the REFER split (``val``, ``testA``...), or None for a JSON-lines file.
        options: the checkpoint's ``data.options`` (``dataset``, ``split_by``, ``image_dir``,
            ``sentence_key``), overridden by the command line; REFER only.

    Raises:
        InputError: the files are missing or malformed (every malformed JSON line in one
            error).
    """
    from cmseg.data.formats.refer import RefCOCO, index_jsonl
    from cmseg.io import read_mask

    path = Path(source)
    if split is None:
        # A user's list, not a dataset: absolute paths and paths outside its folder are fine.
        samples = index_jsonl(path, require_mask=False, confined=False)
        if not samples:
            raise InputError(path, "no sample (the file holds no JSON object)")
        queries = []
        for s in samples:
            name = str(s.id) if s.id is not None else f"line{s.line:06d}"
            gt: Callable[[], np.ndarray] | None = None
            if s.mask is not None:
                gt = functools.partial(read_mask, s.mask, strict=True)
            elif s.rle is not None:
                gt = functools.partial(_decode_line_rle, s, f"{path}:{s.line}")
            queries.append(Query(name, str(s.image), s.image, s.sentence, gt, s.mask))
        return queries
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


def _by_image(items: Sequence[PredictItem]) -> Iterator[list[PredictItem]]:
    """Items grouped by image, in first-seen order."""
    groups: dict[str, list[PredictItem]] = {}
    for item in items:
        groups.setdefault(item.payload.image_key, []).append(item)
    yield from groups.values()


def _input_kind(args: argparse.Namespace) -> str:
    """``refer`` (``--split`` given: one folder), ``jsonl`` (one ``.jsonl`` file) or
    ``photos`` (anything else: image files, folders of images, patterns)."""
    inputs = args.input
    if args.split:
        if len(inputs) != 1 or not Path(inputs[0]).is_dir():
            raise ConfigError(
                "--split reads one split of a REFER data root: give that one folder as "
                "--input (e.g. --input data/refer --split val)"
            )
        return "refer"
    if len(inputs) == 1 and inputs[0].lower().endswith(".jsonl"):
        return "jsonl"
    return "photos"


def _overlays(args: argparse.Namespace) -> bool:
    """Overlays are written for photos, and with ``--overlay`` for datasets."""
    return bool(args.overlay) or _input_kind(args) == "photos"


def _check_flags(args: argparse.Namespace, kind: str) -> list[str]:
    """The sentences of the command line, checked against the kind of input."""
    sentences = list(args.sentence or [])
    for sentence in sentences:
        try:
            check_sentence(sentence)
        except (TypeError, ValueError) as err:
            raise ConfigError(f"--sentence: {err}") from None
    if kind != "refer" and (args.dataset or args.split_by):
        raise ConfigError("--dataset and --split-by go with a REFER data root and --split")
    if kind != "photos" and sentences:
        raise ConfigError("--sentence goes with photos; a dataset brings its own sentences")
    if kind == "photos" and args.gt_out is not None:
        raise ConfigError("--gt-out needs a dataset input (a .jsonl file or a REFER root)")
    return sentences


def _queries(args: argparse.Namespace) -> list[Query]:
    """The queries the flags describe."""
    from cmseg.engine.checkpoint import load_checkpoint_meta

    kind = _input_kind(args)
    sentences = _check_flags(args, kind)
    if kind == "jsonl":
        return dataset_queries(args.input[0], split=None, options={})
    if kind == "refer":
        meta = load_checkpoint_meta(args.checkpoint)  # the dataset options it was trained with
        options = dict(((meta.get("config") or {}).get("data") or {}).get("options") or {})
        for key in ("dataset", "split_by"):
            if getattr(args, key, None):
                options[key] = getattr(args, key)
        return dataset_queries(args.input[0], split=args.split, options=options)
    queries = command_line_queries(args.input, sentences)  # the folder errors come first
    if not sentences:
        raise ConfigError('give at least one --sentence "..." for the image(s)')
    return queries


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--image", "--input", dest="input", action="extend", nargs="+", required=True,
        metavar="PATH",
        help="photos (with --sentence): image files, folders of images or patterns such as "
        "'dir/*.jpg' (several after one flag, and repeatable); or one .jsonl file; or one "
        "REFER data root with --split",
    )  # fmt: skip
    parser.add_argument(
        "--sentence", action="append", default=None,
        help="referring sentence (repeatable): every sentence is segmented in every photo",
    )  # fmt: skip
    group = parser.add_argument_group("datasets")
    group.add_argument(
        "--split", default=None,
        help="read --input as a REFER data root and predict this split (val, testA...)",
    )  # fmt: skip
    group.add_argument(
        "--dataset", default=None,
        help="refcoco, refcoco+, refcocog or refclef (default: the checkpoint's)",
    )  # fmt: skip
    group.add_argument(
        "--split-by", default=None, help="unc, umd, google or berkeley (default: the checkpoint's)"
    )
    group.add_argument(
        "--gt-out", default=None, metavar="DIR",
        help="also write the dataset's ground-truth masks here, for 'cmseg evaluate ris'",
    )  # fmt: skip
    group.add_argument(
        "--overlay", action="store_true", help="also write overlays for dataset inputs"
    )


def _collect(args: argparse.Namespace) -> list[PredictItem]:
    return [
        PredictItem(q.name, (q.image,) + ((q.mask,) if q.mask else ()), payload=q)
        for q in _queries(args)
    ]


def _load(args: argparse.Namespace) -> Any:
    from cmseg.tasks.ris.predictor import RISPredictor

    predictor = RISPredictor.from_checkpoint(args.checkpoint, device=args.device)
    predictor.max_sentences = max(1, int(args.batch_size))
    return predictor


def _outcome(
    q: Query, item: PredictItem, image: Any, mask: Any, args: argparse.Namespace
) -> Outcome:
    """The mask, its overlay and ground truth as asked, and the index row of one sentence."""
    from cmseg.viz import overlay_mask

    out = Path(args.out)
    files: dict[Path, Any] = {out / f"{q.name}.png": mask}
    if _overlays(args):
        files[out / f"{q.name}_overlay.png"] = overlay_mask(image, mask)
    if args.gt_out and q.gt is not None:
        files[Path(args.gt_out) / f"{q.name}.png"] = np.asarray(q.gt(), dtype=bool)
    row = {
        "id": q.name,
        "image": str(q.image.resolve()),
        "sentence": q.sentence,
        "mask": f"{q.name}.png",
    }
    return Outcome(item, files=files, record=row)


def _predict(
    predictor: Any, items: Sequence[PredictItem], args: argparse.Namespace
) -> Iterator[Outcome]:
    """Image by image: the image encoded once, then all its sentences. A sentence that is
    none (in a REFER split; the others were checked before) fails alone."""
    for all_of_image in _by_image(items):
        group = []
        for item in all_of_image:
            try:
                check_sentence(item.payload.sentence)
            except (TypeError, ValueError) as err:
                yield Outcome(item, error=f"{item.name} ({item.payload.image.name}): {err}")
                continue
            group.append(item)
        if not group:
            continue
        try:
            image = read_image(group[0].payload.image)
            predictor.set_image(image)
            masks = predictor.predict_sentences([it.payload.sentence for it in group])
        except CmsegError as err:
            for item in group:
                yield Outcome(item, error=str(err))
            continue
        for item, mask in zip(group, masks, strict=True):
            yield _outcome(item.payload, item, image, mask, args)
        predictor.reset_image()
    _report_notes(predictor.sentence_notes)


def _report_notes(notes: Any) -> None:
    """The counts of the sentences predicted with a warning, when some of those warnings were
    not shown (the predictor shows the first few of each kind)."""
    from cmseg.tasks.ris.predictor import SHOWN_NOTES

    if max(notes.values(), default=0) <= SHOWN_NOTES:
        return
    parts = []
    if notes.get("cut"):
        parts.append(f"{notes['cut']} cut to the model's token limit")
    if notes.get("unknown"):
        parts.append(f"{notes['unknown']} without a word in its vocabulary")
    if parts:
        log.warning("sentences predicted with a warning: %s", "; ".join(parts))


def _finish(args: argparse.Namespace, written: Sequence[Outcome]) -> None:
    _write_index(Path(args.out) / "predictions.jsonl", [o.record for o in written])


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


PREDICT = PredictCommand(
    help="masks of the objects that sentences refer to", unit="sentence",
    batch_unit="sentences", add_arguments=_add_arguments, collect=_collect, load=_load,
    predict=_predict, finish=_finish,
)  # fmt: skip
