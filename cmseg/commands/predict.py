"""``cmseg predict TASK --checkpoint CKPT --input ... --out DIR``.

ris: see :mod:`cmseg.commands.predict_ris`.

sod::

    cmseg predict sod --checkpoint runs/sod/best --rgb images/ --aux depth/ --out maps/
    cmseg predict sod --checkpoint runs/sod/best --rgb a.jpg --aux a_depth.png --out maps/

* ``--rgb`` / ``--input`` (repeatable): image files or folders of images;
* ``--aux``: one depth/thermal file (with a single image) or a folder of maps paired with the
  images **by name stem** (``0001.jpg`` <-> ``0001.png`` / ``0001.npy``); images without a map
  are all listed in one error line before anything runs. Not needed for a checkpoint trained
  with ``data.options.zero_aux=true`` (RGB-only);
* writes ``<out>/<stem>.png``: a 0..255 grey map at the image's original size, atomically
  (an interrupted run leaves no half-written file); ``--skip-existing`` keeps maps already
  there, so an interrupted run continues where it stopped;
* an aux map whose size differs from its image is resized to the image size, with a warning;
  NaN, +/-inf (``.npy``/``.npz``/float TIFF) are holes, set to 0 after the per-image
  normalisation, as in training;
* batched (``--batch-size``), images read and maps written by threads while the model runs,
  a progress bar on a terminal. An unreadable input is reported (one line) and skipped; the
  command then exits with code 2 after the others are done.
"""

from __future__ import annotations

import argparse
import logging
import os
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cmseg.data.pairing import index_by_stem
from cmseg.errors import CmsegError, ConfigError, InputError, NotBuiltError
from cmseg.io import AUX_EXTENSIONS, IMAGE_EXTENSIONS, check_file, read_aux, read_image, write_png
from cmseg.logs import progress

__all__ = ["run_predict", "SODItem", "collect_sod_inputs"]

log = logging.getLogger(__name__)

#: Names listed in a one-line error before "..." is used.
_SHOWN = 5


@dataclass(frozen=True)
class SODItem:
    """One image to segment: its stem (output name), the image and its aux map (or None)."""

    stem: str
    rgb: Path
    aux: Path | None


def run_predict(args: argparse.Namespace) -> int:
    """Run ``cmseg predict``; returns the exit code."""
    if args.task == "ris":
        from cmseg.commands.predict_ris import run_predict_ris

        return run_predict_ris(args)
    if args.task != "sod":
        raise NotBuiltError(f"'cmseg predict' is not built yet for task '{args.task}'")
    return _predict_sod(args)


# --------------------------------------------------------------------------------------------
# Inputs


def _shown(names: Sequence[str]) -> str:
    return ", ".join(names[:_SHOWN]) + (
        f", ... ({len(names)} in all)" if len(names) > _SHOWN else ""
    )


def _collect_images(inputs: Sequence[str]) -> dict[str, Path]:
    """``stem -> image`` over every ``--input`` file or folder; a stem given twice is an error
    (both would write ``<stem>.png``)."""
    images: dict[str, Path] = {}
    for text in inputs:
        path = Path(text)
        if path.is_dir():
            dupes: list[str] = []
            found = index_by_stem(path, extensions=IMAGE_EXTENSIONS, problems=dupes)
            if dupes:
                raise InputError(path, f"two images share a name: {dupes[0]}")
            if not found:
                raise InputError(path, f"folder holds no image ({', '.join(IMAGE_EXTENSIONS)})")
        elif path.is_file():
            check_file(path, IMAGE_EXTENSIONS)
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


def collect_sod_inputs(inputs: Sequence[str], aux: str | None, *, need_aux: bool) -> list[SODItem]:
    """Pair the images of ``inputs`` with the maps of ``aux`` by name stem.

    Args:
        inputs: image files and/or folders (``--rgb``/``--input``).
        aux: a map file (only with a single image: paired whatever its name), a folder of
            maps, or None.
        need_aux: whether a missing ``aux`` is an error (False for an RGB-only checkpoint).

    Returns:
        The items sorted by stem.

    Raises:
        InputError: a missing path, an image without its map (all listed in one line), ...
    """
    images = _collect_images(inputs)
    if aux is None:
        if need_aux:
            raise InputError(
                inputs[0],
                "no --aux given: this checkpoint needs a depth/thermal map per image "
                "(--aux FILE or --aux FOLDER with maps named like the images)",
            )
        return [SODItem(stem, path, None) for stem, path in sorted(images.items())]
    aux_path = Path(aux)
    if not need_aux:
        log.info("this checkpoint was trained without aux maps (zero_aux): --aux is ignored")
        return [SODItem(stem, path, None) for stem, path in sorted(images.items())]
    if aux_path.is_file():
        check_file(aux_path, AUX_EXTENSIONS)
        if len(images) != 1:
            raise InputError(
                aux_path,
                f"one aux file for {len(images)} images; pass a folder of maps named like "
                "the images",
            )
        ((stem, path),) = images.items()
        return [SODItem(stem, path, aux_path)]
    if not aux_path.is_dir():
        raise InputError(aux_path, "no such file or folder")
    dupes: list[str] = []
    maps = index_by_stem(aux_path, extensions=AUX_EXTENSIONS, problems=dupes)
    if dupes:
        raise InputError(aux_path, f"two maps share a name: {dupes[0]}")
    missing = sorted(stem for stem in images if stem not in maps)
    if missing:
        names = [images[stem].name for stem in missing]
        raise InputError(
            aux_path,
            f"no depth/thermal map named like {len(missing)} image(s): {_shown(names)}",
        )
    extra = sorted(set(maps) - set(images))
    if extra:
        log.debug("%s: %d map(s) without an image ignored", aux_path, len(extra))
    return [SODItem(stem, path, maps[stem]) for stem, path in sorted(images.items())]


