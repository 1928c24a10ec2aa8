"""`cmseg predict ris` and `RISPredictor` on what users actually give: sentences that are no
sentence, folders and globs of photos, JSON-lines files with absolute and relative paths
(cmseg's own predictions.jsonl among them), many malformed lines at once."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
import torch

from cmseg.cli import main
from cmseg.config import RunConfig, load_config, to_dict
from cmseg.data.formats.jsonl_refs import JsonlRefs, index_jsonl
from cmseg.data.sentences import check_sentence, check_sentences
from cmseg.data.synthetic import write_synthetic
from cmseg.engine.checkpoint import save_checkpoint
from cmseg.errors import InputError
from cmseg.io import read_mask, write_png
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


def test_cli_refuses_empty_and_punctuation_sentences(checkpoint, tmp_path, capsys):
    image = photo(tmp_path / "a.png")
    for bad in ("", "   ", "?!"):
        code = predict(checkpoint, tmp_path / "o", "--image", str(image), "--sentence", bad)
        assert code == 2
        err = one_line_error(capsys)
        assert "--sentence" in err and ("empty" in err or "no word" in err)
    assert not (tmp_path / "o").exists()


def write_jsonl(path: Path, rows: list) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [r if isinstance(r, str) else json.dumps(r) for r in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_jsonl_bad_sentences_are_all_reported_with_their_lines(checkpoint, tmp_path, capsys):
    photo(tmp_path / "a.png")
    rows = [
        {"image": "a.png", "sentence": "the red circle"},
        {"image": "a.png", "sentence": ""},
        {"image": "a.png", "sentence": "  "},
        {"image": "a.png", "sentence": "?!"},
        {"image": "a.png", "sentence": 5},
        {"image": "a.png", "sentence": ["the", "circle"]},
    ]
    path = write_jsonl(tmp_path / "refs.jsonl", rows)
    with pytest.raises(InputError) as caught:
        index_jsonl(path, require_mask=False)
    reason = caught.value.reason
    assert caught.value.path == str(path) and "5 malformed lines" in reason
    for line in (2, 3, 4, 5, 6):
        assert f"line {line}: 'sentence'" in reason
    assert "no word" in reason and "got int" in reason and "list of 2" in reason
    assert predict(checkpoint, tmp_path / "o", "--input", str(path)) == 2
    assert "5 malformed lines" in one_line_error(capsys)


# --------------------------------------------------------------------------------------------
# Item 6: the inputs users have


def test_a_folder_and_a_glob_of_photos_with_several_sentences(checkpoint, tmp_path):
    for k, name in enumerate(("b.png", "a.jpg", "c.png")):
        photo(tmp_path / "photos" / name, 30 + k, 50, seed=k)
    (tmp_path / "photos" / "notes.txt").write_text("not an image")
    out = tmp_path / "out"
    assert (
        predict_photos(checkpoint, out, tmp_path / "photos", "the red circle", "the blue star") == 0
    )
    for k, stem in enumerate(("b", "a", "c")):
        for s in (0, 1):
            assert read_mask(out / f"{stem}_{s}.png").shape == (30 + k, 50)
            assert (out / f"{stem}_{s}_overlay.png").is_file()
    rows = [json.loads(x) for x in (out / "predictions.jsonl").read_text().splitlines()]
    assert len(rows) == 6 and {r["id"] for r in rows} >= {"a_0", "c_1"}

    # what the shell makes of --image photos/*.png: several paths after one flag
    shell = [str(p) for p in sorted((tmp_path / "photos").glob("*.png"))]
    code = predict(checkpoint, tmp_path / "o2", "--image", *shell, "--sentence", "the star")
    assert code == 0 and sorted(p.name for p in (tmp_path / "o2").glob("?.png")) == [
        "b.png",
        "c.png",
    ]
    # a pattern no shell expanded (quoted, or a shell that does not glob)
    pattern = str(tmp_path / "photos" / "*.png")
    assert predict(checkpoint, tmp_path / "o3", "--image", pattern, "--sentence", "the star") == 0
    assert sorted(p.name for p in (tmp_path / "o3").glob("?.png")) == ["b.png", "c.png"]


def test_folder_errors_talk_about_photos_unless_split_is_given(checkpoint, tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert (
        predict(checkpoint, tmp_path / "o", "--image", str(tmp_path / "empty"), "--sentence", "x")
        == 2
    )
    err = one_line_error(capsys)
    assert "holds no image" in err and "dataset" not in err and "REFER" not in err
    missing = str(tmp_path / "nope" / "*.jpg")
    assert predict(checkpoint, tmp_path / "o", "--image", missing, "--sentence", "x") == 2
    assert "no file matches" in one_line_error(capsys)
    photo(tmp_path / "photos" / "a.png")
    assert predict(checkpoint, tmp_path / "o", "--image", str(tmp_path / "photos")) == 2
    err = one_line_error(capsys)
    assert "--sentence" in err and "dataset" not in err
    # --split selects the REFER reading, and only for one folder
    image = str(tmp_path / "photos" / "a.png")
    assert predict(checkpoint, tmp_path / "o", "--image", image, "--split", "val") == 2
    assert "REFER" in one_line_error(capsys)
    refer = tmp_path / "refer"
    write_synthetic("ris", refer, n=4, size=32, seed=0)
    assert predict(checkpoint, tmp_path / "o", "--input", str(refer), "--sentence", "x") == 2
    assert "--split" in one_line_error(capsys)  # a REFER root given as photos: say what is missing
    assert not (tmp_path / "o").exists()


def test_jsonl_prediction_inputs_take_absolute_and_relative_paths(checkpoint, tmp_path):
    a = photo(tmp_path / "photos" / "a.png")
    photo(tmp_path / "photos" / "b.png", seed=1)
    rows = [
        {"image": str(a), "sentence": "the red circle", "id": "abs"},  # absolute
        {"image": "../photos/b.png", "sentence": "the star", "id": "up"},  # beside the folder
    ]
    path = write_jsonl(tmp_path / "lists" / "refs.jsonl", rows)
    samples = index_jsonl(path, require_mask=False, confined=False)
    assert [s.image for s in samples] == [a, tmp_path / "lists" / ".." / "photos" / "b.png"]
    assert predict(checkpoint, tmp_path / "out", "--input", str(path)) == 0
    assert sorted(p.name for p in (tmp_path / "out").glob("*.png")) == ["abs.png", "up.png"]
    # a dataset annotation file stays inside its root; ids never escape the output folder
    with pytest.raises(InputError, match="escape the dataset root"):
        index_jsonl(path, require_mask=False)
    write_jsonl(path, [{"image": str(a), "sentence": "the star", "id": "../x"}])
    with pytest.raises(InputError, match="would escape"):
        index_jsonl(path, require_mask=False, confined=False)


def test_predictions_jsonl_reads_back_as_an_input(checkpoint, tmp_path, capsys):
    photo(tmp_path / "photos" / "a.png")
    photo(tmp_path / "photos" / "b.png", 36, 44, seed=1)
    first = tmp_path / "first"
    sentences = ("the red circle", "the big blue square")
    assert predict_photos(checkpoint, first, tmp_path / "photos", *sentences) == 0
    again, gt = tmp_path / "again", tmp_path / "gt"
    index = first / "predictions.jsonl"
    assert predict(checkpoint, again, "--input", str(index), "--gt-out", str(gt)) == 0
    names = sorted(p.name for p in first.glob("?_?.png"))
    assert names == ["a_0.png", "a_1.png", "b_0.png", "b_1.png"]
    for name in names:  # the same model and sentences give the same masks; the GT is run 1
        assert np.array_equal(read_mask(again / name), read_mask(first / name))
        assert np.array_equal(read_mask(gt / name), read_mask(first / name))
    rows = [json.loads(x) for x in (again / "predictions.jsonl").read_text().splitlines()]
    assert sorted(r["mask"] for r in rows) == names
    # predicting into the folder it reads would overwrite its masks
    assert predict(checkpoint, first, "--input", str(index)) == 2
    assert "would overwrite" in one_line_error(capsys)


def test_all_malformed_lines_are_reported_at_once(tmp_path):
    photo(tmp_path / "a.png")
    write_png(tmp_path / "m.png", np.ones((40, 56), bool))
    good = {"image": "a.png", "sentence": "the star", "mask": "m.png"}
    rows: list = [good, "{not json", {"image": "a.png"}, good | {"id": 1}, [1, 2], good | {"id": 1}]
    path = write_jsonl(tmp_path / "train.jsonl", rows)
    with pytest.raises(InputError) as caught:
        JsonlRefs(path)
    reason = caught.value.reason
    assert caught.value.path == str(path) and reason.startswith("4 malformed lines: line 2: ")
    for text in ("line 2: invalid JSON", "line 3: missing key 'sentence'", "line 5: each line"):
        assert text in reason
    assert "line 6: duplicate id 1 (first on line 4)" in reason and "data check" in reason
    # beyond the first few, a count
    path = write_jsonl(tmp_path / "many.jsonl", ["{"] * 9)
    with pytest.raises(InputError, match=r"9 malformed lines: line 1: .*line 5: .*\(9 in all\)"):
        index_jsonl(path, require_mask=False)
    # one bad line keeps the plain form of a data-check line
    write_jsonl(path, [good, {"image": "a.png"}])
    with pytest.raises(InputError, match=r"many.jsonl:2: missing key 'sentence'"):
        index_jsonl(path)
