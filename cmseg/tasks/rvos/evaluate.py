"""``cmseg evaluate rvos``: J&F of video masks, with the conventions of the DAVIS 2017 toolkit
(``davis``), MeViS (``mevis``) or Ref-YouTube-VOS (``ytvos``). Layouts:

* ``davis``: ``<dir>/<video>/<frame>.png`` indexed masks (0 background, k = object k);
* ``mevis``, ``ytvos``: ``<dir>/<video>/<expression_id>/<frame>.png`` binary masks;
* ``mevis`` also: the ground truth as MeViS ships it, a split folder with
  ``meta_expressions.json`` and ``mask_dict.json`` (:mod:`cmseg.data.formats.mevis_masks`).
  Under ``mevis`` an expression without predictions scores J = F = 0, as MeViS's
  ``eval_mevis.py`` does (counted in the notes, ``scored_as_zero``), not a missing pair.

With no protocol named, a MeViS split folder is scored with ``mevis``, indexed ground truth
with ``davis`` and expression folders with ``ytvos``. A prediction frame of another size than its ground truth is resized to it
(nearest neighbour) and counted; a missing, unreadable or mismatched one is scored as an empty
mask and listed. :func:`vos_adapter` also serves ``fsrvos`` (the same layouts, CMA's
boundary tolerance).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from cmseg.data.formats.mevis_masks import is_mevis_split, mevis_masks, read_mevis_targets
from cmseg.data.pairing import Pairing, index_by_stem, index_subfolders, pair_by_key, require_dir
from cmseg.engine.eval_adapter import EvalAdapter, Findings, Job, fit_to_gt, resize_mask
from cmseg.errors import CmsegError, InputError
from cmseg.io import read_grey, read_index_mask, read_mask

__all__ = ["vos_adapter", "ADAPTER", "COLUMNS"]

COLUMNS = [
    ("J&F", "J&F"), ("J.mean", "J-M"), ("J.recall", "J-R"), ("J.decay", "J-D"),
    ("F.mean", "F-M"), ("F.recall", "F-R"), ("F.decay", "F-D"),
]  # fmt: skip


#: What --pred and --gt hold (both protocols' layouts).
LAYOUT = (
    "<video>/<frame>.png indexed masks (davis), or <video>/<expression>/<frame>.png binary masks "
    "(mevis, ytvos)"
)


def is_expression_layout(root: Path) -> bool:
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


def _units(root: Path, expression_layout: bool) -> dict[str, Path]:
    """``{video: folder}`` or ``{video/expression: folder}``: what one job scores."""
    found = {}
    for video, vdir in index_subfolders(root).items():
        if expression_layout:
            for expr, edir in index_subfolders(vdir).items():
                found[f"{video}/{expr}"] = edir
        else:
            found[video] = vdir
    return found


def choose_protocol(gt: Path, expression_default: str = "ytvos") -> str:
    """mevis for a MeViS split folder, davis for indexed ``<video>/<frame>.png`` ground
    truth, else ``expression_default``."""
    if is_mevis_split(require_dir(gt, "ground-truth")):
        return "mevis"
    return expression_default if is_expression_layout(gt) else "davis"


def collect(pred: Path, gt: Path, protocol: str) -> Pairing:
    """Pair the videos (davis) or the expressions of each video (the others) by name; under
    mevis every expression of the ground truth is a pair, those without a prediction folder
    scored J = F = 0 as MeViS's script does."""
    pred, gt = require_dir(pred, "prediction"), require_dir(gt, "ground-truth")
    if is_mevis_split(gt):
        if protocol != "mevis":
            raise InputError(
                gt, f"a MeViS split folder (mask_dict.json) is scored with the mevis protocol, "
                f"not {protocol}",
            )  # fmt: skip
        targets, problems = read_mevis_targets(gt)
        pairing = pair_by_key(_units(pred, True), dict.fromkeys(targets, gt), problems)
    else:
        pairing = _collect_folders(pred, gt, protocol)
    if protocol == "mevis":  # no prediction: J = F = 0 in score, not a missing pair
        pairing.pairs = sorted([*pairing.pairs, *((k, pred / k, g) for k, g in pairing.missing)])
        pairing.missing = []
    return pairing


def _collect_folders(pred: Path, gt: Path, protocol: str) -> Pairing:
    """``collect`` of PNG ground truth: ``<video>/<frame>`` or ``<video>/<expression>/``."""
    expression_layout = is_expression_layout(gt)
    if protocol == "davis" and expression_layout:
        raise InputError(
            gt,
            "the davis protocol expects <video>/<frame>.png indexed masks, "
            "found <video>/<expression>/ folders",
        )
    if protocol != "davis" and not expression_layout:
        raise InputError(
            gt, f"the {protocol} protocol expects <video>/<expression_id>/<frame>.png binary masks"
        )
    return pair_by_key(_units(pred, expression_layout), _units(gt, expression_layout))


def new_evaluator(protocol: str, options: dict[str, Any], *, default_bound_th: float) -> Any:
    """A :class:`~cmseg.metrics.vos.VOSEvaluator`; ``bound_th`` (option) defaults to the
    task's tolerance, as a fraction of the image diagonal (< 1) or in pixels (>= 1);
    ``short_side`` (option, ``cma`` only) to CMA's 360 (0: the native resolution)."""
    from cmseg.metrics.vos import VOSEvaluator

    short_side = options.get("short_side")
    if short_side is not None and protocol != "cma":
        raise CmsegError(f"--short-side applies to the cma protocol only, not {protocol}")
    try:
        return VOSEvaluator(
            protocol, bound_th=options.get("bound_th", default_bound_th), short_side=short_side
        )
    except ValueError as err:
        raise CmsegError(f"{protocol} protocol: {err}") from None


