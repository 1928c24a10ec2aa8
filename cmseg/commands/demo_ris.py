"""``cmseg demo ris``: synthetic referring set -> CMPC and CMPC without RAR -> one table.

What it does, on a laptop CPU in under ten minutes:

1. writes the synthetic referring benchmark (:func:`cmseg.data.synthetic.write_synthetic`,
   task ``ris``: RefCOCO's REFER layout, splits by image) under ``<out>/data``; about a third
   of its sentences are *relation-only*: their referent has a twin of the same size, colour
   and shape, so only the spatial relation in the sentence ("left of the star") picks it
   (:func:`cmseg.data.synthetic.ris.relation_only_refs`);
2. pretrains the visual backbone (timm's ``test_resnet``, 0.37 M parameters) to label every
   pixel of the *training* images with its object's shape, colour and size
   (:func:`cmseg.engine.backbone_pretraining.pretrain_backbone` on
   :func:`cmseg.data.synthetic.ris_attributes.attribute_maps`) and saves it as
   ``<out>/backbone.safetensors`` (timm layout). This is the demo's stand-in for the weights
   CMPC starts from, a DeepLab ResNet-101 trained on semantic segmentation, which the official
   run never updates: both models below load it and keep it frozen (batch norms included).
   Trained from scratch instead, the same head reaches a held-out oIoU of about 0.45 in the
   same time: it learns which words name which shapes far more slowly than a segmentation
   network learns the shapes;
3. trains two models the same way (same backbone file, data, steps, batch, optimizer,
   schedule, seed, loss) through the ``ris`` task builder and the engine's
   :class:`~cmseg.engine.trainer.Trainer`, four sentences per image in every batch (the
   backbone runs once per image, and its features of each training image are computed
   once and then served from memory: ``cache_backbone_features``) and CMPC's loss plus a
   soft Dice term (``loss_dice_weight``: the referents cover a few percent of the pixels,
   and with BCE alone a short run ends predicting background everywhere):

   * **CMPC** (``cmpc_tiny``): Entity Perception, Relation-Aware Reasoning, Text-Guided
     Feature Exchange, ConvLSTM fusion;
   * **CMPC without RAR** (``relation_reasoning=False``): the paper's ablation, the graph
     over positions through the relation words removed;

4. predicts every held-out sentence (the ``val``, ``testA`` and ``testB`` images, none seen
   in training or pretraining) through :class:`~cmseg.engine.predictors.RISPredictor`, one
   backbone pass per image;
5. scores them with :class:`~cmseg.metrics.masks.RISEvaluator` (CMPC's protocol: overall IoU,
   mean IoU, prec@X) on all held-out sentences, on the relation-only ones and on the others,
   and prints one table.

Files under ``<out>`` (default ``runs/demo_ris``)::

    data/                       the generated set
    backbone.safetensors        the pretrained backbone (timm layout, ``model.backbone_weights``)
    runs/<method>/last/         checkpoints (model.safetensors + meta.json), metrics.csv
    examples/<method>/          overlays of the first relation-only held-out sentences
    results.json  table.md      every number, and the table as Markdown
    cmseg_demo.json             marks the folder as the demo's

The run configurations are :func:`demo_config` (also shipped as
``configs/ris/demo_{cmpc,no_rar}.yaml``). ``CMSEG_DEMO_STEPS`` (training steps per model; the
pretraining takes at most as many) and ``CMSEG_DEMO_SCENES`` (number of images) shorten the
run for tests and quick looks.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
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
from cmseg.errors import ConfigError

__all__ = [
    "METHODS", "IMAGES", "IMAGE_SIZE", "STEPS", "PRETRAIN_STEPS", "HELD_OUT", "demo_config",
    "pretrain_demo_backbone", "run_demo_ris",
]  # fmt: skip

log = logging.getLogger(__name__)

#: The demo's methods: key -> (table name, Relation-Aware Reasoning on).
METHODS: dict[str, tuple[str, bool]] = {
    "cmpc": ("CMPC", True),
    "no_rar": ("CMPC without RAR", False),
}

#: Images generated (70 % train, 10 % each val/testA/testB) and their side in pixels.
IMAGES = 1000
IMAGE_SIZE = 128
#: The held-out splits scored (no image of them is in train).
HELD_OUT = ("val", "testA", "testB")
#: Training steps per model.
STEPS = 900
#: Backbone pretraining: steps, images per step, learning rate (Adam, poly decay).
PRETRAIN_STEPS = 700
PRETRAIN_BATCH = 16
PRETRAIN_LR = 2e-3
#: Where the pretrained backbone is written, relative to the output folder.
BACKBONE_FILE = "backbone.safetensors"

#: The recipe shared by the two runs (they differ only in relation_reasoning).
BACKBONE = "test_resnet"
IMAGES_PER_BATCH = 8
SENTENCES_PER_IMAGE = 4
LEARNING_RATE = 8e-3
WARMUP_STEPS = 20
#: Weight of the soft Dice term added to CMPC's BCE (not in the paper; see the module
#: docstring): without it, 300 steps end with every pixel predicted as background.
DICE_WEIGHT = 1.0
#: Held-out relation-only sentences drawn as overlays per method.
EXAMPLES = 8

_OWNED = ("data", BACKBONE_FILE, "runs", "examples", "results.json", "table.md")
_SUBSETS = ("all", "relation_only", "other")
_COLUMNS = (
    ("all", "oIoU", "oIoU"),
    ("all", "mIoU", "mIoU"),
    ("all", "prec@0.5", "P@0.5"),
    ("all", "prec@0.9", "P@0.9"),
    ("relation_only", "oIoU", "oIoU rel-only"),
    ("relation_only", "mIoU", "mIoU rel-only"),
    ("other", "oIoU", "oIoU others"),
)


def demo_config(
    method: str,
    *,
    root: str | os.PathLike[str] = "runs/demo_ris/data",
    output_dir: str | os.PathLike[str] = "runs/demo_ris/runs",
    backbone_weights: str | os.PathLike[str] = f"runs/demo_ris/{BACKBONE_FILE}",
    seed: int = 0,
    steps: int = STEPS,
    device: str = "auto",
) -> RunConfig:
    """The run configuration of one of the demo's :data:`METHODS` (``cmpc`` or ``no_rar``)."""
    if method not in METHODS:
        raise ConfigError(f"unknown demo method {method!r}; choose from {', '.join(METHODS)}")
    _, relation_reasoning = METHODS[method]
    return RunConfig(
        task="ris",
        output_dir=str(output_dir),
        model=ModelConfig(
            name="cmpc_tiny",
            backbone=BACKBONE,
            backbone_weights=str(backbone_weights),
            image_size=IMAGE_SIZE,
            # the pretrained backbone stays as it is, batch norms included (CMPC's official
            # run never updates its DeepLab ResNet)
            options={"relation_reasoning": relation_reasoning, "freeze_backbone_bn": True},
        ),
        data=DataConfig(
            root=str(root),
            format="refer",
            train_sets=["train"],
            val_sets=[],  # the demo scores the held-out splits itself, after training
            batch_size=IMAGES_PER_BATCH,
            num_workers=0,  # the samples are cached in memory; workers would only compete
            options={
                "dataset": "refcoco",
                "sentences_per_image": SENTENCES_PER_IMAGE,
                "loss_dice_weight": DICE_WEIGHT,
                "freeze_backbone": True,
                # the frozen backbone's features of each training image are computed once
                "cache_backbone_features": True,
            },
        ),
        optim=OptimConfig(name="adam", lr=LEARNING_RATE),
        schedule=ScheduleConfig(name="poly", power=0.9, warmup_steps=min(WARMUP_STEPS, max(0, steps - 1))),
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


def pretrain_demo_backbone(
    data: Path, out_file: Path, *, steps: int, seed: int, device: str
) -> dict[str, Any]:
    """Pretrain :data:`BACKBONE` on the attribute maps of the training images of ``data``,
    write it to ``out_file`` (timm layout) and report its pixel accuracy on the ``val`` images.

    Returns:
        ``{"steps", "seconds", "final_loss", "val_pixel_accuracy": {attribute: accuracy}}``.
    """
    import torch

    from cmseg.data.synthetic.ris_attributes import ATTRIBUTE_CLASSES, attribute_maps
    from cmseg.engine.backbone_pretraining import pixel_accuracy, pretrain_backbone
    from cmseg.engine.predictors.common import resolve_device
    from cmseg.models.backbones import save_backbone_weights
    from cmseg.models.cmpc import cmpc_backbone

    train, val = attribute_maps(data, ("train",)), attribute_maps(data, ("val",))
    torch.manual_seed(seed)
    backbone = cmpc_backbone(BACKBONE)
    classes = [len(names) + 1 for names in ATTRIBUTE_CLASSES.values()]
    where = resolve_device(device)
    result = pretrain_backbone(
        backbone, train.images, train.labels, classes, steps=steps, batch_size=PRETRAIN_BATCH,
        lr=PRETRAIN_LR, seed=seed, device=where,
    )  # fmt: skip
    accuracy = pixel_accuracy(backbone, result.heads, val.images, val.labels, device=where)
    save_backbone_weights(backbone, BACKBONE, out_file)
    return {
        "steps": steps,
        "images": len(train),
        "seconds": round(result.seconds, 1),
        "final_loss": round(result.losses[-1], 4) if result.losses else None,
        "val_pixel_accuracy": {
            name: round(acc, 4) for name, acc in zip(ATTRIBUTE_CLASSES, accuracy, strict=True)
        },
    }


def _score(predictor: Any, readers: dict[str, Any], relation_only: set[int]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Evaluators per subset over every held-out sentence; and the relation-only items."""
    from cmseg.metrics.masks import RISEvaluator
    from cmseg.tasks.ris import image_groups

    evaluators = {name: RISEvaluator() for name in _SUBSETS}
    examples: list[dict[str, Any]] = []
    for reader in readers.values():
        for indices in image_groups(reader):
            samples = [reader[i] for i in indices]
            predictor.set_image(samples[0]["image"])
            masks = predictor.predict_sentences([s["sentence"] for s in samples])
            for sample, mask in zip(samples, masks, strict=True):
                subset = "relation_only" if sample["ref_id"] in relation_only else "other"
                for name in ("all", subset):
                    evaluators[name].update(mask, sample["mask"], name=sample["name"])
                if subset == "relation_only" and len(examples) < EXAMPLES:
                    examples.append({**sample, "pred": mask})
        predictor.reset_image()
    return {name: ev.compute() for name, ev in evaluators.items() if len(ev)}, examples


def _write_examples(folder: Path, examples: list[dict[str, Any]]) -> None:
    from cmseg.io import write_json, write_png
    from cmseg.viz import overlay_mask

    index = []
    for ex in examples:
        write_png(folder / f"{ex['name']}.png", overlay_mask(ex["image"], ex["pred"]))
        write_png(folder / f"{ex['name']}_gt.png", overlay_mask(ex["image"], ex["mask"], colour=(48, 200, 48)))
        index.append({"name": ex["name"], "sentence": ex["sentence"]})
    write_json(folder / "sentences.json", index)


def run_demo_ris(args: argparse.Namespace) -> int:
    """Run ``cmseg demo ris``; returns the exit code. See the module docstring."""
    start = time.perf_counter()


    from cmseg.data.synthetic import write_synthetic
    from cmseg.data.synthetic.ris import relation_only_refs
    from cmseg.engine.predictors import RISPredictor
    from cmseg.engine.reports import format_markdown, format_text
    from cmseg.engine.rng import seed_all
    from cmseg.engine.trainer import Trainer
    from cmseg.io import write_json, write_text
    from cmseg.tasks.ris import RISOptions, build_ris_training, open_split

    run = start_demo(
        args, task="ris", default_out="runs/demo_ris", owned=_OWNED, steps=STEPS, samples=IMAGES,
        min_samples=10,
    )  # fmt: skip
    out, seed, steps, images, device = run.out, run.seed, run.steps, run.samples, run.device
    data = out / "data"

    # 1. Data
    tick = time.perf_counter()
    summary = write_synthetic("ris", data, n=images, size=IMAGE_SIZE, seed=seed)
    relation_only = relation_only_refs(data)
    readers = {split: open_split(data, "refer", split, RISOptions()) for split in HELD_OUT}
    n_train = summary["splits"]["train"]["sentences"]
    n_held = sum(len(r) for r in readers.values())
    log.info(
        "data: %d training and %d held-out sentences on %d images (%d px) in %s, %.1f s",
        n_train, n_held, images, IMAGE_SIZE, data, time.perf_counter() - tick,
    )  # fmt: skip

    # 2. The backbone both models start from, frozen
    backbone_file = out / BACKBONE_FILE
    pretrain_steps = min(PRETRAIN_STEPS, steps)
    log.info("pretraining %s for %d steps on the training images' shape, colour and size", BACKBONE, pretrain_steps)
    pretraining = pretrain_demo_backbone(data, backbone_file, steps=pretrain_steps, seed=seed, device=device)
    log.info(
        "pretrained in %.0f s; held-out pixel accuracy %s", pretraining["seconds"],
        ", ".join(f"{k} {v:.3f}" for k, v in pretraining["val_pixel_accuracy"].items()),
    )  # fmt: skip

    # 3-5. Train, predict, score each method
    cache: InMemory | None = None
    results: dict[str, dict[str, Any]] = {}
    for number, (key, (name, _)) in enumerate(METHODS.items(), start=1):
        cfg = demo_config(
            key, root=data, output_dir=out / "runs" / key, backbone_weights=backbone_file, seed=seed,
            steps=steps, device=device,
        )  # fmt: skip
        log.info("[%d/%d] %s: training %d steps", number, len(METHODS), name, steps)
        tick = time.perf_counter()
        save_config(cfg, Path(cfg.output_dir) / "config.yaml")
        seed_all(seed)  # the same initial weights on every run, as `cmseg train` does
        setup = build_ris_training(cfg)
        if cache is None:
            cache = InMemory(setup.train_dataset.source)
        setup.train_dataset.source = cache
        trainer = Trainer.from_setup(setup, cfg)
        trainer.fit()
        train_seconds = time.perf_counter() - tick

        tick = time.perf_counter()
        predictor = RISPredictor.from_checkpoint(Path(cfg.output_dir) / "last", device=device)
        scores, examples = _score(predictor, readers, relation_only)
        _write_examples(out / "examples" / key, examples)
        results[key] = {
            "name": name,
            "relation_reasoning": METHODS[key][1],
            "params": int(sum(p.numel() for p in predictor.model.parameters())),
            "steps": steps,
            "train_seconds": round(train_seconds, 1),
            "eval_seconds": round(time.perf_counter() - tick, 1),
            "results": scores,
        }
        log.info(
            "[%d/%d] %s: trained in %.0f s; oIoU %.3f (relation-only %.3f)",
            number, len(METHODS), name, train_seconds, scores["all"]["oIoU"],
            scores.get("relation_only", {}).get("oIoU", float("nan")),
        )  # fmt: skip
        del trainer, predictor, setup

    # Report
    header = ["method"] + [label for _, _, label in _COLUMNS]
    rows = [
        [entry["name"]] + [entry["results"].get(subset, {}).get(metric) for subset, metric, _ in _COLUMNS]
        for entry in results.values()
    ]
    counts = {s: int(next(iter(results.values()))["results"].get(s, {}).get("num_items", 0)) for s in _SUBSETS}
    total = time.perf_counter() - start
    title = (
        f"ris demo: {n_train} training sentences, {counts['all']} held-out sentences "
        f"({counts['relation_only']} relation-only) on {IMAGE_SIZE} px synthetic images, "
        f"{steps} training steps per model ({IMAGES_PER_BATCH} images x {SENTENCES_PER_IMAGE} "
        f"sentences) on a frozen {BACKBONE} pretrained for {pretrain_steps} steps, seed {seed}"
    )
    write_text(out / "table.md", f"{title}\n\n{format_markdown(header, rows, digits=3)}\nTotal wall time: {total:.0f} s\n")
    write_json(
        out / "results.json",
        {"task": "ris", "seed": seed, "images": images, "size": IMAGE_SIZE, "steps": steps,
         "held_out": list(HELD_OUT), "counts": counts, "pretraining": pretraining, "methods": results,
         "total_seconds": round(total, 1)},
    )  # fmt: skip
    print(f"\n{title}\n\n{format_text(header, rows, digits=3)}\n\ntotal wall time {total:.0f} s "
          f"({total / 60:.1f} min); results in {out}", file=sys.stdout, flush=True)  # fmt: skip
    return 0
