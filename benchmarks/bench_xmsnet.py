"""Benchmark: XMSNet size, FLOPs and throughput (training and inference).

For each model (``xmsnet_pvt_v2_b5``, the paper's configuration, and ``xmsnet_tiny``) and each
device (CPU, and CUDA when available) it prints the parameters, the forward GFLOPs of one
image at ``--size`` (``torch.utils.flop_counter.FlopCounterMode``: one multiply-add counts 2
FLOPs; GMACs = GFLOPs / 2, the unit many papers call "FLOPs"), training images/s (forward,
:func:`cmseg.models.xmsnet.xmsnet_loss`, backward, Adam step) and inference images/s
(``torch.inference_mode()``, ``channels_last``; on CUDA also under bf16 autocast).

The paper configuration is heavy (2 x PVT-v2-b5, about 167 M parameters): on CPU it runs only
a few iterations at batch 2 (training) and 1 (inference). Training needs a batch of 2 or more
(BatchNorm over 1x1 channel descriptors). The CPU figures depend on the machine's load, which
is printed.

Run: ``python benchmarks/bench_xmsnet.py [--size 384] [--models xmsnet_tiny ...]
[--devices cpu cuda] [--iters N]``.
"""

from __future__ import annotations

import contextlib

import torch
from model_timing import parse_args, print_environment, seconds_per_call
from torch.utils.flop_counter import FlopCounterMode

from cmseg.models import build_model
from cmseg.models.xmsnet.loss import xmsnet_loss

# (train batch, inference batch, timed iterations) per model and device kind.
PLANS: dict[tuple[str, str], tuple[int, int, int]] = {
    ("xmsnet_pvt_v2_b5", "cpu"): (2, 1, 2),
    ("xmsnet_tiny", "cpu"): (4, 4, 5),
    ("xmsnet_pvt_v2_b5", "cuda"): (10, 16, 20),  # batch 10 as in the official training
    ("xmsnet_tiny", "cuda"): (32, 64, 20),
}


def _inputs(batch: int, size: int, device: torch.device) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(0)
    rgb = torch.randn(batch, 3, size, size, generator=g)
    aux = torch.rand(batch, 1, size, size, generator=g)
    gt = (torch.rand(batch, 1, size, size, generator=g) > 0.5).float()
    return rgb.to(device), aux.to(device), gt.to(device)


def count_gflops(model: torch.nn.Module, size: int) -> float:
    """Forward GFLOPs of one image (counted on CPU in eval mode)."""
    model.eval()
    rgb, aux, _ = _inputs(1, size, torch.device("cpu"))
    counter = FlopCounterMode(display=False)
    with torch.inference_mode(), counter:
        model(rgb, aux)
    return counter.get_total_flops() / 1e9


def train_rate(
    model: torch.nn.Module, batch: int, size: int, iters: int, device: torch.device
) -> float:
    """Training images per second: forward, loss, backward, Adam step."""
    model.train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    rgb, aux, gt = _inputs(batch, size, device)

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        loss, _ = xmsnet_loss(model(rgb, aux), gt)
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
    """Inference images per second under ``inference_mode`` with ``channels_last`` inputs."""
    model.eval()
    model.to(memory_format=torch.channels_last)
    rgb, aux, _ = _inputs(batch, size, device)
    rgb = rgb.contiguous(memory_format=torch.channels_last)
    autocast = (
        torch.autocast(device.type, dtype=amp) if amp is not None else contextlib.nullcontext()
    )
    with torch.inference_mode(), autocast:
        seconds = seconds_per_call(lambda: model(rgb, aux), iters, device)
    model.to(memory_format=torch.contiguous_format)
    return batch / seconds


def main() -> None:
    args = parse_args(__doc__, 384, ["xmsnet_pvt_v2_b5", "xmsnet_tiny"])

    print_environment(args.size)
    header = (
        f"{'model':<18} {'device':<10} {'params (M)':>10} {'GFLOPs':>8} {'GMACs':>7} "
        f"{'train img/s':>12} {'(batch)':>7} {'infer img/s':>12} {'(batch)':>7}"
    )
    rows = []
    for name in args.models:
        torch.manual_seed(0)
        model = build_model(name)
        params = sum(p.numel() for p in model.parameters()) / 1e6
        gflops = count_gflops(model, args.size)
        for kind in args.devices:
            device = torch.device(kind)
            train_batch, infer_batch, iters = PLANS.get((name, kind), (2, 1, 2))
            iters = args.iters or iters
            model.to(device)
            train = train_rate(model, train_batch, args.size, iters, device)
            infer = infer_rate(model, infer_batch, args.size, iters, device)
            rows.append((name, kind, params, gflops, train, train_batch, infer, infer_batch))
            if kind == "cuda":
                bf16 = infer_rate(model, infer_batch, args.size, iters, device, torch.bfloat16)
                rows.append((name, "cuda bf16", params, gflops, float("nan"), 0, bf16, infer_batch))
            model.to("cpu")
            print(f"  done: {name} on {kind}", flush=True)
        del model
    print()
    print(header)
    print("-" * len(header))
    for name, kind, params, gflops, train, tb, infer, ib in rows:
        train_s = f"{train:12.2f} {tb:>7}" if tb else f"{'-':>12} {'':>7}"
        print(
            f"{name:<18} {kind:<10} {params:10.2f} {gflops:8.1f} {gflops / 2:7.1f} "
            f"{train_s} {infer:12.2f} {ib:>7}"
        )


if __name__ == "__main__":
    main()
