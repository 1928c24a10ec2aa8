"""``cmseg demo coseg``: synthetic groups -> SSNM and two ablations -> one table.

What it does, on a 2-core CPU in about ten minutes:

1. writes the synthetic co-segmentation groups (:func:`cmseg.data.synthetic.write_coseg`:
   :data:`GROUPS` groups of :data:`GROUP_SIZE` images at :data:`IMAGE_SIZE` px over the 12
   shape classes, the last fifth of each class's groups in ``test``) under ``<out>/data``;
2. trains on the ``train`` groups of the first 9 shape classes only (:data:`TRAIN_CLASSES`,
   ``data.options.classes``); the groups of the last three (:data:`UNSEEN`: ``arrow``,
   ``crescent``, ``ring``) are never trained on. Objects of those shapes still appear in training images as
   *distractors*: the generator draws an image's distractors from all 12 classes, so the
   unseen classes are unseen as a group's common object, not as pixels;
3. trains three models the same way (same data, steps, batch, optimizer, schedule, seed, loss)
   through the ``coseg`` training hook and the engine's :class:`~cmseg.engine.trainer.Trainer`
   (the loop all demos share, :func:`cmseg.engine.demo.run_recipe`):

   * **SSNM** (``ssnm_tiny``): the spatial modulator (the group's top eigenvector as a shift)
     and the semantic modulator (hierarchical second-order pooling, the group vector as a
     scale, the co-category classifier);
   * **without the spatial modulator** (``model.options.spatial_modulator: false``);
   * **without the semantic modulator** (``semantic_modulator: false``: no scale, no
     classifier, no classification loss);

   all with :data:`MODEL_OPTIONS` (``hsp_mean``: the Gram matrices as means, not the official
   sums, which put the scale in the thousands and kill the group-pooling units of a model
   trained from scratch; HSP 64/32 as the paper's) and ``foreground_weight: balanced``: with
   SSNM's official weighting (foreground pixels weighted by the foreground fraction, so the
   majority background weighs more) the tiny model trained from scratch ends predicting
   background (measured: J 0.09 after 300 steps). Adam, poly decay;
4. predicts, through :class:`~cmseg.tasks.coseg.predictor.CosegPredictor`, groups of 5 by the
   consecutive-chunk rule of SSNM's test script (:func:`~cmseg.tasks.coseg.cli.collect_groups`,
   which gives back exactly the generated groups): (a) the ``test`` groups of the training
   classes (*held-out groups, training classes*) and (b) every group, ``train`` and ``test``,
   of the unseen classes (*unseen classes*);
5. scores them with :func:`~cmseg.engine.evaluate.evaluate_folders` and the coseg adapter, P
   and J with the ``native`` protocol (at the images' own 128 px; SSNM's ``ssnm`` protocol would
   resize everything to 224 first), and prints one table: method x condition.

Files under ``<out>`` (default ``runs/demo_coseg``)::

    data/                          the generated groups (train/, test/)
    sets/{heldout,unseen}/         the two scored sets, {image, groundtruth}/<class>/
    runs/<method>/last/            checkpoints (model.safetensors + meta.json), metrics.csv
    predictions/<method>/<set>/<class>/<name>.png   probability x 255
    results.json  table.md         every number, and the table as Markdown
    cmseg_demo.json                marks the folder as the demo's

The run configurations are :func:`demo_config` (also shipped as
``configs/coseg/demo_{ssnm,no_spatial,no_semantic}.yaml``). ``CMSEG_DEMO_STEPS`` (training
steps per model) and ``CMSEG_DEMO_SCENES`` (number of groups, at least 24: two per class) shorten
the run for tests and quick looks.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cmseg.config import ModelConfig, OptimConfig, RunConfig, ScheduleConfig
from cmseg.data.synthetic import draw
from cmseg.engine.demo import (
    DemoRecipe,
    DemoReport,
    DemoRun,
    condition_rows,
    data_section,
    train_section,
)
from cmseg.errors import ConfigError

__all__ = [
    "METHODS", "GROUPS", "IMAGE_SIZE", "GROUP_SIZE", "STEPS", "TRAIN_CLASSES", "UNSEEN",
    "MODEL_OPTIONS", "CONDITIONS", "demo_config", "RECIPE",
]  # fmt: skip

log = logging.getLogger(__name__)

#: The demo's methods: key -> (table name, spatial modulator on, semantic modulator on).
METHODS: dict[str, tuple[str, bool, bool]] = {
    "ssnm": ("SSNM", True, True),
    "no_spatial": ("SSNM without the spatial modulator", False, True),
    "no_semantic": ("SSNM without the semantic modulator", True, False),
}

#: Groups generated (cycling through the classes: 30 per class, 6 of them in ``test``), images
#: per group and their side in pixels.
GROUPS = 360
GROUP_SIZE = 5
IMAGE_SIZE = 128
CLASSES = 12
TEST_FRACTION = 0.2
#: The training classes (the first shape classes) and those never trained on.
TRAIN_CLASSES: tuple[str, ...] = tuple(draw.SHAPES[:9])
UNSEEN: tuple[str, ...] = tuple(draw.SHAPES[9:CLASSES])
#: Training steps per model: the whole demo (data, 3 trainings, prediction, scoring) in about
#: 10 minutes on a free 2-core CPU (measured: see the README's coseg demo section).
STEPS = 600

#: The recipe shared by the three runs (they differ only in the two modulator switches).
MODEL_OPTIONS: dict[str, Any] = {"hsp_mean": True, "hsp_channels": [64, 32]}
BATCH_SIZE = 4  #: groups per step (20 images)
LEARNING_RATE = 1e-3
WARMUP_STEPS = 20
#: The scored conditions: key -> table label.
CONDITIONS: dict[str, str] = {
    "heldout": "training classes, held-out groups",
    "unseen": "unseen classes",
}

OWNED = ("data", "sets", "runs", "predictions", "results.json", "table.md")


def demo_config(
    method: str,
    *,
    root: str | os.PathLike[str] = "runs/demo_coseg/data",
    output_dir: str | os.PathLike[str] = "runs/demo_coseg/runs",
    seed: int = 0,
    steps: int = STEPS,
    device: str = "auto",
) -> RunConfig:
    """The run configuration of one of the demo's :data:`METHODS` (``ssnm``, ``no_spatial``
    or ``no_semantic``).

    Args:
        root: the generated groups (their ``train`` set is used).
        output_dir: the run folder.
    """
    if method not in METHODS:
        raise ConfigError(f"unknown demo method {method!r}; choose from {', '.join(METHODS)}")
    _, spatial, semantic = METHODS[method]
    options = dict(MODEL_OPTIONS, spatial_modulator=spatial, semantic_modulator=semantic)
    return RunConfig(
        task="coseg",
        output_dir=str(output_dir),
        model=ModelConfig(name="ssnm_tiny", backbone="", image_size=IMAGE_SIZE, options=options),
        data=data_section(
            root,
            "folders",
            BATCH_SIZE,
            {
                "group_size": GROUP_SIZE,
                "classes": list(TRAIN_CLASSES),
                # the demo scores the test split itself: every train image is trained on
                "heldout_per_class": 0,
                "foreground_weight": "balanced",
                "protocol": "native",
            },
        ),
        optim=OptimConfig(name="adam", lr=LEARNING_RATE),
        schedule=ScheduleConfig(
            name="poly", power=0.9, warmup_steps=min(WARMUP_STEPS, max(0, steps - 1))
        ),
        train=train_section(steps, seed, device),
    )


# --------------------------------------------------------------------------------------------
# The recipe's hooks (cmseg.engine.demo.DemoRecipe)


@dataclass
class _Context:
    """What the methods share: the data and the two scored sets."""

    data: Path
    sets: dict[str, Path]
    counts: dict[str, dict[str, int]]


def _gather(sources: list[Path], classes: tuple[str, ...], dest: Path) -> dict[str, int]:
    """Copy the ``image`` and ``groundtruth`` class folders ``classes`` of the processed sets
    ``sources`` into one set ``dest``; returns ``{"groups", "images"}``."""
    images = 0
    for source in sources:
        for kind in ("image", "groundtruth"):
            for cls in classes:
                folder = source / kind / cls
                if not folder.is_dir():
                    continue
                target = dest / kind / cls
                target.mkdir(parents=True, exist_ok=True)
                for path in sorted(folder.iterdir()):
                    shutil.copyfile(path, target / path.name)
                    images += kind == "image"
    return {"groups": images // GROUP_SIZE, "images": images}


def _prepare(run: DemoRun) -> _Context:
    from cmseg.data.synthetic.coseg import write_coseg

    data, sets = run.out / "data", run.out / "sets"
    tick = time.perf_counter()
    summary = write_coseg(
        data, n=run.samples, size=IMAGE_SIZE, seed=run.seed, classes=CLASSES,
        group_size=GROUP_SIZE, test_fraction=TEST_FRACTION,
    )  # fmt: skip
    per_class = summary["groups_per_class"]
    train_groups = sum(
        1 for g in summary["group_list"] if g["split"] == "train" and g["class"] in TRAIN_CLASSES
    )
    counts = {
        "train": {"groups": train_groups, "images": train_groups * GROUP_SIZE},
        "heldout": _gather([data / "test"], TRAIN_CLASSES, sets / "heldout"),
        "unseen": _gather([data / "train", data / "test"], UNSEEN, sets / "unseen"),
    }
    log.info(
        "data: %d groups over %d classes (%s per class) at %d px in %s, %.1f s; training on %d "
        "groups of %s; scoring %d held-out groups and %d groups of the unseen %s",
        run.samples, CLASSES, "/".join(str(v) for v in sorted(set(per_class.values()))),
        IMAGE_SIZE, data, time.perf_counter() - tick, train_groups, ", ".join(TRAIN_CLASSES),
        counts["heldout"]["groups"], counts["unseen"]["groups"], ", ".join(UNSEEN),
    )  # fmt: skip
    return _Context(data, {k: sets / k for k in CONDITIONS}, counts)


def _config(key: str, run: DemoRun, ctx: _Context) -> RunConfig:
    return demo_config(
        key, root=ctx.data, output_dir=run.out / "runs" / key, seed=run.seed, steps=run.steps,
        device=run.device,
    )  # fmt: skip


def _predict_set(predictor: Any, root: Path, out_dir: Path, batch: int = 8) -> None:
    """Write ``<out_dir>/<class>/<name>.png`` (probability x 255) for every image of the
    processed set ``root``, predicted in SSNM's consecutive groups of :data:`GROUP_SIZE`."""
    import numpy as np

    from cmseg.io import read_image, write_png
    from cmseg.tasks.coseg.cli import collect_groups

    groups: dict[Any, list[Any]] = {}
    for item in collect_groups(root, GROUP_SIZE):
        groups.setdefault(item.payload.group, []).append(item)
    ordered = list(groups.values())
    for start in range(0, len(ordered), batch):
        chunk = ordered[start : start + batch]
        images = [[read_image(p) for p in items[0].payload.members] for items in chunk]
        for items, maps in zip(chunk, predictor.predict_groups(images), strict=True):
            for item in items:
                prob = maps[item.payload.position]
                png = np.round(np.clip(prob, 0.0, 1.0) * 255.0).astype(np.uint8)
                write_png(out_dir / f"{item.name}.png", png)