def _read_gt(frames: Mapping[str, Path], protocol: str) -> np.ndarray:
    """The ground-truth frames stacked ``(T, H, W)``; every frame must have one size."""
    read = read_index_mask if protocol == "davis" else read_mask
    gts = [read(path) for path in frames.values()]
    shape = gts[0].shape
    for stem, g in zip(frames, gts, strict=True):
        if g.shape != shape:
            raise InputError(frames[stem], f"frame size {g.shape} differs from the video's {shape}")
    return np.stack(gts)


#: What the note ``scored_as_zero`` counts.
ZERO_TEXT = "expression(s) without prediction scored J = F = 0, as MeViS's script does"


def score(evaluator: Any, job: Job, protocol: str, allow_missing: bool) -> Findings:
    """Score one video or expression on every annotated frame. A prediction frame that is
    missing, unreadable or of another image is scored as an empty mask and listed, the video
    kept (the same with and without ``allow_missing``); under mevis an expression without a
    prediction folder scores J = F = 0 (note ``scored_as_zero``)."""
    target = read_mevis_targets(job.gt)[0][job.key] if is_mevis_split(job.gt) else None
    gt_frames = {} if target else index_by_stem(job.gt)
    stems = list(target.frames) if target else list(gt_frames)
    if not stems:
        raise InputError(job.gt, "no annotated frames")
    findings = Findings()
    if protocol == "mevis" and not job.pred.is_dir():
        evaluator.add_zero(job.key, len(stems))
        findings.note("scored_as_zero", f"{job.pred}: no prediction folder", ZERO_TEXT)
        return findings
    gts = (
        mevis_masks(target, job.gt / "mask_dict.json") if target else _read_gt(gt_frames, protocol)
    )
    # cma: a prediction already at CMA's scoring size is taken as it is, not resized
    scoring = evaluator.scoring_shape(*gts.shape[1:]) if protocol == "cma" else None
    preds = _read_predictions(job.pred, stems, gts, protocol, findings, scoring)
    try:
        evaluator.update(preds, gts, job.key)
    except ValueError as err:
        raise InputError(job.pred, str(err)) from None
    return findings


def _read_predictions(
    folder: Path,
    stems: list[str],
    gts: np.ndarray,
    protocol: str,
    findings: Findings,
    scoring: tuple[int, int] | None = None,
) -> np.ndarray:
    """The prediction frames of ``stems`` stacked ``(T, H, W)`` at the ground truth's size
    (or all at the ``scoring`` size when the first is); an empty mask for each frame that is
    missing (one ``missing`` line per folder), unreadable or of another image (a problem
    each)."""
    found = index_by_stem(folder) if folder.is_dir() else {}
    shape = gts.shape[1:]
    preds, missing = [], []
    for stem in stems:
        empty = np.zeros(shape, dtype=gts.dtype)
        if stem not in found:
            missing.append(stem)
            preds.append(empty)
            continue
        try:
            frame = _read_pred_frame(found[stem], protocol)
            if frame.shape != scoring:
                frame = fit_to_gt(frame, shape, found[stem], findings, resize_mask)
            preds.append(frame)
        except InputError as err:  # scored like a missing frame
            findings.problem(err)
            preds.append(empty)
    if missing:
        findings.missing.append(
            f"{folder}: {len(missing)} frame(s) without prediction (scored as empty), "
            f"e.g. {missing[0]}"
        )
    if scoring is not None and any(p.shape == scoring for p in preds):  # one size for all
        preds = [p if p.shape == scoring else _to_size(p, scoring) for p in preds]
    return np.stack(preds)


def _to_size(mask: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """cma: a frame at the GT's size brought to the scoring size (bilinear, ``> 0.5``)."""
    from cmseg.metrics.vos.cma import resize_masks

    return resize_masks(mask[None] != 0, shape)[0]


def summarise(evaluator: Any, protocol: str) -> dict[str, Any]:
    per_sequence = evaluator.per_sequence()
    return {
        "num_items": len(per_sequence),
        "metrics": evaluator.compute(),
        "per_sequence": per_sequence,
    }


def vos_adapter(
    name: str,
    default_bound_th: float,
    *,
    protocols: tuple[str, ...] = ("davis", "mevis", "ytvos"),
    expression_default: str = "ytvos",
    options: frozenset[str] = frozenset({"bound_th"}),
) -> EvalAdapter:
    """The evaluation of a referring-video task (module docstring).

    Args:
        name: the task (``rvos`` or ``fsrvos``).
        default_bound_th: the boundary tolerance of F when ``bound_th`` is not given.
        protocols: the protocols offered (the first is the default of the API).
        expression_default: the protocol chosen for ``<video>/<expression>/`` ground truth.
        options: the protocol options taken (``bound_th``; fsrvos also ``short_side``).
    """
    return EvalAdapter(
        name, protocols, collect=collect,
        new_evaluator=functools.partial(new_evaluator, default_bound_th=default_bound_th),
        score=score, summarise=summarise, columns=COLUMNS, chunk_size=1,  # a job is a video
        options=options,
        choose_protocol=functools.partial(choose_protocol, expression_default=expression_default),
        layout=LAYOUT,
    )  # fmt: skip


#: The DAVIS toolkit's boundary tolerance (0.008 of the diagonal).
ADAPTER = vos_adapter("rvos", default_bound_th=0.008)
