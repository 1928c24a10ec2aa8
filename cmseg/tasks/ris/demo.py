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
   schedule, seed, loss) through the ``ris`` training hook and the engine's
   :class:`~cmseg.engine.trainer.Trainer` (the loop all demos share,
   :func:`cmseg.engine.demo.run_recipe`), four sentences per image in every batch (the
   backbone runs once per image, and its features of each training image are computed
   once and then served from memory: ``cache_backbone_features``) and CMPC's loss plus a
   soft Dice term (``loss_dice_weight``: the referents cover a few percent of the pixels,
   and with BCE alone a short run ends predicting background everywhere):

   * **CMPC** (``cmpc_tiny``): Entity Perception, Relation-Aware Reasoning, Text-Guided
     Feature Exchange, ConvLSTM fusion;
   * **CMPC without RAR** (``relation_reasoning=False``): the paper's ablation, the graph
     over positions through the relation words removed;

4. predicts every held-out sentence (the ``val``, ``testA`` and ``testB`` images, none seen
   in training or pretraining) through :class:`~cmseg.tasks.ris.predictor.RISPredictor`, one
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

import logging
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cmseg.config import ModelConfig, OptimConfig, RunConfig, ScheduleConfig
from cmseg.engine.demo import DemoRecipe, DemoReport, DemoRun, data_section, train_section
from cmseg.engine.training_setup import TrainingSetup
from cmseg.errors import ConfigError

