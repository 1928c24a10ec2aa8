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


def test_skip_existing_recomputes_empty_and_damaged_outputs(tmp_path):
    src = tmp_path / "in.png"
    items = [PredictItem(name, (src,)) for name in ("a", "b", "c")]
    out = tmp_path / "out"
    loads: list[str] = []
    assert run_prediction(make_command(items, loads=loads), args_for(out)) == 0
    (out / "a.png").write_bytes(b"")  # zero bytes
    (out / "b.png").write_bytes((out / "b.png").read_bytes()[:30])  # cut short
    before = (out / "c.png").stat().st_mtime_ns
    args = args_for(out)
    args.skip_existing = True
    assert run_prediction(make_command(items, loads=loads), args) == 0
    assert loads == ["ckpt", "ckpt"]
    for name in ("a", "b"):
        assert read_mask(out / f"{name}.png").tolist() == np.eye(3, dtype=bool).tolist()
    assert (out / "c.png").stat().st_mtime_ns == before  # the intact one was kept


def test_sigterm_during_prediction_leaves_only_whole_files(tmp_path):
    import os
    import signal

    from cmseg.engine.signals import Interrupted, raise_on_sigterm

    src = tmp_path / "in.png"
    items = [PredictItem(f"{i:02d}", (src,)) for i in range(6)]

    def predict(predictor, todo, args):
        for i, item in enumerate(todo):
            if i == 3:
                os.kill(os.getpid(), signal.SIGTERM)
            yield Outcome(
                item, files={Path(args.out) / f"{item.name}.png": np.ones((64, 64), bool)}
            )

    command = PredictCommand(
        help="fake", unit="thing", batch_unit="things", add_arguments=lambda parser: None,
        collect=lambda args: list(items), load=lambda args: FakePredictor(), predict=predict,
    )  # fmt: skip
    out = tmp_path / "out"
    with pytest.raises(Interrupted), raise_on_sigterm():
        run_prediction(command, args_for(out))
    written = sorted(p.name for p in out.iterdir())
    assert written == ["00.png", "01.png", "02.png"]  # no temporary or half-written file
    for name in written:
        assert read_mask(out / name).all()
    args = args_for(out)
    args.skip_existing = True
    assert run_prediction(make_command(items, loads=[]), args) == 0
    assert len(list(out.iterdir())) == 6
