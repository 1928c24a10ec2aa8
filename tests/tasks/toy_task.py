"""A toy task that exists only in the test suite: "the bright object" in a grey image.

It proves the seam of :data:`cmseg.tasks.TASKS`: a task is one record plus the modules its
hooks name, and the real drivers (``cmseg train``, ``predict``, ``evaluate``, ``demo``) run it
without any file of cmseg knowing it. Data: ``<root>/images/<name>.png`` (grey) and
``<root>/masks/<name>.png`` (0/255), the mask being where the image is bright.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cmseg.config import DataConfig, ModelConfig, OptimConfig, RunConfig, TrainConfig
from cmseg.data.pairing import index_by_stem, require_dir
from cmseg.engine.demo import DemoRecipe, DemoReport, DemoRun
from cmseg.engine.eval_adapter import EvalAdapter, Job, flat_pairs
from cmseg.engine.prediction import Outcome, PredictCommand, PredictItem
from cmseg.io import read_grey, read_mask, write_png
from cmseg.tasks.base import Hook, Task

MODEL = "toy_net"


def make_task() -> Task:
    """The record a user would add to TASKS."""
    return Task(
        name="toy",
        title="the bright object (a test-only task)",
        models=(MODEL,),
        train=Hook("toy_task:build_training"),
        predict=Hook("toy_task:PREDICT"),
        demo=Hook("toy_task:RECIPE"),
        evaluations={"toy": Hook("toy_task:ADAPTER")},
    )


def build_toy_net(**kwargs: Any) -> Any:
    """A 1x1 convolution: one logit per pixel from its grey value."""
    from torch import nn

    if kwargs:
        raise TypeError(f"toy_net takes no arguments, got {sorted(kwargs)}")
    return nn.Conv2d(1, 1, 1)


def write_toy_data(root: Path, n: int, seed: int) -> None:
    """``n`` 16 x 16 grey images with a bright square, and its mask."""
    rng = np.random.default_rng(seed)
    for i in range(n):
        image = rng.integers(0, 80, size=(16, 16)).astype(np.uint8)
        top, left = rng.integers(0, 8, size=2)
        mask = np.zeros((16, 16), dtype=bool)
        mask[top : top + 6, left : left + 6] = True
        image[mask] = rng.integers(170, 255, size=int(mask.sum())).astype(np.uint8)
        write_png(root / "images" / f"{i:03d}.png", image)
        write_png(root / "masks" / f"{i:03d}.png", mask)


def _tensor(grey: np.ndarray) -> Any:
    import torch

    return torch.from_numpy(grey.astype(np.float32) / 255.0)[None]


# --------------------------------------------------------------------------------------------
# train


class _Samples:
    def __init__(self, root: Path) -> None:
        self.images = index_by_stem(root / "images")
        self.root = root

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> dict[str, Any]:
        name = sorted(self.images)[i]
        mask = read_mask(self.root / "masks" / f"{name}.png").astype(np.float32)
        return {"image": _tensor(read_grey(self.images[name])), "mask": _tensor(mask * 255)}


def _loss(output: Any, batch: Mapping[str, Any]) -> tuple[Any, dict[str, Any]]:
    import torch.nn.functional as F

    loss = F.binary_cross_entropy_with_logits(output, batch["mask"])
    return loss, {"bce": loss.detach()}


def build_training(cfg: RunConfig) -> Any:
    from cmseg.engine.model_building import build_from_section
    from cmseg.engine.training_setup import TrainingSetup

    return TrainingSetup(
        model=build_from_section(cfg.model),
        loss_fn=_loss,
        train_dataset=_Samples(Path(cfg.data.root)),
        forward_fn=lambda model, batch: model(batch["image"]),
        model_name=cfg.model.name,
    )


# --------------------------------------------------------------------------------------------
# predict


class ToyPredictor:
    def __init__(self, checkpoint: str, device: str) -> None:
        from cmseg.engine.inference import (
            InferenceRuntime,
            load_model_weights,
            load_task_checkpoint,
        )
        from cmseg.engine.model_building import build_from_section

        ckpt = load_task_checkpoint(checkpoint, "toy")
        model = build_from_section(ckpt.model_section, weights=False)
        load_model_weights(model, ckpt.state_dict, checkpoint)
        self.runtime = InferenceRuntime(model, device, "off")
        self.device = self.runtime.device

    def predict(self, grey: np.ndarray) -> np.ndarray:
        import torch

        with torch.inference_mode():
            logits = self.runtime.model(self.runtime.to_device(_tensor(grey)[None]))
        return (logits[0, 0] >= 0).cpu().numpy()


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--input", required=True, help="a folder of grey images")


def _collect(args: argparse.Namespace) -> list[PredictItem]:
    images = index_by_stem(require_dir(Path(args.input), "input"))
    return [PredictItem(stem, (path,), payload=path) for stem, path in sorted(images.items())]


def _predict(
    predictor: Any, items: Sequence[PredictItem], args: argparse.Namespace
) -> Iterator[Outcome]:
    for item in items:
        mask = predictor.predict(read_grey(item.payload))
        yield Outcome(item, files={Path(args.out) / f"{item.name}.png": mask})


PREDICT = PredictCommand(
    help="masks of the bright object", unit="image", batch_unit="images",
    add_arguments=_add_arguments, collect=_collect,
    load=lambda args: ToyPredictor(args.checkpoint, args.device), predict=_predict,
)  # fmt: skip


# --------------------------------------------------------------------------------------------
# evaluate


def _new_evaluator(protocol: str, options: dict[str, Any]) -> Any:
    from cmseg.metrics.masks import RISEvaluator

    return RISEvaluator()


def _score(evaluator: Any, job: Job, protocol: str, allow_missing: bool) -> list[str]:
    evaluator.update(read_mask(job.pred), read_mask(job.gt), name=job.key)
    return []


def _summarise(evaluator: Any, protocol: str) -> dict[str, Any]:
    return {"num_items": len(evaluator), "metrics": evaluator.compute()}


ADAPTER = EvalAdapter(
    "toy",
    ("iou",),
    collect=flat_pairs,
    new_evaluator=_new_evaluator,
    score=_score,
    summarise=_summarise,
    columns=[("mIoU", "mIoU")],
    chunk_size=4,
)


# --------------------------------------------------------------------------------------------
# demo


@dataclass
class _Context:
    train: Path
    test: Path


def _prepare(run: DemoRun) -> _Context:
    write_toy_data(run.out / "data" / "train", run.samples, run.seed)
    write_toy_data(run.out / "data" / "test", 6, run.seed + 1)
    return _Context(run.out / "data" / "train", run.out / "data" / "test")


def _config(key: str, run: DemoRun, ctx: _Context) -> RunConfig:
    return RunConfig(
        task="toy",
        output_dir=str(run.out / "runs" / key),
        model=ModelConfig(name=MODEL),
        data=DataConfig(root=str(ctx.train), batch_size=4, num_workers=0),
        optim=OptimConfig(name="adam", lr=0.1),
        train=TrainConfig(max_steps=run.steps, seed=run.seed, device="cpu", eval_every=0,
                          checkpoint_every=0, tensorboard=False),
    )  # fmt: skip


def _demo_score(key: str, checkpoint: Path, run: DemoRun, ctx: _Context) -> dict[str, Any]:
    from cmseg.engine.evaluate import evaluate_folders

    predictor = ToyPredictor(str(checkpoint), "cpu")
    pred = run.out / "predictions" / key
    for stem, path in index_by_stem(ctx.test / "images").items():
        write_png(pred / f"{stem}.png", predictor.predict(read_grey(path)))
    report = evaluate_folders(ADAPTER, pred, ctx.test / "masks", workers=1)
    return {"results": report.result}


RECIPE = DemoRecipe(
    task="toy",
    methods={"toy": "toy net"},
    default_out="runs/demo_toy",
    owned=("data", "runs", "predictions", "results.json", "table.md"),
    steps=100,
    samples=16,
    min_samples=2,
    prepare=_prepare,
    config=_config,
    score=_demo_score,
    describe=lambda entry: f"mIoU {entry['results']['metrics']['mIoU']:.3f}",
    report=lambda run, ctx, entries: DemoReport(
        "toy demo",
        ["method", "mIoU"],
        [[e["name"], e["results"]["metrics"]["mIoU"]] for e in entries.values()],
    ),
)
