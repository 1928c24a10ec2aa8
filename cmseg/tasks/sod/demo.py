"""``cmseg demo sod`` (``make demo``): built-in data -> train -> predict -> evaluate -> one table.

What it does, on a laptop CPU in a few minutes (README "Quick start"):

1. writes the synthetic RGB-D benchmark (:func:`cmseg.data.synthetic.write_synthetic`) under
   ``<out>/data/{train,test}`` and a copy of the held-out split whose depth maps are corrupted
   (noise + holes + an RGB/depth misalignment shift, :data:`CORRUPTION`) under
   ``<out>/data_corrupted/test``;
2. trains three models the same way (same data, steps, batch, optimizer, schedule, seed),
   through the ``sod`` training hook and the engine's :class:`~cmseg.engine.trainer.Trainer`
   (the loop all demos share, :func:`cmseg.engine.demo.run_recipe`):

   * **XMSNet** (``xmsnet_tiny``): two encoders, all-round attentive fusion, coarse-to-fine
     decoder;
   * **RGB-only**: the same XMSNet with its aux input zeroed at training and test time
     (``data.options.zero_aux``);
   * **early fusion** (``early_fusion_c2f_tiny``): RGB and depth concatenated into one
     4-channel encoder, followed by XMSNet's own coarse-to-fine decoder and trained with
     XMSNet's loss (:class:`cmseg.models.xmsnet.baselines.EarlyFusionC2F`): the controlled ablation
     of what XMSNet adds, two encoders and the all-round attentive fusion;

3. predicts the held-out split with clean and with corrupted depth through
   :class:`~cmseg.tasks.sod.predictor.SODPredictor` (the checkpoint's own pre/postprocessing);
4. scores the maps with :func:`~cmseg.engine.evaluate.evaluate_folders` (PySODMetrics
   conventions) and prints one table: S-measure, max F, mean E, MAE per method and condition.

Files under ``<out>`` (default ``runs/demo``)::

    data/ data_corrupted/           the generated scenes
    runs/<method>/last/             checkpoints (model.safetensors + meta.json), metrics.csv
    predictions/<method>/<clean|corrupted>/<name>.png
    results.json  table.md          every number, and the table as Markdown
    cmseg_demo.json                 marks the folder as the demo's: a re-run replaces only
                                    what the demo wrote

The run configurations are :func:`demo_config` (also shipped as
``configs/sod/demo_{xmsnet,rgb_only,early_fusion}.yaml`` for ``cmseg train``). For tests and
quick looks, ``CMSEG_DEMO_STEPS`` (training steps per model) and ``CMSEG_DEMO_SCENES`` (number
of scenes) shorten the run.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cmseg.config import ModelConfig, OptimConfig, RunConfig, ScheduleConfig
from cmseg.engine.demo import (
    DemoRecipe,
    DemoReport,
    DemoRun,
    condition_rows,
    data_section,
    train_section,
)
from cmseg.engine.training_setup import TrainingSetup
from cmseg.errors import ConfigError

__all__ = ["METHODS", "CORRUPTION", "SCENES", "IMAGE_SIZE", "STEPS", "demo_config", "RECIPE"]

log = logging.getLogger(__name__)

#: The demo's methods: key -> (table name, model, aux input zeroed).
METHODS: dict[str, tuple[str, str, bool]] = {
    "xmsnet": ("XMSNet", "xmsnet_tiny", False),
    "rgb_only": ("RGB-only (XMSNet, depth zeroed)", "xmsnet_tiny", True),
    "early_fusion": ("early fusion (RGB+D, 1 encoder)", "early_fusion_c2f_tiny", False),
}

#: Scenes generated (80 % train, 20 % held-out test) and their side in pixels.
SCENES = 600
IMAGE_SIZE = 128
#: Training steps per model.
STEPS = 300

#: The recipe shared by the three runs (the models differ only in ``model`` and ``zero_aux``).
BACKBONE = "regnetx_002"
CHANNELS = 16
BATCH_SIZE = 16
LEARNING_RATE = 6e-3
WARMUP_STEPS = 20

#: Corruption of the held-out depth maps (see :func:`cmseg.data.synthetic.write_corrupted_set`):
#: Gaussian noise of std 0.2, 20 % of the pixels lost in blobs (value 0), and the map shifted by
#: 6 px (~5 % of the side) in a random direction.
CORRUPTION: dict[str, float] = {"noise": 0.2, "holes": 0.2, "shift": 6.0}

#: Entries of ``<out>`` that the demo writes (and replaces on a re-run).
OWNED = ("data", "data_corrupted", "runs", "predictions", "results.json", "table.md")
_CONDITIONS = ("clean", "corrupted")
_COLUMNS = (("sm", "S"), ("fm.max", "maxF"), ("em.mean", "meanE"), ("mae", "MAE"))


def demo_config(
    method: str,
    *,
    root: str | os.PathLike[str] = "runs/demo/data",
    output_dir: str | os.PathLike[str] = "runs/demo/runs",
    seed: int = 0,
    steps: int = STEPS,
    device: str = "auto",
) -> RunConfig:
    """The run configuration of one of the demo's :data:`METHODS`.

    Args:
        method: ``xmsnet``, ``rgb_only`` or ``early_fusion``.
        root: the synthetic dataset (its ``train`` set is used).
        output_dir: the run folder.
        seed: training seed.
        steps: optimizer steps.
        device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.
    """
    if method not in METHODS:
        raise ConfigError(f"unknown demo method {method!r}; choose from {', '.join(METHODS)}")
    _, model_name, zero_aux = METHODS[method]
    return RunConfig(
        task="sod",
        output_dir=str(output_dir),
        model=ModelConfig(
            name=model_name,
            backbone=BACKBONE,
            image_size=IMAGE_SIZE,
            options={"channels": CHANNELS},
        ),
        data=data_section(root, "sod_folders", BATCH_SIZE, {"zero_aux": zero_aux}),
        optim=OptimConfig(name="adamw", lr=LEARNING_RATE, weight_decay=1e-4),
        schedule=ScheduleConfig(
            name="cosine", warmup_steps=min(WARMUP_STEPS, max(0, steps - 1)), min_lr=0.0
        ),
        train=train_section(steps, seed, device),
    )


# --------------------------------------------------------------------------------------------
# The recipe's hooks (cmseg.engine.demo.DemoRecipe)


@dataclass
class _Context:
    """What the methods share: the data and the in-memory training set."""

    data: Path
    corrupted: Path
    n_train: int
    n_test: int
    test_sets: dict[str, Any]
    train_cache: Any = None  #: an InMemory copy of the training set, made by the first run


def _prepare(run: DemoRun) -> _Context:
    from cmseg.data.formats import SODFolders
    from cmseg.data.synthetic import write_corrupted_set, write_synthetic

    data, corrupted = run.out / "data", run.out / "data_corrupted"
    tick = time.perf_counter()
    summary = write_synthetic("sod", data, n=run.samples, size=IMAGE_SIZE, seed=run.seed)
    write_corrupted_set(data, "test", corrupted, seed=run.seed, **CORRUPTION)
    n_train, n_test = summary["sets"]["train"], summary["sets"]["test"]
    log.info(
        "data: %d training and %d held-out RGB-D scenes (%d px) in %s, %.1f s",
        n_train, n_test, IMAGE_SIZE, data, time.perf_counter() - tick,
    )  # fmt: skip
    test_sets = {
        "clean": SODFolders(data, sets=["test"]),
        "corrupted": SODFolders(corrupted, sets=["test"]),
    }
    return _Context(data, corrupted, n_train, n_test, test_sets)


def _config(key: str, run: DemoRun, ctx: _Context) -> RunConfig:
    return demo_config(
        key, root=ctx.data, output_dir=run.out / "runs" / key, seed=run.seed, steps=run.steps,
        device=run.device,
    )  # fmt: skip


def _adapt(setup: TrainingSetup, ctx: _Context) -> TrainingSetup:
    """The scenes decoded once for the three runs, the model in ``channels_last``."""
    import torch

    from cmseg.engine.demo import InMemory

    if ctx.train_cache is None:
        ctx.train_cache = InMemory(setup.train_dataset)
    setup = dataclasses.replace(setup, train_dataset=ctx.train_cache)
    setup.model.to(memory_format=torch.channels_last)
    return setup


def _predict_set(predictor: Any, reader: Any, out_dir: Path, batch: int = 32) -> None:
    """Write ``<out_dir>/<name>.png`` for every sample of ``reader``."""
    from cmseg.io import write_png

    for start in range(0, len(reader), batch):
        samples = [reader[i] for i in range(start, min(start + batch, len(reader)))]
        maps = predictor.predict_batch(
            [(s["image"], s["aux"]) for s in samples], names=[s["name"] for s in samples]
        )
        for sample, saliency in zip(samples, maps, strict=True):
            write_png(out_dir / f"{sample['name']}.png", saliency)


def _score(key: str, checkpoint: Path, run: DemoRun, ctx: _Context) -> dict[str, Any]:
    from cmseg.engine.evaluate import evaluate_folders
    from cmseg.tasks.sod.evaluate import ADAPTER
    from cmseg.tasks.sod.predictor import SODPredictor

    predictor = SODPredictor.from_checkpoint(checkpoint, device=run.device)
    _, model_name, zero_aux = METHODS[key]
    results: dict[str, Any] = {}
    for condition, reader in ctx.test_sets.items():
        pred_dir = run.out / "predictions" / key / condition
        _predict_set(predictor, reader, pred_dir)
        gt = reader.root / "test" / "GT"
        report = evaluate_folders(ADAPTER, pred_dir, gt, workers=1, name=f"{key}/{condition}")
        results[condition] = report.result
    return {
        "model": model_name,
        "backbone": BACKBONE,
        "zero_aux": zero_aux,
        "params": int(sum(p.numel() for p in predictor.model.parameters())),
        "results": results,
    }


def _describe(entry: Mapping[str, Any]) -> str:
    sm = {c: entry["results"][c]["metrics"]["sm"] for c in _CONDITIONS}
    return f"S {sm['clean']:.3f} clean, {sm['corrupted']:.3f} corrupted depth"


def _report(run: DemoRun, ctx: _Context, entries: Mapping[str, Mapping[str, Any]]) -> DemoReport:
    header = ["method", "depth at test"] + [label for _, label in _COLUMNS]
    conditions = {c: c for c in _CONDITIONS}
    rows = condition_rows(entries, conditions, [k for k, _ in _COLUMNS])
    title = (
        f"sod demo: {ctx.n_train} training / {ctx.n_test} held-out synthetic RGB-D scenes at "
        f"{IMAGE_SIZE} px, {run.steps} training steps per model, seed {run.seed}; corrupted "
        f"depth: noise std {CORRUPTION['noise']:g}, {CORRUPTION['holes']:.0%} holes, "
        f"{CORRUPTION['shift']:g} px shift"
    )
    summary = {
        "scenes": {"train": ctx.n_train, "test": ctx.n_test, "size": IMAGE_SIZE},
        "corruption": CORRUPTION,
        "steps": run.steps,
    }
    return DemoReport(title, header, rows, summary)


RECIPE = DemoRecipe(
    task="sod", methods={key: name for key, (name, _, _) in METHODS.items()},
    default_out="runs/demo", owned=OWNED, steps=STEPS, samples=SCENES, min_samples=4,
    prepare=_prepare, config=_config, adapt=_adapt, score=_score, describe=_describe,
    report=_report,
)  # fmt: skip
