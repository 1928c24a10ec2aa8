"""The tokenisation a ris checkpoint was trained with travels with it: new checkpoints look
tokens up as the official code does (unstripped, ``extra.strip_tokens: false``); checkpoints
written before keep their stripped reading."""

from __future__ import annotations

from pathlib import Path

import pytest

from cmseg.config import RunConfig, load_config, to_dict
from cmseg.data.synthetic import write_synthetic
from cmseg.engine.checkpoint import save_checkpoint
from cmseg.predictors import RISPredictor
from cmseg.tasks.ris.train import build_training

ROOT = Path(__file__).resolve().parents[3]
TINY = ROOT / "configs" / "ris" / "cmpc_tiny.yaml"

pytestmark = pytest.mark.usefixtures("one_thread")


def test_checkpoints_record_and_follow_the_token_lookup(tmp_path):
    root = tmp_path / "synth"
    write_synthetic("ris", root, n=8, size=64, seed=0)
    cfg = load_config(
        RunConfig,
        TINY,
        [f"data.root={root}", f"output_dir={tmp_path / 'run'}", "model.image_size=64",
         "data.batch_size=2", "data.num_workers=0", "train.device=cpu"],
    )  # fmt: skip
    setup = build_training(cfg)
    extra = setup.checkpoint_extra
    assert extra["strip_tokens"] is False
    assert extra["vocabulary"] == setup.model.text_encoder.vocab.words
    assert setup.model.text_encoder.vocab.strip_tokens is False

    state = setup.model.state_dict()
    for folder, stored, expected in (
        ("new", extra, False),
        ("old", {"vocabulary": extra["vocabulary"]}, True),  # before the key existed
    ):
        ckpt = save_checkpoint(
            tmp_path / folder,
            state,
            step=1,
            model_name="cmpc_tiny",
            config=to_dict(cfg),
            extra=stored,
        )
        predictor = RISPredictor.from_checkpoint(ckpt, device="cpu")
        assert predictor.model.text_encoder.vocab.strip_tokens is expected, folder
    assert setup.model.text_encoder.vocab.encode("circle, left")[1] == 3  # ", " is <unk>
