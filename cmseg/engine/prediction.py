"""The loop of ``cmseg predict TASK``, the same for every task.

A task supplies a :class:`PredictCommand` (``tasks/<task>/cli.py``): its flags, how it
collects the work from them (without torch, so that a mistake fails in a blink), how it loads
its predictor and runs it. :func:`run_prediction` does the rest for every task:

* checks the output folder (a file on the way, no write permission: before the model is
  loaded), that no two items share an output name, and that no output would overwrite an
  input; a run that fails before writing any file removes the folder it created;
* :func:`expand_inputs` and :func:`collect_images`: what the tasks' image flags take (files,
  folders of images and shell patterns, ``--image 'photos/*.jpg'`` or the many paths a
  shell makes of it);
* ``--skip-existing``: keeps the items whose ``<out>/<name>.png`` is already there as an intact
  PNG (a zero-byte or damaged one is computed again), and does not even load the model when
  nothing is left;
* runs the predictor under a progress bar, writes every output file atomically in background
  threads, and lists the items that failed (one line each) instead of stopping at the first:
  the command then ends with exit code 2 after the others are done.

Torch-free: the task's ``load`` imports it.
"""

from __future__ import annotations

import argparse
import glob
import logging
import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cmseg.data.pairing import index_by_stem
from cmseg.errors import CmsegError, InputError
from cmseg.fs import check_output_dir, removed_if_failed
from cmseg.io import IMAGE_EXTENSIONS, check_file, write_png
from cmseg.logs import progress

__all__ = [
    "PredictItem",
    "Outcome",
    "PredictCommand",
    "expand_inputs",
    "collect_images",
    "keep_items",
    "nothing_to_finish",
    "run_prediction",
    "shown",
]

log = logging.getLogger(__name__)

#: Names listed in a one-line error before "..." is used.
SHOWN = 5


def shown(names: Sequence[str]) -> str:
    """``a, b, c, ... (12 in all)``: the first few of ``names`` for a one-line message."""
    head = ", ".join(names[:SHOWN])
    return head + (f", ... ({len(names)} in all)" if len(names) > SHOWN else "")


#: Characters that make a path a shell pattern (``glob`` syntax).
_PATTERN = frozenset("*?[")


def expand_inputs(texts: Sequence[str]) -> list[Path]:
    """The paths of ``--input``-style flags, shell patterns expanded.

    A shell expands ``photos/*.jpg`` itself (the flags take several values for that); a
    pattern that reaches cmseg unexpanded (quoted, or a shell that does not glob) is expanded
    here, its matches in name order. An existing path is never read as a pattern.

    Raises:
        InputError: a pattern that matches nothing.
    """
    paths: list[Path] = []
    for text in texts:
        if _PATTERN.isdisjoint(text) or os.path.lexists(text):
            paths.append(Path(text))
            continue
        matches = sorted(glob.glob(text))
        if not matches:
            raise InputError(text, "no file matches this pattern")
        paths += [Path(m) for m in matches]
    return paths


def collect_images(
    inputs: Sequence[str], *, extensions: tuple[str, ...] = IMAGE_EXTENSIONS
) -> dict[str, Path]:
    """``stem -> image`` over image files, folders of images (the files directly inside, by
    name) and patterns (:func:`expand_inputs`), in the order given.

    Raises:
        InputError: a missing path, a file that is no image, a folder without images, or two
            images of one stem (both would be written as ``<stem>.png``).
    """
    images: dict[str, Path] = {}
    for path in expand_inputs(inputs):
        if path.is_dir():
            dupes: list[str] = []
            found = index_by_stem(path, extensions=extensions, problems=dupes)
            if dupes:
                raise InputError(*dupes[0].split(": ", 1))  # "<folder>/<stem>: ambiguous ..."
            if not found:
                raise InputError(path, f"folder holds no image file ({', '.join(extensions)})")
        elif path.is_file():
            check_file(path, extensions)
            found = {path.stem: path}
        else:
            raise InputError(path, "no such file or folder")
        for stem, file in found.items():
            if stem in images and images[stem] != file:
                raise InputError(
                    file, f"same name as {images[stem]}: both would be written as {stem}.png"
                )
            images[stem] = file
    return images


@dataclass(frozen=True)
class PredictItem:
    """One unit of work: what is predicted and written as ``<out>/<name>.png``.

    Attributes:
        name: the output stem (unique within a run).
        inputs: the files it reads (never overwritten; the first names it in messages).
        payload: the task's own description of the item (paths, a sentence...).
    """

    name: str
    inputs: tuple[Path, ...]
    payload: Any = None


@dataclass
class Outcome:
    """What predicting one item gave: the files to write, or why it failed.

    Attributes:
        item: the item.
        files: ``{path: uint8 or bool array}`` written as PNGs (atomically).
        error: a one-line reason when the item failed (nothing is written then).
        record: task data kept for :meth:`PredictCommand.finish` (e.g. an index row).
    """

    item: PredictItem
    files: dict[Path, Any] = field(default_factory=dict)
    error: str | None = None
    record: Any = None


def keep_items(
    predictor: Any, items: list[PredictItem], args: argparse.Namespace
) -> list[PredictItem]:
    """The default ``prepare``: the items as collected."""
    return items


def nothing_to_finish(args: argparse.Namespace, written: Sequence[Outcome]) -> None:
    """The default ``finish``: nothing after the files are written."""


