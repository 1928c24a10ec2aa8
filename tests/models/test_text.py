"""Text encoders: CMPC's tokeniser and vocabulary, GloVe loading, the LSTM, transformers."""

from __future__ import annotations

import pytest
import torch

from cmseg.errors import ConfigError, InputError
from cmseg.models.text import (
    HFTextEncoder,
    LSTMTextEncoder,
    Vocabulary,
    load_glove,
    tokenize,
)

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py

SENTENCES = ["The man on the left.", "a red cup, next to the plate", "left zebra"]


def test_tokenize_as_the_official_preprocess_sentence():
    # util/text_processing.sentence2vocab_indices: re.split(r"(\W+)"), keep the pieces that
    # are not only whitespace, lowercase them *unstripped*, drop one trailing "." piece
    assert tokenize("The man, on the LEFT.") == ["the", "man", ", ", "on", "the", "left"]
    assert tokenize("  guy in   blue!! ") == ["guy", "in", "blue", "!!"]
    assert tokenize("") == [] and tokenize(" . ") == []
    assert tokenize("man on the left .") == ["man", "on", "the", "left", " ."]  # not "."
    assert tokenize("man's t-shirt") == ["man", "'", "s", "t", "-", "shirt"]
    # Unicode word characters stay in one token; the dot goes only at the end
    assert tokenize("café à gauche. ok.") == ["café", "à", "gauche", ". ", "ok"]
    assert tokenize("左のベッド") == ["左のベッド"]
    # strip=True: every piece stripped (cmseg's reading before it followed the official one)
    assert tokenize("The man, on the LEFT.", strip=True) == ["the", "man", ",", "on", "the", "left"]
    assert tokenize("man on the left .", strip=True) == ["man", "on", "the", "left"]


def test_punctuation_next_to_a_space_is_unknown_as_officially():
    """The official lookup takes ", " as it is; vocabulary files are read stripped, so it is
    never found and reads as <unk>; punctuation inside a word ("'" in "man's") is found."""
    vocab = Vocabulary(["man", ",", "left", "'", "s", "."])
    unk, ids = vocab.ids["<unk>"], vocab.ids
    assert vocab.encode("man, left") == [ids["man"], unk, ids["left"]]
    assert vocab.encode("man , left .") == [ids["man"], unk, ids["left"], unk]
    assert vocab.encode("man's left.") == [ids["man"], ids["'"], ids["s"], ids["left"]]
    # a vocabulary built from sentences holds only pieces the lookup can find
    built = Vocabulary.build(["the man, left", "man's"])
    assert ", " not in built.ids and "," not in built.ids and "'" in built.ids
    # checkpoints written before: every piece stripped, "," found
    legacy = Vocabulary(["man", ",", "left"], strip_tokens=True)
    assert legacy.encode("man, left") == [legacy.ids["man"], legacy.ids[","], legacy.ids["left"]]
    assert "," in Vocabulary.build(["the man, left"], strip_tokens=True).ids


def test_vocabulary_ids_unknown_long_and_empty_sentences(tmp_path):
    vocab = Vocabulary.build(SENTENCES + ["the the"])
    assert vocab.words[:4] == ["<pad>", "<go>", "<eos>", "<unk>"]
    assert vocab.words[4] == "the"  # most frequent first
    assert vocab.encode("the unseenword") == [vocab.ids["the"], 3]
    assert vocab.encode("") == [3] and vocab.encode("...") == [3]
    assert len(vocab.encode(" ".join(["left"] * 50))) == 20
    assert len(vocab.encode(" ".join(["left"] * 50), max_len=7)) == 7
    ids, lengths = vocab.batch(["left zebra", "", "the man on the left"])
    assert ids.shape == (3, 5) and lengths.tolist() == [2, 1, 5]
    assert ids[0, 2:].eq(0).all()  # right-padded with <pad>

    assert Vocabulary.from_json(vocab.to_json()).words == vocab.words
    path = tmp_path / "vocabulary.txt"
    path.write_text("\n".join(vocab.words) + "\n", encoding="utf-8")
    assert Vocabulary.from_file(path).words == vocab.words
    (tmp_path / "empty.txt").write_text("")
    with pytest.raises(InputError, match="empty"):
        Vocabulary.from_file(tmp_path / "empty.txt")