def _score(key: str, checkpoint: Path, run: DemoRun, ctx: _Context) -> dict[str, Any]:
    from cmseg.engine.evaluate import evaluate_folders
    from cmseg.tasks.coseg.evaluate import ADAPTER
    from cmseg.tasks.coseg.predictor import CosegPredictor

    predictor = CosegPredictor.from_checkpoint(checkpoint, device=run.device)
    results: dict[str, Any] = {}
    for condition, root in ctx.sets.items():
        pred_dir = run.out / "predictions" / key / condition
        _predict_set(predictor, root, pred_dir)
        report = evaluate_folders(
            ADAPTER, pred_dir, root / "groundtruth", protocol="native", workers=1,
            name=f"{key}/{condition}",
        )  # fmt: skip
        result = dict(report.result)
        result.pop("per_item", None)  # results.json keeps the per-class scores
        results[condition] = result
    _, spatial, semantic = METHODS[key]
    return {
        "model": "ssnm_tiny",
        "spatial_modulator": spatial,
        "semantic_modulator": semantic,
        "params": int(sum(p.numel() for p in predictor.model.parameters())),
        "results": results,
    }


def _describe(entry: Mapping[str, Any]) -> str:
    j = {c: entry["results"][c]["metrics"]["J"] for c in CONDITIONS}
    return f"J {j['heldout']:.3f} held-out groups, {j['unseen']:.3f} unseen classes"


