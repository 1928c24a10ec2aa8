"""Distributed helpers in one process, and a real 2-process DDP run on CPU (gloo).

The DDP test launches this very file under ``python -m torch.distributed.run``; run as a
script, it is the worker (see ``worker`` at the bottom).
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from cmseg.engine import distributed


def test_single_process_helpers_are_no_ops(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert distributed.init_from_env(torch.device("cpu")) is False
    assert not distributed.is_distributed()
    assert (distributed.rank(), distributed.world_size(), distributed.local_rank()) == (0, 1, 0)
    assert distributed.is_main()
    distributed.barrier()
    assert distributed.all_reduce_sums({"a": 2, "b": 0.5}) == {"a": 2.0, "b": 0.5}
    assert distributed.all_reduce_mean({"a": 2}, weight=7) == {"a": 2.0}
    assert distributed.all_gather_objects({"x": 1}) == [{"x": 1}]
    distributed.cleanup()
    assert distributed.resolve_device("cpu") == torch.device("cpu")
    assert distributed.resolve_device("auto").type == (
        "cuda" if torch.cuda.is_available() else "cpu"
    )


@pytest.mark.slow
def test_two_cpu_processes_with_gloo(tmp_path):
    run, side = tmp_path / "run", tmp_path / "side"
    side.mkdir()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    env.pop("WORLD_SIZE", None)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node=2",
            __file__,
            str(run),
            str(side),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]

    # rank 0 alone wrote the run folder: one copy of every log row, no stray files
    assert sorted(p.name for p in run.iterdir()) == ["best", "last", "metrics.csv"]
    with open(run / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    keys = Counter((r["step"], r["split"], r["name"]) for r in rows)
    assert keys and max(keys.values()) == 1
    # validation metrics were all-reduced: ranks returned 0 and 1, weighted by 1 and 2 samples
    val = {(r["step"], r["name"]): float(r["value"]) for r in rows if r["split"] == "val"}
    assert val[("2", "score")] == pytest.approx(2 / 3) and val[("4", "same")] == 0.5
    # the logged loss is the mean of the two ranks' losses
    for step in ("2", "4"):
        per_rank = [json.loads((side / f"rank{r}.json").read_text())["loss"][step] for r in (0, 1)]
        logged = next(
            float(r["value"])
            for r in rows
            if (r["step"], r["split"], r["name"]) == (step, "train", "loss")
        )
        assert logged == pytest.approx(sum(per_rank) / 2, rel=1e-6)

    # every rank returned the reduced metrics, and both ended with the same weights
    infos = [json.loads((side / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert infos[0]["final"] == infos[1]["final"] == {"score": pytest.approx(2 / 3), "same": 0.5}
    w0, w1 = load_file(str(side / "rank0.safetensors")), load_file(str(side / "rank1.safetensors"))
    ckpt = load_file(str(run / "last" / "model.safetensors"))
    for k in w0:
        assert torch.equal(w0[k], w1[k]) and torch.equal(w0[k], ckpt[k]), k
    # each rank read its own half of every epoch (24 samples, 2 x 4 per step, 3 steps per epoch)
    seen = [infos[r]["indices"] for r in (0, 1)]
    assert all(len(s) == 4 * 4 for s in seen)
    epoch0 = [set(s[:12]) for s in seen]
    assert not epoch0[0] & epoch0[1] and len(epoch0[0] | epoch0[1]) == 24
    state = torch.load(run / "last" / "state.pt", weights_only=True)
    assert len(state["rng"]) == 2 and state["data"]["world_size"] == 2


def worker(run: Path, side: Path) -> None:
    """One rank of the DDP test: train the toy problem for 4 steps."""
    from engine_toy import bce_loss, make_trainer

    rank = int(os.environ["RANK"])
    seen: list[int] = []
    losses: dict[str, float] = {}
    window: list[float] = []

    def loss_fn(outputs, batch):
        seen.extend(int(i) for i in batch["index"])
        loss, parts = bce_loss(outputs, batch)
        window.append(float(loss))
        if len(window) == 2:  # log_every=2 steps, accumulate=1
            losses[str(len(seen) // 4)] = sum(window) / 2
            window.clear()
        return loss, parts

    def validate(model):
        return {"score": float(rank), "same": 0.5, "num_samples": rank + 1}

    trainer = make_trainer(
        run, loss_fn=loss_fn, validate=validate, max_steps=4, eval_every=2, checkpoint_every=2
    )
    final = trainer.fit()
    assert trainer.world_size == 2 and trainer.rank == rank
    save_file(
        {k: v.contiguous() for k, v in trainer.model.state_dict().items()},
        str(side / f"rank{rank}.safetensors"),
    )
    (side / f"rank{rank}.json").write_text(
        json.dumps({"final": final, "indices": seen, "loss": losses})
    )
    distributed.cleanup()


if __name__ == "__main__":
    worker(Path(sys.argv[1]), Path(sys.argv[2]))
