"""How each task's prediction and ground-truth files are found, read and scored.

One small adapter per task gives the folder evaluator (:mod:`cmseg.engine.evaluate`) four
things: how to pair files (``collect``), a fresh evaluator (``new_evaluator``), how to read and
score one pair (``score``, run in worker processes) and how to turn the merged evaluator into
the JSON result (``summarise``). Layouts:

==========  =========================================================================
sod         ``<pred>/<name>.png`` (grey 0..255) vs ``<gt>/<name>.png``
coseg       ``<pred>/<class>/<name>.png`` (soft or binary) vs ``<gt>/<class>/<name>.png``
ris         ``<pred>/<id>.png`` (binary) vs ``<gt>/<id>.png``
rvos        ``<dir>/<video>/<frame>.png`` indexed masks (davis), or
fsrvos      ``<dir>/<video>/<expression_id>/<frame>.png`` binary masks (mevis, ytvos)
==========  =========================================================================

Predictions whose size differs from their ground truth are resized to it: bilinearly for
soft maps (as PySODEvalToolkit does with OpenCV; PIL's bilinear for the ``spnet`` protocol, as
SPNet's evaluator does), nearest-neighbour for binary and indexed masks.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from cmseg.data.pairing import (
    Pairing,
    index_by_stem,
    index_subfolders,
    pair_by_key,
    pair_files,
    pair_nested,
    require_dir,
)
from cmseg.errors import InputError
from cmseg.io import read_grey, read_index_mask, read_mask


@dataclass(frozen=True)
class Job:
    """One unit of scoring: an image pair, or a video / expression folder pair."""

    key: str
    pred: Path
    gt: Path


def _keyed(items: list[dict[str, Any]], *keys: str) -> dict[str, dict[str, Any]]:
    """``[{"name": "a", ...}]`` -> ``{"a": {...}}`` (the JSON schema keys items by name)."""
    out = {}
    for item in items:
        rest = {k: v for k, v in item.items() if k not in keys}
        out["/".join(str(item[k]) for k in keys)] = rest
    return out


class Adapter(Protocol):
    protocols: tuple[str, ...]
    default_protocol: str
    chunk_size: int

    def choose_protocol(self, gt: Path) -> str: ...
    def collect(self, pred: Path, gt: Path, protocol: str) -> Pairing: ...
    def new_evaluator(self, protocol: str, options: dict[str, Any]) -> Any: ...
    def score(self, evaluator: Any, job: Job, protocol: str, allow_missing: bool) -> list[str]:
        """Read and score one job; returns notes on what was tolerated (``allow_missing``)."""
        ...
    def summarise(self, evaluator: Any, protocol: str) -> dict[str, Any]: ...
    def table_layout(self, protocol: str) -> str: ...


def _resize(array: np.ndarray, shape: tuple[int, ...], *, nearest: bool) -> np.ndarray:
    import cv2

    interpolation = cv2.INTER_NEAREST if nearest else cv2.INTER_LINEAR
    return cv2.resize(array, (shape[1], shape[0]), interpolation=interpolation)


def _check_options(options: dict[str, Any], allowed: set[str], task: str) -> None:
    unknown = set(options) - allowed
    if unknown:
        from cmseg.errors import CmsegError

        raise CmsegError(f"unknown option(s) {', '.join(sorted(unknown))} for task {task}; allowed: {', '.join(sorted(allowed)) or 'none'}")


# --------------------------------------------------------------------------------------------
# sod


class SODAdapter:
    def choose_protocol(self, gt: Path) -> str:
        return self.default_protocol

    protocols = ("pysodmetrics", "spnet")
    default_protocol = "pysodmetrics"
    chunk_size = 16

    def collect(self, pred: Path, gt: Path, protocol: str) -> Pairing:
        return pair_files(require_dir(pred, "prediction"), require_dir(gt, "ground-truth"))

    def new_evaluator(self, protocol: str, options: dict[str, Any]) -> Any:
        _check_options(options, set(), "sod")
        if protocol == "spnet":
            from cmseg.metrics.sod_spnet import SPNetEvaluator

            return SPNetEvaluator()
        from cmseg.metrics.sod import SODEvaluator

        return SODEvaluator()

    def score(self, evaluator: Any, job: Job, protocol: str, allow_missing: bool) -> list[str]:
        pred, gt = read_grey(job.pred), read_grey(job.gt)
        if pred.shape != gt.shape:
            if protocol == "spnet":  # SPNet resizes with PIL's bilinear filter
                from cmseg.metrics.sod_spnet import resize_to
            else:  # PySODEvalToolkit resizes with OpenCV's INTER_LINEAR
                from cmseg.metrics.sod import resize_to
            pred = resize_to(pred, gt.shape)
        evaluator.update(pred, gt, name=job.key)
        return []

    def summarise(self, evaluator: Any, protocol: str) -> dict[str, Any]:
        per_item = evaluator.per_item()
        result = {"num_items": len(per_item), "metrics": evaluator.compute(), "per_item": per_item}
        if protocol == "pysodmetrics":
            result["curves"] = evaluator.curves()
        return result

    def table_layout(self, protocol: str) -> str:
        return "sod:spnet" if protocol == "spnet" else "sod"


# --------------------------------------------------------------------------------------------
# coseg


class CosegAdapter:
    def choose_protocol(self, gt: Path) -> str:
        return self.default_protocol

    protocols = ("ssnm",)
    default_protocol = "ssnm"
    chunk_size = 16

    def collect(self, pred: Path, gt: Path, protocol: str) -> Pairing:
        return pair_nested(require_dir(pred, "prediction"), require_dir(gt, "ground-truth"))

    def new_evaluator(self, protocol: str, options: dict[str, Any]) -> Any:
        _check_options(options, {"threshold", "cap"}, "coseg")
        from cmseg.metrics.masks import CosegEvaluator

        return CosegEvaluator(**options)

    def score(self, evaluator: Any, job: Job, protocol: str, allow_missing: bool) -> list[str]:
        pred, gt = read_grey(job.pred), read_mask(job.gt)
        if pred.shape != gt.shape:
            pred = _resize(pred, gt.shape, nearest=False)
        cls, name = job.key.split("/", 1)
        evaluator.update(pred, gt, cls=cls, name=name)
        return []

    def summarise(self, evaluator: Any, protocol: str) -> dict[str, Any]:
        metrics = evaluator.compute()
        return {
            "num_items": len(evaluator),
            "metrics": metrics,
            "per_class": evaluator.per_class(),
            "per_item": _keyed(evaluator.per_item(), "class", "name"),
        }

    def table_layout(self, protocol: str) -> str:
        return "coseg"


# --------------------------------------------------------------------------------------------
# ris


class RISAdapter:
    def choose_protocol(self, gt: Path) -> str:
        return self.default_protocol

    protocols = ("lavt", "cris", "mttr")
    default_protocol = "lavt"
    chunk_size = 32

    def collect(self, pred: Path, gt: Path, protocol: str) -> Pairing:
        return pair_files(require_dir(pred, "prediction"), require_dir(gt, "ground-truth"))

    def new_evaluator(self, protocol: str, options: dict[str, Any]) -> Any:
        _check_options(options, set(), "ris")
        from cmseg.metrics.masks import RISEvaluator

        return RISEvaluator(convention=protocol)

    def score(self, evaluator: Any, job: Job, protocol: str, allow_missing: bool) -> list[str]:
        pred, gt = read_mask(job.pred), read_mask(job.gt)
        if pred.shape != gt.shape:
            pred = _resize(pred.astype(np.uint8), gt.shape, nearest=True).astype(bool)
        evaluator.update(pred, gt, name=job.key)
        return []

    def summarise(self, evaluator: Any, protocol: str) -> dict[str, Any]:
        return {"num_items": len(evaluator), "metrics": evaluator.compute(), "per_item": _keyed(evaluator.per_item(), "name")}

    def table_layout(self, protocol: str) -> str:
        return "ris"


# --------------------------------------------------------------------------------------------
# rvos / fsrvos


def _is_expression_layout(root: Path) -> bool:
    """True for ``<video>/<expression>/<frame>.png``, False for ``<video>/<frame>.png``."""
    for video in index_subfolders(root).values():
        if index_subfolders(video):
            return True
        if index_by_stem(video):
            return False
    return False


def _read_pred_frame(path: Path, protocol: str) -> np.ndarray:
    if protocol == "davis":
        return read_index_mask(path)
    if protocol == "mevis":  # MeViS's script: any non-zero grey value is foreground
        return read_grey(path) > 0
    return read_mask(path)


class VOSAdapter:
    protocols = ("davis", "mevis", "ytvos")
    chunk_size = 1  # a job is a whole video or expression

    def __init__(self, expression_protocol: str, default_bound_th: float) -> None:
        self.default_protocol = "davis"
        self.expression_protocol = expression_protocol
        self.default_bound_th = default_bound_th

    def choose_protocol(self, gt: Path) -> str:
        """davis for indexed ``<video>/<frame>.png`` ground truth, else the expression protocol."""
        return self.expression_protocol if _is_expression_layout(require_dir(gt, "ground-truth")) else "davis"

    def collect(self, pred: Path, gt: Path, protocol: str) -> Pairing:
        pred, gt = require_dir(pred, "prediction"), require_dir(gt, "ground-truth")
        expression_layout = _is_expression_layout(gt)
        if protocol == "davis" and expression_layout:
            raise InputError(gt, "the davis protocol expects <video>/<frame>.png indexed masks, found <video>/<expression>/ folders")
        if protocol != "davis" and not expression_layout:
            raise InputError(gt, f"the {protocol} protocol expects <video>/<expression_id>/<frame>.png binary masks")

        def units(root: Path) -> dict[str, Path]:
            found = {}
            for video, vdir in index_subfolders(root).items():
                if expression_layout:
                    for expr, edir in index_subfolders(vdir).items():
                        found[f"{video}/{expr}"] = edir
                else:
                    found[video] = vdir
            return found

        return pair_by_key(units(pred), units(gt))

    def new_evaluator(self, protocol: str, options: dict[str, Any]) -> Any:
        _check_options(options, {"bound_th"}, "rvos")
        from cmseg.metrics.vos import VOSEvaluator

        return VOSEvaluator(protocol, bound_th=options.get("bound_th", self.default_bound_th))

    def score(self, evaluator: Any, job: Job, protocol: str, allow_missing: bool) -> list[str]:
        gt_frames = index_by_stem(job.gt)
        if not gt_frames:
            raise InputError(job.gt, "no annotated frames")
        pred_frames = index_by_stem(job.pred)
        missing = [stem for stem in gt_frames if stem not in pred_frames]
        if missing and not allow_missing:
            raise InputError(job.pred, f"{len(missing)} frame(s) without prediction, e.g. {missing[0]}")
        read = read_index_mask if protocol == "davis" else read_mask
        gts = [read(path) for path in gt_frames.values()]
        shape = gts[0].shape
        for stem, g in zip(gt_frames, gts, strict=True):
            if g.shape != shape:
                raise InputError(gt_frames[stem], f"frame size {g.shape} differs from the video's {shape}")
        preds = []
        for stem in gt_frames:
            if stem not in pred_frames:  # only with allow_missing: scored as an empty prediction
                preds.append(np.zeros(shape, dtype=gts[0].dtype))
                continue
            p = _read_pred_frame(pred_frames[stem], protocol)
            if p.shape != shape:
                p = _resize(p.astype(np.uint8), shape, nearest=True)
            preds.append(p)
        try:
            evaluator.update(np.stack(preds), np.stack(gts), job.key)
        except ValueError as err:
            raise InputError(job.pred, str(err)) from None
        if missing:
            return [f"{job.pred}: {len(missing)} frame(s) without prediction scored as empty, e.g. {missing[0]}"]
        return []

    def summarise(self, evaluator: Any, protocol: str) -> dict[str, Any]:
        per_sequence = evaluator.per_sequence()
        return {"num_items": len(per_sequence), "metrics": evaluator.compute(), "per_sequence": per_sequence}

    def table_layout(self, protocol: str) -> str:
        return "vos"


# --------------------------------------------------------------------------------------------
# a2d (A2D-Sentences / JHMDB-Sentences: COCO-format JSON files, not folders)


class _A2DRun:
    """Holds the one A2DEvaluator of a run (built from the GT file inside ``score``)."""

    def __init__(self) -> None:
        self.evaluator: Any = None

    def merge(self, other: _A2DRun) -> None:
        self.evaluator = other.evaluator or self.evaluator


class A2DAdapter:
    protocols = ("a2d",)
    default_protocol = "a2d"
    chunk_size = 1

    def choose_protocol(self, gt: Path) -> str:
        return "a2d"

    def collect(self, pred: Path, gt: Path, protocol: str) -> Pairing:
        for path, what in ((pred, "prediction"), (gt, "ground-truth")):
            if not path.is_file():
                raise InputError(path, f"{what} must be a COCO-format JSON file")
        return Pairing(pairs=[("results", pred, gt)])

    def new_evaluator(self, protocol: str, options: dict[str, Any]) -> _A2DRun:
        _check_options(options, set(), "a2d")
        return _A2DRun()

    def score(self, evaluator: _A2DRun, job: Job, protocol: str, allow_missing: bool) -> list[str]:
        from cmseg.metrics.coco import A2DEvaluator

        evaluator.evaluator = A2DEvaluator(job.gt)
        evaluator.evaluator.update(job.pred)
        return []

    def summarise(self, evaluator: _A2DRun, protocol: str) -> dict[str, Any]:
        ev = evaluator.evaluator
        per_item = _keyed(ev.per_item(), "image_id")
        return {"num_items": len(per_item), "metrics": ev.compute(), "per_item": per_item}

    def table_layout(self, protocol: str) -> str:
        return "a2d"


ADAPTERS: dict[str, Any] = {
    "sod": SODAdapter(),
    "coseg": CosegAdapter(),
    "ris": RISAdapter(),
    "rvos": VOSAdapter(expression_protocol="ytvos", default_bound_th=0.008),
    # CMA scores Mini-Ref-YouTube-VOS per expression with a 0.010 boundary tolerance.
    "fsrvos": VOSAdapter(expression_protocol="ytvos", default_bound_th=0.010),
    "a2d": A2DAdapter(),
}
