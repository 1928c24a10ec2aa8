"""The ``sod`` part of ``cmseg predict``: saliency maps of images with their depth or thermal
maps::

    cmseg predict sod --checkpoint runs/sod/best --rgb images/ --aux depth/ --out maps/
    cmseg predict sod --checkpoint runs/sod/best --rgb a.jpg --aux a_depth.png --out maps/

* ``--rgb`` / ``--input`` (several values, repeatable): image files, folders of images or
  patterns (``--rgb 'photos/*.jpg'``, or the paths a shell expands it to);
* ``--aux``: one depth/thermal file (with a single image) or a folder of maps paired with the
  images **by name stem** (``0001.jpg`` <-> ``0001.png`` / ``0001.npy``); images without a map
  are all listed in one error line before anything runs. Not needed for a checkpoint trained
  with ``data.options.zero_aux=true`` (RGB-only);
* ``--aux-key KEY``: the array to read from ``.npz`` maps that hold several (default: the
  checkpoint's ``data.options.aux_key``; a map that holds several without a key fails,
  naming its arrays);
* writes ``<out>/<stem>.png``: a 0..255 grey map at the image's original size;
* an aux map whose size differs from its image is resized to the image size, with a warning;
  NaN, +/-inf (``.npy``/``.npz``/float TIFF) are holes, set to 0 after the per-image
  normalisation, as in training;
* batched (``--batch-size``), images read by threads while the model runs. What every task's
  ``predict`` shares (``--skip-existing``, atomic writes, the list of failures) is
  :func:`cmseg.engine.prediction.run_prediction`.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cmseg.data.pairing import index_by_stem
from cmseg.engine.prediction import Outcome, PredictCommand, PredictItem, collect_images, shown
from cmseg.errors import CmsegError, InputError
from cmseg.io import (
    AUX_EXTENSIONS,
    AuxNormalisation,
    check_file,
    read_aux,
    read_image,
)

__all__ = ["SODItem", "collect_sod_inputs", "PREDICT"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SODItem:
    """One image to segment: its stem (output name), the image and its aux map (or None)."""

    stem: str
    rgb: Path
    aux: Path | None


def _pair_with_folder(images: dict[str, Path], aux_path: Path) -> list[SODItem]:
    """Pair every image with the map of its stem in the folder ``aux_path``."""
    if not aux_path.is_dir():
        raise InputError(aux_path, "no such file or folder")
    dupes: list[str] = []
    maps = index_by_stem(aux_path, extensions=AUX_EXTENSIONS, problems=dupes)
    if dupes:
        raise InputError(*dupes[0].split(": ", 1))
    missing = sorted(stem for stem in images if stem not in maps)
    if missing:
        names = [images[stem].name for stem in missing]
        raise InputError(
            aux_path, f"no depth/thermal map named like {len(missing)} image(s): {shown(names)}"
        )
    extra = sorted(set(maps) - set(images))
    if extra:
        log.debug("%s: %d map(s) without an image ignored", aux_path, len(extra))
    return [SODItem(stem, path, maps[stem]) for stem, path in sorted(images.items())]


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
    images = collect_images(inputs)
    if aux is None and need_aux:
        raise InputError(
            inputs[0],
            "no --aux given: this checkpoint needs a depth/thermal map per image "
            "(--aux FILE or --aux FOLDER with maps named like the images)",
        )
    if aux is None or not need_aux:
        if aux is not None:
            log.info("this checkpoint was trained without aux maps (zero_aux): --aux is ignored")
        return [SODItem(stem, path, None) for stem, path in sorted(images.items())]
    aux_path = Path(aux)
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
    return _pair_with_folder(images, aux_path)


def _as_work(items: Sequence[SODItem]) -> list[PredictItem]:
    return [
        PredictItem(it.stem, (it.rgb,) + ((it.aux,) if it.aux else ()), payload=it) for it in items
    ]


def _read(
    item: SODItem, aux_normalisation: AuxNormalisation, aux_key: str | None = None
) -> tuple[Any, Any]:
    """Read one item's image and map (in a worker thread), the map normalised as the
    checkpoint was trained (the predictor then leaves it as it is); ``aux_key`` picks the array
    of an ``.npz`` map that holds several."""
    rgb = read_image(item.rgb)
    if item.aux is None:
        return rgb, None
    aux, valid = read_aux(item.aux, key=aux_key, normalisation=aux_normalisation)
    if not valid.any():
        log.warning("%s: no finite value in the map; predicting with an all-zero map", item.aux)
    return rgb, aux


def _read_ahead(
    pool: ThreadPoolExecutor,
    batches: Sequence[Sequence[PredictItem]],
    aux_normalisation: AuxNormalisation,
    aux_key: str | None,
) -> Iterator[tuple[Sequence[PredictItem], list[Future[Any]]]]:
    """Each batch with its read futures; the next batch is read while this one is used."""

    def submit(batch: Sequence[PredictItem]) -> list[Future[Any]]:
        return [pool.submit(_read, item.payload, aux_normalisation, aux_key) for item in batch]

    pending = submit(batches[0]) if batches else []
    for i, batch in enumerate(batches):
        current = pending
        if i + 1 < len(batches):
            pending = submit(batches[i + 1])
        yield batch, current


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--rgb", "--input", dest="input", action="extend", nargs="+", required=True,
        metavar="PATH",
        help="image files, folders of images or patterns such as 'dir/*.jpg' (several after "
        "one flag, and repeatable)",
    )  # fmt: skip
    parser.add_argument(
        "--aux", default=None, metavar="FILE_OR_DIR",
        help="depth or thermal map (one image) or a folder of maps named like the images",
    )  # fmt: skip
    parser.add_argument(
        "--aux-key", default=None, metavar="KEY",
        help="the array to read from .npz maps that hold several, e.g. depth "
        "(default: the checkpoint's data.options.aux_key)",
    )  # fmt: skip


def _collect(args: argparse.Namespace) -> list[PredictItem]:
    # Pair now when --aux is given (mistakes fail before torch); without it, whether a map is
    # needed depends on the checkpoint (_prepare).
    return _as_work(collect_sod_inputs(args.input, args.aux, need_aux=bool(args.aux)))


def _load(args: argparse.Namespace) -> Any:
    from cmseg.tasks.sod.predictor import SODPredictor

    return SODPredictor.from_checkpoint(args.checkpoint, device=args.device)


def _prepare(
    predictor: Any, items: list[PredictItem], args: argparse.Namespace
) -> list[PredictItem]:
    """Drop the maps for an RGB-only checkpoint; demand them from any other."""
    if predictor.zero_aux:
        if args.aux:
            log.info("this checkpoint was trained without aux maps (zero_aux): --aux is ignored")
        return _as_work([SODItem(it.payload.stem, it.payload.rgb, None) for it in items])
    if not args.aux:
        collect_sod_inputs(args.input, None, need_aux=True)  # raises: no --aux given
    return items


def _aux_key(args: argparse.Namespace) -> str | None:
    """``--aux-key``, else the ``data.options.aux_key`` the checkpoint was trained with."""
    if args.aux_key:
        return str(args.aux_key)
    from cmseg.engine.checkpoint import load_checkpoint_meta

    options = ((load_checkpoint_meta(args.checkpoint).get("config") or {}).get("data") or {}).get(
        "options"
    ) or {}
    return str(options.get("aux_key") or "") or None


def _predict(
    predictor: Any, items: Sequence[PredictItem], args: argparse.Namespace
) -> Iterator[Outcome]:
    """Batches of ``--batch-size`` images, the next batch read while this one runs."""
    out = Path(args.out)
    batches = [list(items[i : i + args.batch_size]) for i in range(0, len(items), args.batch_size)]
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="cmseg-read") as pool:
        for batch, futures in _read_ahead(
            pool, batches, predictor.aux_normalisation, _aux_key(args)
        ):
            ready: list[tuple[PredictItem, Any, Any]] = []
            for item, future in zip(batch, futures, strict=True):
                try:
                    rgb, aux = future.result()
                except CmsegError as err:
                    yield Outcome(item, error=str(err))
                    continue
                ready.append((item, rgb, aux))
            if not ready:
                continue
            maps = predictor.predict_batch(
                [(rgb, aux) for _, rgb, aux in ready],
                names=[str(it.payload.aux or it.payload.rgb) for it, _, _ in ready],
            )
            for (item, _, _), saliency in zip(ready, maps, strict=True):
                yield Outcome(item, files={out / f"{item.name}.png": saliency})


PREDICT = PredictCommand(
    help="saliency maps of images with their depth or thermal maps", unit="image",
    batch_unit="images", add_arguments=_add_arguments, collect=_collect, load=_load,
    predict=_predict, prepare=_prepare,
)  # fmt: skip