def _report(run: DemoRun, ctx: _Context, entries: Mapping[str, Mapping[str, Any]]) -> DemoReport:
    header = ["method", "classes at test", "P", "J"]
    rows = condition_rows(entries, CONDITIONS, ["P", "J"])
    title = (
        f"coseg demo: {ctx.counts['train']['groups']} training groups of {GROUP_SIZE} synthetic "
        f"images at {IMAGE_SIZE} px ({len(TRAIN_CLASSES)} shape classes); scored (P, J, native "
        f"protocol) on {ctx.counts['heldout']['groups']} held-out groups of those classes and "
        f"{ctx.counts['unseen']['groups']} groups of {len(UNSEEN)} classes never trained on "
        f"({', '.join(UNSEEN)}); {run.steps} training steps per model ({BATCH_SIZE} groups), "
        f"seed {run.seed}"
    )
    summary = {
        "groups": run.samples, "size": IMAGE_SIZE, "group_size": GROUP_SIZE, "steps": run.steps,
        "train_classes": list(TRAIN_CLASSES), "unseen_classes": list(UNSEEN),
        "counts": ctx.counts, "protocol": "native",
    }  # fmt: skip
    return DemoReport(title, header, rows, summary)


RECIPE = DemoRecipe(
    task="coseg", methods={key: name for key, (name, _, _) in METHODS.items()},
    default_out="runs/demo_coseg", owned=OWNED, steps=STEPS, samples=GROUPS, min_samples=24,
    prepare=_prepare, config=_config, score=_score, describe=_describe, report=_report,
)  # fmt: skip
