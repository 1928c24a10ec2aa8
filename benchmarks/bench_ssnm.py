"""Benchmark: SSNM, by sections (``--sections solvers,...``).

``solvers``: the spatial modulator's two solvers (:func:`cmseg.models.ssnm.spatial.spatial_mask`,
``"eigen"``: the closed form, and ``"adam"``: the official 200-step Adam, batched) on the
pool5 maps (512 x 7 x 7 at 224 px, >= 0 after ReLU) of a VGG16-BN
(``torchvision.models.vgg16_bn(weights=None).features``, randomly initialised with ``--seed``,
or loaded from ``--vgg-weights``, a local file in torchvision's ``features`` layout), for
groups of N = ``--sizes`` images of three kinds:

* ``shared``: synthetic co-segmentation groups (one shape class common to every image,
  :mod:`cmseg.data.synthetic.coseg`): a common object;
* ``mixed``: images of those groups taken round-robin across classes: no common object;
* ``noise``: random ReLU noise maps of the same shape: no common object, no image structure;
* ``cluster``: not backbone features but the case a trained backbone aims at: noise maps where
  a quarter of the positions share one prototype (a clear top eigenvalue). With random
  weights the pool5 maps of all images are alike (mean cosine ~0.87) and do not single out
  the shared shape, so ``shared`` and ``mixed`` have similar spectra.

Per group it prints the top two eigenvalues of the official ``G`` (float64 eigh) and their gap,
the cosine between the two masks and between the closed form and the float64 eigenvector, the
mask norms, the official objective ``L`` of each mask (lower is better) and which is better;
then per kind and N the time per group of each solver (``eigen``, ``adam`` batched over the
``--groups`` groups) and of the official code's loop (one group at a time:
``similarity_matrix`` + ``torch.optim.Adam`` with autograd, :func:`adam_reference`, on the CPU
as in the official code), with the speed ratios against the closed form measured in the same
run. CPU timings depend on the load (printed) and on ``--threads`` (default 1: on a small
shared CPU, OpenMP threads waiting for each other made these small solves up to 100x slower
and erratic; 0 keeps torch's default).

``model``: per configuration (``paper``: ``ssnm_vgg16`` at 224 px, the official groups of 5;
``tiny``: ``ssnm_tiny`` at 128 px, the demo's) and device: parameters, forward GFLOPs per image
(``torch.utils.flop_counter``, one multiply-add = 2 FLOPs; the spatial solver's eigensolver is
not counted), training groups/s (forward, loss, backward and an Adam step on ``--train-groups``
groups of 5) and inference images/s (eval mode, one group of 5 per call), with both solvers'
inference rates so the cost of the official Adam solve shows beside the closed form's.

Run: ``python benchmarks/bench_ssnm.py [--sections solvers,model] [--sizes 2 5 10 20] [--groups 2]
[--kinds shared mixed noise] [--vgg-weights FILE] [--threads T] [--devices cpu cuda]``.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from model_timing import print_environment, seconds_per_call, sync

from cmseg.data.synthetic import coseg, draw
from cmseg.models.ssnm.spatial import (
    adam_reference,
    similarity_matrix,
    spatial_mask,
    spatial_objective,
)

IMAGE_SIZE = 224  # the official input size: pool5 maps are 7 x 7
MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
KINDS = ("shared", "mixed", "noise", "cluster")


def vgg_pool5(weights: Path | None, seed: int) -> torch.nn.Module:
    """VGG16-BN's convolutional part up to pool5, in eval mode; random (``seed``) or loaded
    from a state dict of ``vgg16_bn().features`` (keys ``0.weight``...; a full ``vgg16_bn``
    state dict with ``features.`` keys works too)."""
    import torchvision

    torch.manual_seed(seed)
    net = torchvision.models.vgg16_bn(weights=None).features
    if weights is not None:
        state = torch.load(weights, map_location="cpu", weights_only=True)
        if any(k.startswith("features.") for k in state):
            state = {
                k[len("features.") :]: v for k, v in state.items() if k.startswith("features.")
            }
        net.load_state_dict(state)
    return net.eval()


def shared_groups(sizes: Sequence[int], groups: int, seed: int) -> list[list[np.ndarray]]:
    """``groups`` synthetic groups of each size, RGB uint8 224 x 224; consecutive groups have
    different common classes."""
    out = []
    for a, n in enumerate(sizes):
        plans = coseg.plan_groups(len(sizes) * groups, seed, len(draw.SHAPES), n, 0.0)
        for plan in plans[a * groups : (a + 1) * groups]:
            images = []
            for k, im in enumerate(plan["images"]):
                rng = draw.item_rng(seed, "coseg", n, plan["group"], k)
                rgb, _ = coseg.make_image(
                    rng, IMAGE_SIZE, plan["class"], im["common"], im["distractors"]
                )
                images.append(rgb)
            out.append(images)
    return out


def pool5_maps(net: torch.nn.Module, images: list[np.ndarray]) -> torch.Tensor:
    """``(len(images), 512, 7, 7)`` pool5 maps of ImageNet-normalised images."""
    maps = []
    with torch.inference_mode():
        for start in range(0, len(images), 8):
            batch = np.stack(images[start : start + 8])
            x = torch.from_numpy(batch).permute(0, 3, 1, 2).float() / 255.0
            maps.append(net((x - MEAN) / STD))
    return torch.cat(maps)


def round_robin(groups: list[torch.Tensor]) -> list[torch.Tensor]:
    """Every image of ``groups`` (each ``(n_g, C, h, w)``), one group after the other in turn,
    so that a window of consecutive images spreads over many classes."""
    flat, depth = [], max(g.shape[0] for g in groups)
    for k in range(depth):
        flat += [g[k] for g in groups if k < g.shape[0]]
    return flat


def group_features(args: argparse.Namespace) -> dict[tuple[str, int], torch.Tensor]:
    """``{(kind, N): (groups, N, 512, 7, 7)}`` for the kinds and sizes asked for."""
    out: dict[tuple[str, int], torch.Tensor] = {}
    g = args.groups
    if {"shared", "mixed"} & set(args.kinds):
        images = shared_groups(args.sizes, g, args.seed)
        net = vgg_pool5(args.vgg_weights, args.seed)
        maps = [pool5_maps(net, group) for group in images]
        print(f"  pool5 maps of {sum(len(i) for i in images)} synthetic images", flush=True)
        pool = round_robin(maps)
        for a, n in enumerate(args.sizes):
            if "shared" in args.kinds:
                out["shared", n] = torch.stack(maps[a * g : (a + 1) * g])
            if "mixed" in args.kinds:
                picks = [[pool[(r * n + k) % len(pool)] for k in range(n)] for r in range(g)]
                out["mixed", n] = torch.stack([torch.stack(p) for p in picks])
    gen = torch.Generator().manual_seed(args.seed)
    for n in args.sizes:
        maps = torch.relu(torch.randn(2, g, n, 512, 7, 7, generator=gen))
        if "noise" in args.kinds:
            out["noise", n] = maps[0]
        if "cluster" in args.kinds:
            proto = torch.relu(torch.randn(g, 1, 512, 1, 1, generator=gen))
            shared = (torch.rand(g, n, 1, 7, 7, generator=gen) < 0.25).float()
            planted = torch.relu(2 * proto + 0.5 * torch.randn(maps[1].shape, generator=gen))
            out["cluster", n] = shared * planted + (1 - shared) * maps[1]
    return out


def _cos(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return F.cosine_similarity(a.flatten(1).double(), b.flatten(1).double(), dim=1)


def _better(eigen: float, adam: float) -> str:
    if not np.isfinite(adam):
        return "eigen (adam NaN)"
    if abs(eigen - adam) <= 1e-5 * max(1.0, abs(eigen)):
        return "tie"
    return "eigen" if eigen < adam else "adam"


def quality_rows(features: torch.Tensor, device: torch.device) -> list[tuple]:
    """Per group: ``(lam1, lam2, cos eigen-adam, cos eigen-eigh64, |eigen|, |adam|, L eigen,
    L adam)``."""
    f = features.to(device)
    gram = similarity_matrix(f)
    values, vectors = torch.linalg.eigh(gram.double())
    eigen, adam = spatial_mask(f), spatial_mask(f, solver="adam")
    l_eigen, l_adam = spatial_objective(gram, eigen), spatial_objective(gram, adam)
    rows = zip(
        values[:, -1].tolist(),
        values[:, -2].tolist(),
        _cos(eigen, adam).tolist(),
        _cos(eigen, vectors[:, :, -1]).abs().tolist(),
        eigen.flatten(1).norm(dim=1).tolist(),
        adam.flatten(1).norm(dim=1).tolist(),
        l_eigen.tolist(),
        l_adam.tolist(),
        strict=True,
    )
    return list(rows)


def solver_seconds(features: torch.Tensor, device: torch.device) -> tuple[float, float, float]:
    """Seconds per group of ``eigen`` and ``adam`` (batched over the groups, on ``device``)
    and of the official loop (one group at a time on the CPU)."""
    f = features.to(device)
    groups = f.shape[0]
    eigen = seconds_per_call(lambda: spatial_mask(f), 5, device) / groups
    adam = seconds_per_call(lambda: spatial_mask(f, solver="adam"), 1, device) / groups
    cpu = features.cpu()

    def official() -> None:
        for i in range(groups):
            adam_reference(similarity_matrix(cpu[i : i + 1])[0])

    sync(device)
    return eigen, adam, seconds_per_call(official, 1, torch.device("cpu")) / groups


def _table_head(title: str, header: str) -> None:
    print(f"\n-- {title} --")
    print(header)
    print("-" * len(header))


def solvers_section(args: argparse.Namespace) -> None:
    """The ``solvers`` section: agreement, objective and speed of the two solvers."""
    print("\n== solvers: the spatial modulator, closed form (eigen) vs 200 Adam steps ==")
    features = group_features(args)
    for kind in args.devices:
        device = torch.device(kind)
        header = (
            f"{'kind':<7} {'N':>3} {'grp':>3} {'lam1':>8} {'lam2':>7} {'gap':>8} {'l1/l2':>6} "
            f"{'cos e-a':>8} {'cos e-64':>9} {'|s| e':>6} {'|s| a':>7} {'L eigen':>10} "
            f"{'L adam':>10}  better"
        )
        _table_head(f"{kind}: masks (L = -s^T G s + 50 phi(|s|), lower is better)", header)
        for (name, n), f in features.items():
            for i, row in enumerate(quality_rows(f, device)):
                l1, l2, ca, c64, ne, na, le, la = row
                print(
                    f"{name:<7} {n:>3} {i:>3} {l1:8.3f} {l2:7.3f} {l1 - l2:8.3f} "
                    f"{l1 / l2 if l2 else float('inf'):6.2f} {ca:8.4f} {c64:9.6f} {ne:6.3f} "
                    f"{na:7.3f} {le:10.3f} {la:10.3f}  {_better(le, la)}"
                )
        header = (
            f"{'kind':<7} {'N':>3} {'M':>4} {'eigen ms':>9} {'adam ms':>9} {'official ms':>12} "
            f"{'adam/eigen':>11} {'official/eigen':>15}"
        )
        _table_head(f"{kind}: time per group (official loop on the CPU)", header)
        for (name, n), f in features.items():
            te, ta, to = solver_seconds(f, device)
            m = n * f.shape[-2] * f.shape[-1]
            print(
                f"{name:<7} {n:>3} {m:>4} {te * 1e3:9.2f} {ta * 1e3:9.1f} {to * 1e3:12.1f} "
                f"{ta / te:10.1f}x {to / te:14.1f}x",
                flush=True,
            )


#: The model section's configurations: name -> (builder, input side).
CONFIGS = {"paper": ("ssnm_vgg16", 224), "tiny": ("ssnm_tiny", 128)}


def _group_batch(groups: int, size: int, device: torch.device) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(0)
    images = torch.randn(groups, 5, 3, size, size, generator=g)
    masks = (torch.rand(groups, 5, size, size, generator=g) > 0.7).float()
    labels = torch.zeros(groups, 78)
    labels[:, 0] = 1
    return images.to(device), masks.to(device), labels.to(device)


def _gflops_per_image(model: torch.nn.Module, size: int) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    images, _, _ = _group_batch(1, size, torch.device("cpu"))
    model.eval()
    counter = FlopCounterMode(display=False)
    with torch.inference_mode(), counter:
        model(images)
    return counter.get_total_flops() / 1e9 / images.shape[1]


def _rates(model: torch.nn.Module, size: int, device: torch.device, groups: int) -> dict:
    from cmseg.models.ssnm import ssnm_loss

    model.to(device)
    images, masks, labels = _group_batch(groups, size, device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-5)

    def train_step() -> None:
        loss, _ = ssnm_loss(model(images), masks, labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    model.train()
    train_s = seconds_per_call(train_step, 2, device)
    model.eval()
    infer = {}
    for solver in ("eigen", "adam"):
        model.spatial_solver = solver
        with torch.inference_mode():
            infer[solver] = seconds_per_call(lambda: model(images[:1]), 3, device)
    model.spatial_solver = "eigen"
    return {"train": groups / train_s, "eigen": 5 / infer["eigen"], "adam": 5 / infer["adam"]}


def model_section(args: argparse.Namespace) -> None:
    """The ``model`` section: size, FLOPs and throughput of the paper and tiny models."""
    from cmseg.models import build_model

    print("\n== model: parameters, GFLOPs, training and inference rates ==")
    header = (
        f"{'config':<6} {'device':<6} {'size':>4} {'params M':>9} {'GFLOPs/img':>11} "
        f"{'train groups/s':>15} {'infer img/s':>12} {'infer img/s (adam)':>19} {'adam/eigen':>11}"
    )
    _table_head(f"groups of 5, {args.train_groups} groups per training step", header)
    for name, (builder, size) in CONFIGS.items():
        torch.manual_seed(0)
        model = build_model(builder, num_classes=78)
        params = sum(p.numel() for p in model.parameters()) / 1e6
        gflops = _gflops_per_image(model, size)
        for kind in args.devices:
            r = _rates(model, size, torch.device(kind), args.train_groups)
            print(
                f"{name:<6} {kind:<6} {size:>4} {params:9.2f} {gflops:11.2f} {r['train']:15.2f} "
                f"{r['eigen']:12.1f} {r['adam']:19.1f} {r['eigen'] / r['adam']:10.2f}x",
                flush=True,
            )


#: section name -> function of the parsed arguments.
SECTIONS: dict[str, Callable[[argparse.Namespace], None]] = {
    "solvers": solvers_section,
    "model": model_section,
}


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sections", default="solvers,model", help=f"comma-separated: {list(SECTIONS)}"
    )
    parser.add_argument("--train-groups", type=int, default=4, help="model: groups per step")
    parser.add_argument("--sizes", type=int, nargs="+", default=[2, 5, 10, 20])
    parser.add_argument("--groups", type=int, default=2, help="groups per kind and size")
    parser.add_argument("--kinds", nargs="+", choices=KINDS, default=list(KINDS))
    parser.add_argument("--vgg-weights", type=Path, default=None, help="vgg16_bn features file")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--threads", type=int, default=1, help="torch CPU threads (0: torch's default)"
    )
    parser.add_argument("--devices", nargs="+", default=None, help="default: cpu and cuda if any")
    args = parser.parse_args(argv)
    args.sections = [s.strip() for s in args.sections.split(",") if s.strip()]
    unknown = [s for s in args.sections if s not in SECTIONS]
    if unknown:
        parser.error(f"unknown section(s) {unknown}; choose from {list(SECTIONS)}")
    if min(args.sizes) < 1 or args.groups < 1:
        parser.error("--sizes and --groups must be >= 1")
    args.devices = args.devices or (["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"])
    return args


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    print_environment(IMAGE_SIZE)
    for name in args.sections:
        SECTIONS[name](args)


if __name__ == "__main__":
    main()