__all__ = [
    "METHODS", "IMAGES", "IMAGE_SIZE", "STEPS", "PRETRAIN_STEPS", "HELD_OUT", "demo_config",
    "pretrain_demo_backbone", "RECIPE",
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

OWNED = ("data", BACKBONE_FILE, "runs", "examples", "results.json", "table.md")
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
        data=data_section(
            root,
            "refer",
            IMAGES_PER_BATCH,
            {
                "dataset": "refcoco",
                "sentences_per_image": SENTENCES_PER_IMAGE,
                "loss_dice_weight": DICE_WEIGHT,
                "freeze_backbone": True,
                # the frozen backbone's features of each training image are computed once
                "cache_backbone_features": True,
            },
        ),
        optim=OptimConfig(name="adam", lr=LEARNING_RATE),
        schedule=ScheduleConfig(
            name="poly", power=0.9, warmup_steps=min(WARMUP_STEPS, max(0, steps - 1))
        ),
        train=train_section(steps, seed, device),
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
    from cmseg.engine.inference import resolve_device
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


# --------------------------------------------------------------------------------------------
# The recipe's hooks (cmseg.engine.demo.DemoRecipe)


@dataclass
class _Context:
    """What the two methods share: the data, the pretrained backbone, the cached samples."""

    data: Path
    n_train: int
    readers: dict[str, Any]
    relation_only: set[int]
    backbone_file: Path
    pretrain_steps: int
    pretraining: dict[str, Any]
    cache: Any = None  #: an InMemory copy of the training samples, made by the first run


def _prepare(run: DemoRun) -> _Context:
    from cmseg.data.synthetic import write_synthetic
    from cmseg.data.synthetic.ris import relation_only_refs
    from cmseg.tasks.ris.data import open_split
    from cmseg.tasks.ris.options import RISOptions

    data = run.out / "data"
    tick = time.perf_counter()
    summary = write_synthetic("ris", data, n=run.samples, size=IMAGE_SIZE, seed=run.seed)
    relation_only = relation_only_refs(data)
    readers = {split: open_split(data, "refer", split, RISOptions()) for split in HELD_OUT}
    n_train = summary["splits"]["train"]["sentences"]
    log.info(
        "data: %d training and %d held-out sentences on %d images (%d px) in %s, %.1f s",
        n_train, sum(len(r) for r in readers.values()), run.samples, IMAGE_SIZE, data,
        time.perf_counter() - tick,
    )  # fmt: skip
    # The backbone both models start from, frozen
    backbone_file = run.out / BACKBONE_FILE
    steps = min(PRETRAIN_STEPS, run.steps)
    log.info(
        "pretraining %s for %d steps on the training images' shape, colour and size",
        BACKBONE,
        steps,
    )
    pretraining = pretrain_demo_backbone(
        data, backbone_file, steps=steps, seed=run.seed, device=run.device
    )
    log.info(
        "pretrained in %.0f s; held-out pixel accuracy %s", pretraining["seconds"],
        ", ".join(f"{k} {v:.3f}" for k, v in pretraining["val_pixel_accuracy"].items()),
    )  # fmt: skip
    return _Context(data, n_train, readers, relation_only, backbone_file, steps, pretraining)


def _config(key: str, run: DemoRun, ctx: _Context) -> RunConfig:
    return demo_config(
        key, root=ctx.data, output_dir=run.out / "runs" / key, backbone_weights=ctx.backbone_file,
        seed=run.seed, steps=run.steps, device=run.device,
    )  # fmt: skip


def _adapt(setup: TrainingSetup, ctx: _Context) -> TrainingSetup:
    """The training samples decoded once for both runs."""
    from cmseg.engine.demo import InMemory

    if ctx.cache is None:
        ctx.cache = InMemory(setup.train_dataset.source)
    setup.train_dataset.source = ctx.cache
    return setup


def _predict_and_score(
    predictor: Any, readers: dict[str, Any], relation_only: set[int]
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Evaluators per subset over every held-out sentence; and the relation-only items."""
    from cmseg.metrics.masks import RISEvaluator
    from cmseg.tasks.ris.data import image_groups

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
        write_png(
            folder / f"{ex['name']}_gt.png",
            overlay_mask(ex["image"], ex["mask"], colour=(48, 200, 48)),
        )
        index.append({"name": ex["name"], "sentence": ex["sentence"]})
    write_json(folder / "sentences.json", index)


def _score(key: str, checkpoint: Path, run: DemoRun, ctx: _Context) -> dict[str, Any]:
    from cmseg.tasks.ris.predictor import RISPredictor

    predictor = RISPredictor.from_checkpoint(checkpoint, device=run.device)
    scores, examples = _predict_and_score(predictor, ctx.readers, ctx.relation_only)
    _write_examples(run.out / "examples" / key, examples)
    return {
        "relation_reasoning": METHODS[key][1],
        "params": int(sum(p.numel() for p in predictor.model.parameters())),
        "results": scores,
    }


def _describe(entry: Mapping[str, Any]) -> str:
    scores = entry["results"]
    rel = scores.get("relation_only", {}).get("oIoU", float("nan"))
    return f"oIoU {scores['all']['oIoU']:.3f} (relation-only {rel:.3f})"


def _report(run: DemoRun, ctx: _Context, entries: Mapping[str, Mapping[str, Any]]) -> DemoReport:
    header = ["method"] + [label for _, _, label in _COLUMNS]
    rows = [
        [entry["name"]]
        + [entry["results"].get(subset, {}).get(metric) for subset, metric, _ in _COLUMNS]
        for entry in entries.values()
    ]
    first = next(iter(entries.values()))["results"]
    counts = {s: int(first.get(s, {}).get("num_items", 0)) for s in _SUBSETS}
    title = (
        f"ris demo: {ctx.n_train} training sentences, {counts['all']} held-out sentences "
        f"({counts['relation_only']} relation-only) on {IMAGE_SIZE} px synthetic images, "
        f"{run.steps} training steps per model ({IMAGES_PER_BATCH} images x {SENTENCES_PER_IMAGE} "
        f"sentences) on a frozen {BACKBONE} pretrained for {ctx.pretrain_steps} steps, seed {run.seed}"
    )
    summary = {
        "images": run.samples, "size": IMAGE_SIZE, "steps": run.steps, "held_out": list(HELD_OUT),
        "counts": counts, "pretraining": ctx.pretraining,
    }  # fmt: skip
    return DemoReport(title, header, rows, summary)


RECIPE = DemoRecipe(
    task="ris", methods={key: name for key, (name, _) in METHODS.items()},
    default_out="runs/demo_ris", owned=OWNED, steps=STEPS, samples=IMAGES, min_samples=10,
    prepare=_prepare, config=_config, adapt=_adapt, score=_score, describe=_describe,
    report=_report,
)  # fmt: skip
