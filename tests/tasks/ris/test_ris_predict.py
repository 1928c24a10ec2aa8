"""`RISPredictor` on what users actually give: sentences that are no sentence, too long, or
made of words the model does not know."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import torch

from cmseg.cli import main
from cmseg.config import RunConfig, load_config, to_dict
from cmseg.data.sentences import check_sentence, check_sentences
from cmseg.engine.checkpoint import save_checkpoint
from cmseg.io import write_png
from cmseg.models.text import Vocabulary
from cmseg.predictors import RISPredictor
from cmseg.tasks.ris.model import build_ris_model

ROOT = Path(__file__).resolve().parents[3]
TINY = ROOT / "configs" / "ris" / "cmpc_tiny.yaml"
WORDS = ["the", "red", "blue", "circle", "star", "left", "of", "big", "square", ","]

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    """An untrained cmpc_tiny at 64 px with a ten-word vocabulary, saved as `cmseg train` does."""
    cfg = load_config(RunConfig, TINY, ["model.image_size=64"])
    torch.manual_seed(0)
    model = build_ris_model(cfg.model, Vocabulary(WORDS))
    return save_checkpoint(
        tmp_path_factory.mktemp("ris_ckpt") / "best",
        model.state_dict(),
        step=1,
        model_name=cfg.model.name,
        config=to_dict(cfg),
        extra={"vocabulary": Vocabulary(WORDS).words},
    )


@pytest.fixture(scope="module")
def predictor(checkpoint) -> RISPredictor:
    return RISPredictor.from_checkpoint(checkpoint, device="cpu")


def photo(path: Path, h: int = 40, w: int = 56, seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_png(path, np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8))
    return path


def predict(checkpoint: Path, out: Path, *args: str) -> int:
    return main(["predict", "ris", "--checkpoint", str(checkpoint), "--out", str(out), "-q", *args])


def predict_photos(checkpoint: Path, out: Path, images: Path, *sentences: str) -> int:
    return predict(
        checkpoint, out, "--image", str(images), *[x for s in sentences for x in ("--sentence", s)]
    )


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    return err


# --------------------------------------------------------------------------------------------
# Item 5: sentences


@pytest.mark.parametrize(
    ("value", "kind", "message"),
    [
        ("", ValueError, "empty or blank"),
        ("  \t ", ValueError, "empty or blank"),
        (" ?! ... ", ValueError, "no word"),
        (None, TypeError, "must be a str, got NoneType"),
        (3, TypeError, "got int"),
        (b"the cup", TypeError, "bytes"),
        (["a", "b"], TypeError, "got a list of 2"),
    ],
)
def test_check_sentence_refuses_what_is_no_sentence(value, kind, message):
    with pytest.raises(kind, match=message):
        check_sentence(value)


def test_check_sentence_takes_words_of_any_script():
    for sentence in ("the circle", "ベッド", "café ?", "3", "the man, on the LEFT."):
        assert check_sentence(sentence) is sentence
    assert check_sentences(("a", "b")) == ["a", "b"] and check_sentences([]) == []
    with pytest.raises(TypeError, match="got one str"):
        check_sentences("the circle")
    with pytest.raises(ValueError, match=r"sentence 2 of 3 \('\.\.\.'\) has no word"):
        check_sentences(["a", "...", "b"])


def test_predictor_refuses_bad_sentences_before_any_work(predictor):
    predictor.set_image(np.zeros((30, 40, 3), np.uint8))
    with pytest.raises(TypeError, match="got one str"):
        predictor.predict_sentences("the circle")  # never 10 masks, one per character
    with pytest.raises(TypeError, match="predict_sentences"):
        predictor.predict(["a", "b"])
    for bad, kind in (("", ValueError), (" ?! ", ValueError), (7, TypeError), (None, TypeError)):
        with pytest.raises(kind):
            predictor.predict(bad)
        with pytest.raises(kind):
            predictor.predict_probability(bad)
    with pytest.raises(ValueError, match="sentence 2 of 2"):
        predictor.predict_sentences(["the red circle", "  "])
    assert [m.shape for m in predictor.predict_sentences(("the star", "ベッド"))] == [(30, 40)] * 2
    predictor.reset_image()


def test_predictor_warns_when_a_sentence_is_cut_or_has_no_known_word(predictor, caplog):
    predictor.set_image(np.zeros((30, 40, 3), np.uint8))
    predictor.sentence_notes.clear()
    long = " ".join(["the red circle left of the big blue star"] * 3)  # 27 tokens
    with caplog.at_level(logging.WARNING, logger="cmseg"):
        assert predictor.predict("the red circle").shape == (30, 40)
        assert not caplog.records
        assert predictor.predict(long).shape == (30, 40)
        assert predictor.predict("zebra giraffe, okapi").shape == (30, 40)
    cut, unknown = (r.getMessage() for r in caplog.records)
    assert "27 tokens" in cut and "limit of 20" in cut
    assert "none of its words is in the model's vocabulary" in unknown and "okapi" in unknown
    assert predictor.sentence_notes == {"cut": 1, "unknown": 1}
    predictor.reset_image()


def test_hugging_face_encoders_report_cut_and_unknown_sentences(tmp_path):
    from test_ris_task import write_tiny_bert

    from cmseg.models.text import HFTextEncoder

    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "red", "circle", ","]
    write_tiny_bert(tmp_path, words, hidden=8)
    encoder = HFTextEncoder(tmp_path, max_len=8)
    fine = encoder.inspect_sentence("the red circle")
    assert (fine.tokens, fine.limit, fine.cut, fine.unknown_only) == (5, 8, False, False)
    long = encoder.inspect_sentence("the red circle , the red circle , the")
    assert long.cut and long.tokens == 11
    assert encoder.inspect_sentence("zebra okapi").unknown_only