@dataclass(frozen=True)
class PredictCommand:
    """The task part of ``cmseg predict TASK`` (module docstring).

    Attributes:
        help: one line for ``cmseg predict --help``.
        unit: what an item is, for messages (``image``, ``sentence``).
        batch_unit: what ``--batch-size`` counts (``images``, ``sentences``).
        add_arguments: ``add_arguments(parser)`` adds the task's flags (its inputs); the
            driver adds ``--checkpoint``, ``--out``, ``--batch-size``, ``--device`` and
            ``--skip-existing``.
        collect: ``collect(args) -> [PredictItem]``: every item the flags describe, checked
            without reading images or importing torch; raises ``InputError`` /
            ``ConfigError`` (one line) on missing files and bad flags.
        load: ``load(args) -> predictor`` of ``args.checkpoint`` on ``args.device``.
        predict: ``predict(predictor, items, args) -> iterator of Outcome``, one per item in
            any order; a bad input is an outcome with an ``error``, not an exception.
        prepare: ``prepare(predictor, items, args) -> items`` as this checkpoint predicts
            them, checked against what it needs (default: unchanged).
        finish: ``finish(args, written)`` after every file is written, e.g. an index of the
            outputs (default: nothing).
    """

    help: str
    unit: str
    batch_unit: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    collect: Callable[[argparse.Namespace], list[PredictItem]]
    load: Callable[[argparse.Namespace], Any]
    predict: Callable[[Any, Sequence[PredictItem], argparse.Namespace], Iterator[Outcome]]
    prepare: Callable[[Any, list[PredictItem], argparse.Namespace], list[PredictItem]] = keep_items
    finish: Callable[[argparse.Namespace, Sequence[Outcome]], None] = nothing_to_finish


def _check_outputs(items: Sequence[PredictItem], out: Path, unit: str) -> None:
    """No two items write one file, and no output overwrites an input."""
    seen: dict[str, PredictItem] = {}
    for item in items:
        where = item.inputs[0] if item.inputs else out
        if item.name in seen:
            raise InputError(where, f"two {unit}s would both be written as {item.name}.png")
        seen[item.name] = item
        target = (out / f"{item.name}.png").resolve()
        for path in item.inputs:
            if target == path.resolve():
                raise InputError(path, f"--out {out} would overwrite this input with its mask")


def _done(path: Path) -> bool:
    """Whether ``path`` is a complete output: a readable, intact PNG. A zero-byte or damaged
    file (a run killed by a power cut, a full disk) is computed again by ``--skip-existing``."""
    try:
        if not path.is_file() or path.stat().st_size == 0:
            return False
        from PIL import Image

        with Image.open(path) as image:
            image.verify()  # reads every chunk and checks its CRC, decodes nothing
        return True
    except (OSError, SyntaxError, ValueError):
        return False


def run_prediction(command: PredictCommand, args: argparse.Namespace) -> int:
    """Run ``cmseg predict`` for one task (module docstring); returns the exit code.

    Raises:
        CmsegError: bad flags or inputs before any work, or (after the others are written)
            the items that failed.
    """
    if args.batch_size < 1:
        raise CmsegError(f"--batch-size must be >= 1, got {args.batch_size}")
    out = check_output_dir(args.out)  # a file on the way, no permission: before any work
    items = command.collect(args)
    _check_outputs(items, out, command.unit)
    todo = [it for it in items if not (args.skip_existing and _done(out / f"{it.name}.png"))]
    skipped = len(items) - len(todo)
    if not todo:
        log.info(
            "all %d output(s) already exist in %s (--skip-existing): nothing to do", len(items), out
        )
        return 0

    predictor = command.load(args)  # torch: only when there is work
    todo = command.prepare(predictor, todo, args)
    log.info(
        "predicting %d %s(s) on %s%s",
        len(todo),
        command.unit,
        getattr(predictor, "device", "cpu"),
        f" ({skipped} existing skipped)" if skipped else "",
    )
    # A run that fails before writing anything leaves no empty --out folder behind.
    with removed_if_failed(out, keep_files=True):
        out.mkdir(parents=True, exist_ok=True)
        written, failed = _predict_and_write(command, predictor, todo, args)
        command.finish(args, written)
        log.info(
            "wrote %d output(s) to %s%s",
            len(written),
            out,
            f" ({skipped} existing skipped)" if skipped else "",
        )
        if failed:
            raise InputError(
                out, f"{len(failed)} {command.unit}(s) failed (listed above): {shown(failed)}"
            )
    return 0


def _write_all(files: dict[Path, Any]) -> None:
    for path, array in files.items():
        write_png(path, array)


def _predict_and_write(
    command: PredictCommand, predictor: Any, todo: Sequence[PredictItem], args: argparse.Namespace
) -> tuple[list[Outcome], list[str]]:
    """Run the predictor over ``todo``; write each outcome's files in background threads."""
    failed: list[str] = []
    written: list[Outcome] = []
    workers = max(2, min(8, os.cpu_count() or 1))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="cmseg-write") as pool:
        writes: list[tuple[Outcome, Future[None]]] = []
        outcomes = command.predict(predictor, todo, args)
        for outcome in progress(outcomes, desc="predict", total=len(todo), unit=command.unit):
            if outcome.error is not None:
                log.error("error: %s", outcome.error)
                failed.append(outcome.item.name)
                continue
            writes.append((outcome, pool.submit(_write_all, outcome.files)))
        for outcome, future in writes:
            try:
                future.result()
            except (CmsegError, OSError) as err:
                where = outcome.item.inputs[0] if outcome.item.inputs else outcome.item.name
                log.error("error: %s: cannot write its output (%s)", where, err)
                failed.append(outcome.item.name)
                continue
            written.append(outcome)
    return written, failed
