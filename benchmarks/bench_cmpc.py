"""Benchmark: CMPC size, FLOPs, throughput, and the cost of a second sentence on one image.

For each model (``cmpc_resnet101``, the paper's configuration with a 12,112-word vocabulary
as the official ``vocabulary_Gref.txt``, and ``cmpc_tiny``) and each device (CPU, and CUDA
when available) it prints:

* parameters and forward GFLOPs of one image and one sentence at ``--size``, split into the
  image part (``encode_image``: backbone and laterals) and the sentence part (``segment``);
  FLOPs from ``torch.utils.flop_counter.FlopCounterMode`` (one multiply-add = 2 FLOPs);
* training images/s (forward, :func:`cmseg.models.cmpc.cmpc_loss`, backward, Adam step);
* inference images/s (one sentence per image, ``inference_mode``, ``channels_last``);
* through :class:`cmseg.predictors.RISPredictor`: the time of the first sentence on a
  new image (``set_image`` + ``predict``) and of every further sentence (``predict`` on the
  cached features), and their ratio: the reference measured in the same run.

Run: ``python benchmarks/bench_cmpc.py [--size 320] [--models cmpc_tiny ...]
[--devices cpu cuda] [--iters N]``. CPU figures depend on the load, which is printed.
"""

from __future__ import annotations

import contextlib
import statistics
import time

import numpy as np
import torch
from model_timing import parse_args, print_environment, seconds_per_call, sync
from torch.utils.flop_counter import FlopCounterMode

from cmseg.models import build_model
from cmseg.models.cmpc.loss import cmpc_loss
from cmseg.models.text import Vocabulary
from cmseg.predictors import RISPredictor

SENTENCES = [
    "the small red circle to the left of the blue star",
    "big green square",
    "the yellow heart that is above the white cross",
    "purple diamond below the orange triangle",
]
# (train batch, inference batch, timed iterations) per model and device kind.
PLANS: dict[tuple[str, str], tuple[int, int, int]] = {
    ("cmpc_resnet101", "cpu"): (1, 1, 2),  # batch 1 as in the official training
    ("cmpc_tiny", "cpu"): (8, 8, 5),
    ("cmpc_resnet101", "cuda"): (8, 16, 20),
    ("cmpc_tiny", "cuda"): (64, 64, 20),
}


def _vocabulary(name: str) -> Vocabulary:
    words = sorted({w for s in SENTENCES for w in s.split()})
    if name == "cmpc_resnet101":  # the official vocabulary's size (12,112 lines, specials included)
        words += [f"word{i}" for i in range(12112 - 4 - len(words))]
    return Vocabulary(words)


def _batch(n: int, size: int, device: torch.device) -> tuple[torch.Tensor, list[str], torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    images = torch.randn(n, 3, size, size, generator=g).to(device)
    masks = (torch.rand(n, 1, size, size, generator=g) > 0.5).float().to(device)
    return images, [SENTENCES[i % len(SENTENCES)] for i in range(n)], masks


def count_gflops(model: torch.nn.Module, size: int) -> tuple[float, float]:
    """``(image part, sentence part)`` forward GFLOPs of one image and one sentence."""
    model.eval()
    images, sentences, _ = _batch(1, size, torch.device("cpu"))
    with torch.inference_mode():
        counter = FlopCounterMode(display=False)
        with counter:
            visual = model.encode_image(images)
        image_part = counter.get_total_flops() / 1e9
        counter = FlopCounterMode(display=False)
        with counter:
            model.segment(visual, sentences[:1])
        return image_part, counter.get_total_flops() / 1e9


def train_rate(
    model: torch.nn.Module, batch: int, size: int, iters: int, device: torch.device
) -> float:
    """Training images per second: forward, loss, backward, Adam step."""
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(params, lr=2.5e-4)
    images, sentences, masks = _batch(batch, size, device)

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        loss, _ = cmpc_loss(model(images, sentences), masks)
        loss.backward()
        optimizer.step()

    return batch / seconds_per_call(step, iters, device)


def infer_rate(
    model: torch.nn.Module,
    batch: int,
    size: int,
    iters: int,
    device: torch.device,
    amp: torch.dtype | None = None,
) -> float:
    """Inference images per second (one sentence each) under ``inference_mode``."""
    model.eval()
    model.to(memory_format=torch.channels_last)
    images, sentences, _ = _batch(batch, size, device)
    images = images.contiguous(memory_format=torch.channels_last)
    autocast = (
        torch.autocast(device.type, dtype=amp) if amp is not None else contextlib.nullcontext()
    )
    with torch.inference_mode(), autocast:
        seconds = seconds_per_call(lambda: model(images, sentences), iters, device)
    model.to(memory_format=torch.contiguous_format)
    return batch / seconds


def sentence_costs(
    model: torch.nn.Module, size: int, iters: int, device: torch.device
) -> tuple[float, float]:
    """Median seconds of ``(set_image + first predict, each further predict)``."""
    predictor = RISPredictor(model, image_size=size, device=device, amp="off")
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, size=(size, size, 3), dtype=np.uint8)
    predictor.set_image(image)  # warm-up
    predictor.predict(SENTENCES[0])
    firsts, nexts = [], []
    for i in range(iters + 1):
        sync(device)
        start = time.perf_counter()
        predictor.set_image(image)
        predictor.predict(SENTENCES[i % len(SENTENCES)])
        sync(device)
        firsts.append(time.perf_counter() - start)
        for sentence in SENTENCES[1:]:
            start = time.perf_counter()
            predictor.predict(sentence)
            sync(device)
            nexts.append(time.perf_counter() - start)
    return statistics.median(firsts), statistics.median(nexts)


def main() -> None:
    args = parse_args(__doc__, 320, ["cmpc_resnet101", "cmpc_tiny"])

    print_environment(args.size)
    rows = []
    for name in args.models:
        torch.manual_seed(0)
        model = build_model(name, vocabulary=_vocabulary(name))
        params = sum(p.numel() for p in model.parameters()) / 1e6
        image_gf, sentence_gf = count_gflops(model, args.size)
        for kind in args.devices:
            device = torch.device(kind)
            train_batch, infer_batch, iters = PLANS.get((name, kind), (1, 1, 2))
            iters = args.iters or iters
            model.to(device)
            train = train_rate(model, train_batch, args.size, iters, device)
            infer = infer_rate(model, infer_batch, args.size, iters, device)
            first, further = sentence_costs(model, args.size, iters, device)
            rows.append(
                (
                    name,
                    kind,
                    params,
                    image_gf,
                    sentence_gf,
                    train,
                    train_batch,
                    infer,
                    infer_batch,
                    first,
                    further,
                )
            )
            model.to("cpu")
            print(f"  done: {name} on {kind}", flush=True)
        del model
    header = (
        f"{'model':<15} {'device':<6} {'params (M)':>10} {'GFLOPs img+sent':>16} "
        f"{'train img/s (b)':>16} {'infer img/s (b)':>16} {'1st sentence':>12} "
        f"{'next sentence':>13} {'ratio':>6}"
    )
    print()
    print(header)
    print("-" * len(header))
    for name, kind, params, igf, sgf, train, tb, infer, ib, first, further in rows:
        print(
            f"{name:<15} {kind:<6} {params:10.2f} {igf:8.1f}+{sgf:<7.1f} "
            f"{train:11.2f} ({tb:>2}) {infer:11.2f} ({ib:>2}) {first * 1e3:9.1f} ms "
            f"{further * 1e3:10.1f} ms {first / further:5.1f}x"
        )


if __name__ == "__main__":
    main()
