"""The loop of `cmseg predict` that every task shares, on a fake task command."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pytest

from cmseg.engine.prediction import Outcome, PredictCommand, PredictItem, run_prediction, shown
from cmseg.errors import InputError
from cmseg.io import read_mask


class FakePredictor:
    device = "cpu"

    def __init__(self) -> None:
        self.calls = 0


def make_command(items, *, loads):
    def predict(predictor, todo, args):
        predictor.calls += 1
        for item in todo:
            if item.payload == "bad":
                yield Outcome(item, error=f"{item.inputs[0]}: cannot be read")
            else:
                yield Outcome(
                    item, files={Path(args.out) / f"{item.name}.png": np.eye(3, dtype=bool)}
                )

    def load(args):
        loads.append(args.checkpoint)
        return FakePredictor()

    return PredictCommand(
        help="fake", unit="thing", batch_unit="things", add_arguments=lambda parser: None,
        collect=lambda args: list(items), load=load, predict=predict,
    )  # fmt: skip


def args_for(out: Path, **kw) -> argparse.Namespace:
    return argparse.Namespace(
        out=str(out), checkpoint="ckpt", batch_size=2, skip_existing=False, **kw
    )


def test_outputs_are_written_failures_listed_and_skip_existing_loads_nothing(tmp_path):
    src = tmp_path / "in.png"
    items = [
        PredictItem("a", (src,)),
        PredictItem("b", (src,), payload="bad"),
        PredictItem("c", (src,)),
    ]
    loads: list[str] = []
    out = tmp_path / "out"
    with pytest.raises(InputError, match=r"1 thing\(s\) failed \(listed above\): b"):
        run_prediction(make_command(items, loads=loads), args_for(out))
    assert sorted(p.name for p in out.iterdir()) == ["a.png", "c.png"]
    assert read_mask(out / "a.png").tolist() == np.eye(3, dtype=bool).tolist()
    good = [items[0], items[2]]
    args = args_for(out)
    args.skip_existing = True
    assert run_prediction(make_command(good, loads=loads), args) == 0
    assert loads == ["ckpt"]  # the second run found everything done and loaded no model


def test_two_items_of_one_name_or_an_output_over_an_input_are_refused(tmp_path):
    out = tmp_path / "out"
    twice = [PredictItem("a", (tmp_path / "x.png",)), PredictItem("a", (tmp_path / "y.png",))]
    with pytest.raises(InputError, match="two things would both be written as a.png"):
        run_prediction(make_command(twice, loads=[]), args_for(out))
    over = [PredictItem("x", (out / "x.png",))]
    with pytest.raises(InputError, match="would overwrite this input"):
        run_prediction(make_command(over, loads=[]), args_for(out))
    (tmp_path / "file").write_text("")
    with pytest.raises(InputError, match="is a file, not a folder"):
        run_prediction(make_command([], loads=[]), args_for(tmp_path / "file"))
    assert not out.exists()


def test_shown_cuts_long_lists():
    assert shown(["a", "b"]) == "a, b"
    assert shown([str(i) for i in range(7)]) == "0, 1, 2, 3, 4, ... (7 in all)"