# --------------------------------------------------------------------------------------------
# The run


def _load(item: SODItem) -> tuple[Any, Any]:
    """Read one item's image and map (in a worker thread)."""
    rgb = read_image(item.rgb)
    if item.aux is None:
        return rgb, None
    aux, valid = read_aux(item.aux)
    if not valid.any():
        log.warning("%s: no finite value in the map; predicting with an all-zero map", item.aux)
    return rgb, aux


def _batches(items: Sequence[SODItem], size: int) -> list[list[SODItem]]:
    return [list(items[i : i + size]) for i in range(0, len(items), size)]


def _loaded(
    pool: ThreadPoolExecutor, batches: Sequence[Sequence[SODItem]]
) -> Iterator[tuple[Sequence[SODItem], list[Future[Any]]]]:
    """Each batch with its read futures; the next batch is read while this one is used."""
    pending = [pool.submit(_load, item) for item in batches[0]] if batches else []
    for i, batch in enumerate(batches):
        current = pending
        if i + 1 < len(batches):
            pending = [pool.submit(_load, item) for item in batches[i + 1]]
        yield batch, current


def _predict_sod(args: argparse.Namespace) -> int:
    if getattr(args, "sentence", None):
        raise ConfigError("--sentence is not used by 'predict sod'")
    if args.batch_size < 1:
        raise ConfigError(f"--batch-size must be >= 1, got {args.batch_size}")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise InputError(out, "exists and is not a folder")

    # Check and pair every path before importing torch: mistakes fail in a blink.
    images = _collect_images(args.input)
    items = collect_sod_inputs(args.input, args.aux, need_aux=True) if args.aux else None

    inputs = list(images.items()) + [(it.stem, it.aux) for it in items or [] if it.aux]
    for stem, path in inputs:  # never write a map over an input file
        if (out / f"{stem}.png").resolve() == path.resolve():
            raise InputError(path, f"--out {out} would overwrite this input with its map")

    def todo_of(stems: Sequence[str]) -> list[str]:
        if not args.skip_existing:
            return list(stems)
        return [stem for stem in stems if not (out / f"{stem}.png").is_file()]

    if not todo_of(sorted(images)):
        log.info(
            "all %d map(s) already exist in %s (--skip-existing): nothing to do", len(images), out
        )
        return 0

    from cmseg.engine.predictors import SODPredictor  # torch: only when there is work

    predictor = SODPredictor.from_checkpoint(args.checkpoint, device=args.device)
    if items is None:
        items = collect_sod_inputs(args.input, None, need_aux=not predictor.zero_aux)
    elif predictor.zero_aux:
        log.info("this checkpoint was trained without aux maps (zero_aux): --aux is ignored")
        items = [SODItem(it.stem, it.rgb, None) for it in items]
    wanted = set(todo_of([it.stem for it in items]))
    todo = [it for it in items if it.stem in wanted]
    skipped = len(items) - len(todo)
    log.info(
        "predicting %d image(s) on %s%s",
        len(todo),
        predictor.device,
        f" ({skipped} existing skipped)" if skipped else "",
    )

    out.mkdir(parents=True, exist_ok=True)
    failed: list[str] = []
    written = 0
    batches = _batches(todo, args.batch_size)
    workers = max(2, min(8, os.cpu_count() or 1))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="cmseg-io") as pool:
        writes: list[tuple[SODItem, Future[None]]] = []
        bar = progress(_loaded(pool, batches), desc="predict", total=len(batches), unit="batch")
        for batch, futures in bar:
            ready: list[tuple[SODItem, Any, Any]] = []
            for item, future in zip(batch, futures, strict=True):
                try:
                    rgb, aux = future.result()
                except CmsegError as err:
                    log.error("error: %s", err)
                    failed.append(str(item.rgb))
                    continue
                ready.append((item, rgb, aux))
            if not ready:
                continue
            maps = predictor.predict_batch(
                [(rgb, aux) for _, rgb, aux in ready],
                names=[str(item.aux or item.rgb) for item, _, _ in ready],
            )
            for (item, _, _), saliency in zip(ready, maps, strict=True):
                writes.append((item, pool.submit(write_png, out / f"{item.stem}.png", saliency)))
        for item, future in writes:
            try:
                future.result()
                written += 1
            except (CmsegError, OSError) as err:
                log.error("error: %s: cannot write its map (%s)", item.rgb, err)
                failed.append(str(item.rgb))

    log.info(
        "wrote %d map(s) to %s%s", written, out, f" ({skipped} existing skipped)" if skipped else ""
    )
    if failed:
        raise InputError(out, f"{len(failed)} image(s) failed (listed above): {_shown(failed)}")
    return 0