def test_load_glove_rows_missing_words_and_bad_files(tmp_path):
    vocab = Vocabulary(["man", "left", "zebra"])
    good = tmp_path / "glove.txt"
    good.write_text("man 1 2 3\nthe 0 0 0\nLeft 4 5 6\n", encoding="utf-8")
    weights, found = load_glove(good, vocab)
    assert weights.shape == (7, 3) and found == 2
    assert weights[vocab.ids["man"]].tolist() == [1, 2, 3]
    assert weights[vocab.ids["left"]].tolist() == [4, 5, 6]  # matched lowercased
    assert weights[0].abs().sum() == 0  # <pad>
    assert weights[vocab.ids["zebra"]].abs().sum() > 0  # random, seeded
    assert torch.equal(load_glove(good, vocab)[0], weights)

    bad = tmp_path / "bad.txt"
    bad.write_text("man 1 2 3\nleft 4 5\n", encoding="utf-8")
    with pytest.raises(InputError, match="line 2: 2 values, expected 3"):
        load_glove(bad, vocab)
    nan = tmp_path / "nan.txt"
    nan.write_text("man 1 x 3\n", encoding="utf-8")
    with pytest.raises(InputError, match="line 1: a value is not a number"):
        load_glove(nan, vocab)
    with pytest.raises(InputError, match="cannot read"):
        load_glove(tmp_path / "missing.txt", vocab)


def test_lstm_features_shapes_mask_and_norm():
    torch.manual_seed(0)
    vocab = Vocabulary.build(SENTENCES)
    encoder = LSTMTextEncoder(vocab, embed_dim=12, hidden=10)
    out = encoder(SENTENCES + [""])
    assert out.words.shape == (4, 8, 10) and out.mask.shape == (4, 8)
    assert out.mask.sum(1).tolist() == [5, 8, 2, 1]
    norms = out.words.norm(dim=-1)
    assert torch.allclose(norms[out.mask], torch.ones(int(out.mask.sum())), atol=1e-5)
    assert norms[~out.mask].eq(0).all()
    assert out.sentence.shape == (4, 10)
    out.words.sum().backward()
    assert encoder.embedding.weight.grad[vocab.ids["man"]].abs().sum() > 0
    assert encoder.embedding.weight.grad[0].abs().sum() == 0  # <pad> is never an input


def test_lstm_padding_never_changes_a_sentence():
    """The official code skips padded steps: a sentence encodes the same alone or batched
    beside a longer one, and its sentence feature is the state after its last word."""
    torch.manual_seed(0)
    vocab = Vocabulary.build(SENTENCES)
    encoder = LSTMTextEncoder(vocab, embed_dim=12, hidden=10, normalize=False).eval()
    alone = encoder(["left zebra"])
    batched = encoder(["a red cup, next to the plate", "left zebra"])
    assert torch.allclose(alone.words[0], batched.words[1, :2], atol=1e-6)
    assert torch.allclose(alone.sentence[0], batched.sentence[1], atol=1e-6)
    # by hand: run the LSTM over the two real tokens only
    ids = torch.tensor([vocab.encode("left zebra")])
    manual, (h, _) = encoder.lstm(encoder.embedding(ids))
    assert torch.allclose(manual[0], alone.words[0], atol=1e-6)
    assert torch.allclose(h[-1, 0], alone.sentence[0], atol=1e-6)


