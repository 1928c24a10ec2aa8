"""``cmseg demo [sod]``: built-in data -> train -> predict -> evaluate -> one table.

What it does, on a laptop CPU in a few minutes (README "Quick start"):

1. writes the synthetic RGB-D benchmark (:func:`cmseg.data.synthetic.write_synthetic`) under
   ``<out>/data/{train,test}`` and a copy of the held-out split whose depth maps are corrupted
   (noise + holes + an RGB/depth misalignment shift, :data:`CORRUPTION`) under
   ``<out>/data_corrupted/test``;
2. trains three models the same way (same data, steps, batch, optimizer, schedule, seed),
   through the ``sod`` task builder and the engine's :class:`~cmseg.engine.trainer.Trainer`:

   * **XMSNet** (``xmsnet_tiny``): two encoders, all-round attentive fusion, coarse-to-fine
     decoder;
   * **RGB-only**: the same XMSNet with its aux input zeroed at training and test time
     (``data.options.zero_aux``);
   * **early fusion** (``early_fusion_c2f_tiny``): RGB and depth concatenated into one
     4-channel encoder, followed by XMSNet's own coarse-to-fine decoder and trained with
     XMSNet's loss (:class:`cmseg.models.xmsnet.baselines.EarlyFusionC2F`): the controlled ablation
     of what XMSNet adds, two encoders and the all-round attentive fusion;

3. predicts the held-out split with clean and with corrupted depth through
   :class:`~cmseg.engine.predictors.SODPredictor` (the checkpoint's own pre/postprocessing);
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

import argparse
import dataclasses
import logging
import os
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cmseg.commands.demo_common import InMemory, start_demo
from cmseg.config import (
    DataConfig,
    ModelConfig,
    OptimConfig,
    RunConfig,
    ScheduleConfig,
    TrainConfig,
    save_config,
)
from cmseg.errors import ConfigError, NotBuiltError

__all__ = [
    "METHODS",
    "CORRUPTION",
    "SCENES",
    "IMAGE_SIZE",
    "STEPS",
    "demo_config",
    "run_demo",
]

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
_OWNED = ("data", "data_corrupted", "runs", "predictions", "results.json", "table.md")
_CONDITIONS = ("clean", "corrupted")
_COLUMNS = (("sm", "S"), ("fm.max", "maxF"), ("em.mean", "meanE"), ("mae", "MAE"))


# --------------------------------------------------------------------------------------------
# Configuration


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
        data=DataConfig(
            root=str(root),
            format="sod_folders",
            train_sets=["train"],
            val_sets=[],  # the demo scores the held-out split itself, after training
            batch_size=BATCH_SIZE,
            num_workers=0,  # the scenes are cached in memory; workers would only compete
            options={"zero_aux": zero_aux},
        ),
        optim=OptimConfig(name="adamw", lr=LEARNING_RATE, weight_decay=1e-4),
        schedule=ScheduleConfig(
            name="cosine", warmup_steps=min(WARMUP_STEPS, max(0, steps - 1)), min_lr=0.0
        ),
        train=TrainConfig(
            max_steps=steps,
            seed=seed,
            device=device,
            log_every=max(1, min(50, steps)),
            eval_every=0,
            checkpoint_every=0,
            tensorboard=False,
        ),
    )


# --------------------------------------------------------------------------------------------
# Pieces


def _count_params(model: Any) -> int:
    return int(sum(p.numel() for p in model.parameters()))


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


def _table(results: Mapping[str, Mapping[str, Any]]) -> tuple[list[str], list[list[Any]]]:
    from cmseg.engine.reports import flatten

    header = ["method", "depth at test"] + [label for _, label in _COLUMNS]
    rows = []
    for entry in results.values():
        for condition in _CONDITIONS:
            flat = flatten(entry["results"][condition]["metrics"])
            rows.append([entry["name"], condition] + [flat.get(k) for k, _ in _COLUMNS])
    return header, rows


# --------------------------------------------------------------------------------------------
# The command


def run_demo(args: argparse.Namespace) -> int:
    """Run ``cmseg demo``; returns the exit code. See the module docstring."""
    if args.task == "ris":
        from cmseg.commands.demo_ris import run_demo_ris

        return run_demo_ris(args)
    if args.task != "sod":
        raise NotBuiltError(f"'cmseg demo' is not built yet for task '{args.task}'")
    start = time.perf_counter()

    import torch

    from cmseg.data.formats import SODFolders
    from cmseg.data.synthetic import write_corrupted_set, write_synthetic
    from cmseg.engine.evaluate import evaluate_folders
    from cmseg.engine.predictors import SODPredictor
    from cmseg.engine.reports import format_markdown, format_text
    from cmseg.engine.rng import seed_all
    from cmseg.engine.trainer import Trainer
    from cmseg.io import write_json, write_text
    from cmseg.tasks.sod import build_sod_training

    run = start_demo(
        args, task="sod", default_out="runs/demo", owned=_OWNED, steps=STEPS, samples=SCENES,
        min_samples=4,
    )  # fmt: skip
    out, seed, steps, scenes, device = run.out, run.seed, run.steps, run.samples, run.device
    data, corrupted = out / "data", out / "data_corrupted"

    # 1. Data
    tick = time.perf_counter()
    summary = write_synthetic("sod", data, n=scenes, size=IMAGE_SIZE, seed=seed)
    write_corrupted_set(data, "test", corrupted, seed=seed, **CORRUPTION)
    n_train, n_test = summary["sets"]["train"], summary["sets"]["test"]
    log.info(
        "data: %d training and %d held-out RGB-D scenes (%d px) in %s, %.1f s",
        n_train,
        n_test,
        IMAGE_SIZE,
        data,
        time.perf_counter() - tick,
    )
    train_cache: InMemory | None = None
    test_sets = {
        "clean": SODFolders(data, sets=["test"]),
        "corrupted": SODFolders(corrupted, sets=["test"]),
    }

    # 2-4. Train, predict, evaluate each method
    results: dict[str, dict[str, Any]] = {}
    for number, (key, (name, _, _)) in enumerate(METHODS.items(), start=1):
        cfg = demo_config(
            key, root=data, output_dir=out / "runs" / key, seed=seed, steps=steps, device=device
        )
        log.info("[%d/%d] %s: training %d steps", number, len(METHODS), name, steps)
        tick = time.perf_counter()
        save_config(cfg, Path(cfg.output_dir) / "config.yaml")
        seed_all(seed)  # the same initial weights on every run, as `cmseg train` does
        setup = build_sod_training(cfg)
        if train_cache is None:
            train_cache = InMemory(setup.train_dataset)
        setup = dataclasses.replace(setup, train_dataset=train_cache)
        setup.model.to(memory_format=torch.channels_last)
        trainer = Trainer.from_setup(setup, cfg)
        trainer.fit()
        train_seconds = time.perf_counter() - tick

        tick = time.perf_counter()
        predictor = SODPredictor.from_checkpoint(Path(cfg.output_dir) / "last", device=device)
        entry: dict[str, Any] = {
            "name": name,
            "model": cfg.model.name,
            "backbone": cfg.model.backbone,
            "zero_aux": bool(cfg.data.options.get("zero_aux", False)),
            "params": _count_params(predictor.model),
            "steps": steps,
            "train_seconds": round(train_seconds, 1),
            "results": {},
        }
        for condition, reader in test_sets.items():
            pred_dir = out / "predictions" / key / condition
            _predict_set(predictor, reader, pred_dir)
            report = evaluate_folders(
                "sod", pred_dir, reader.root / "test" / "GT", workers=1, name=f"{key}/{condition}"
            )
            entry["results"][condition] = report.result
        entry["eval_seconds"] = round(time.perf_counter() - tick, 1)
        sm = {c: entry["results"][c]["metrics"]["sm"] for c in _CONDITIONS}
        log.info(
            "[%d/%d] %s: trained in %.0f s; S %.3f clean, %.3f corrupted depth",
            number,
            len(METHODS),
            name,
            train_seconds,
            sm["clean"],
            sm["corrupted"],
        )
        results[key] = entry
        del trainer, predictor, setup

    # Report
    header, rows = _table(results)
    total = time.perf_counter() - start
    title = (
        f"sod demo: {n_train} training / {n_test} held-out synthetic RGB-D scenes at "
        f"{IMAGE_SIZE} px, {steps} training steps per model, seed {seed}; corrupted depth: "
        f"noise std {CORRUPTION['noise']:g}, {CORRUPTION['holes']:.0%} holes, "
        f"{CORRUPTION['shift']:g} px shift"
    )
    text = format_text(header, rows, digits=3)
    markdown = f"{title}\n\n{format_markdown(header, rows, digits=3)}\nTotal wall time: {total:.0f} s\n"
    write_text(out / "table.md", markdown)
    write_json(
        out / "results.json",
        {
            "task": "sod",
            "seed": seed,
            "scenes": {"train": n_train, "test": n_test, "size": IMAGE_SIZE},
            "corruption": CORRUPTION,
            "steps": steps,
            "methods": results,
            "total_seconds": round(total, 1),
        },
    )
    print(f"\n{title}\n\n{text}\n\ntotal wall time {total:.0f} s ({total / 60:.1f} min); "
          f"results in {out}", file=sys.stdout, flush=True)  # fmt: skip
    return 0