def test_lstm_with_glove_initialisation(tmp_path):
    vocab = Vocabulary(["man", "left"])
    (tmp_path / "g.txt").write_text("man 1 2\nleft 3 4\n")
    weights, _ = load_glove(tmp_path / "g.txt", vocab)
    encoder = LSTMTextEncoder(vocab, embed_dim=2, hidden=4, embeddings=weights)
    assert encoder.embedding.weight[vocab.ids["left"]].tolist() == [3, 4]
    with pytest.raises(ConfigError, match="expected"):
        LSTMTextEncoder(vocab, embed_dim=3, hidden=4, embeddings=weights)


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory):
    from transformers import BertConfig, BertModel, BertTokenizer

    folder = tmp_path_factory.mktemp("tiny_bert")
    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "man", "on", "left", "a",
             "red", "cup", ",", ".", "zebra", "caf", "##e"]  # fmt: skip
    (folder / "vocab.txt").write_text("\n".join(words) + "\n")
    BertTokenizer(str(folder / "vocab.txt")).save_pretrained(folder)
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=len(words), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=32, max_position_embeddings=64,
    )  # fmt: skip
    BertModel(config).save_pretrained(folder)
    return folder


def test_transformers_encoder_from_a_local_folder(tiny_bert):
    encoder = HFTextEncoder(tiny_bert, freeze=True, max_len=8)
    out = encoder(["the man on the left", "", "café zebra " * 10, "ベッド"])
    assert out.words.shape[0] == 4 and out.words.shape[2] == 16
    assert out.words.shape[1] == 8  # truncated, special tokens included
    assert out.mask.sum(1).min() >= 1 and out.sentence.shape == (4, 16)
    assert not out.words.requires_grad  # frozen
    encoder.train()
    assert not encoder.model.training  # a frozen encoder keeps dropout off


def test_transformers_encoder_fine_tuned_gets_gradients(tiny_bert):
    encoder = HFTextEncoder(tiny_bert, freeze=False)
    out = encoder(["the man", "a red cup"])
    out.sentence.sum().backward()
    grads = [p.grad for p in encoder.model.parameters() if p.requires_grad]
    assert grads and any(g is not None and g.abs().sum() > 0 for g in grads)


def test_transformers_encoder_errors(tmp_path):
    with pytest.raises(InputError, match="no such folder"):
        HFTextEncoder(tmp_path / "nothing")
    with pytest.raises(InputError, match="cannot load"):
        HFTextEncoder(tmp_path)


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory):
    """A randomly initialised CLIP (text and vision towers) with a byte-level BPE tokenizer
    that has no merges: every character is a token."""
    import json

    from transformers import CLIPConfig, CLIPModel, CLIPTokenizer

    folder = tmp_path_factory.mktemp("tiny_clip")
    chars = [chr(c) for c in range(33, 127)] + [chr(c) for c in range(161, 173)]
    chars += [chr(c) for c in range(174, 256)] + [chr(256 + n) for n in range(68)]
    tokens = chars + [c + "</w>" for c in chars] + ["<|startoftext|>", "<|endoftext|>"]
    (folder / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(tokens)}))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    tokenizer = CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"))
    tokenizer.save_pretrained(folder)
    torch.manual_seed(0)
    small = {"hidden_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2,
             "intermediate_size": 32}  # fmt: skip
    config = CLIPConfig(
        text_config={**small, "vocab_size": len(tokens), "max_position_embeddings": 32,
                     "bos_token_id": len(tokens) - 2, "eos_token_id": len(tokens) - 1,
                     "pad_token_id": len(tokens) - 1},
        vision_config={**small, "image_size": 32, "patch_size": 16},
    )  # fmt: skip
    CLIPModel(config).save_pretrained(folder)
    return folder


def test_clip_text_tower_from_a_full_clip_folder(tiny_clip):
    encoder = HFTextEncoder(tiny_clip, freeze=True, max_len=12)
    assert type(encoder.model).__name__ == "CLIPTextModel"  # the vision tower is not loaded
    out = encoder(["the man on the left", "", "a very long sentence about a zebra", "ベッド"])
    assert out.words.shape == (4, 12, 16) and out.sentence.shape == (4, 16)
    assert out.mask.sum(1).min() >= 1 and torch.isfinite(out.words).all()
    # the pooled feature is the end-of-text token's, the last real token of each row
    last = out.mask.sum(1) - 1
    assert torch.allclose(out.sentence, out.words[torch.arange(4), last], atol=1e-6)
