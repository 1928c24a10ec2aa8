"""Text encoders: a sentence in, word features, a word mask and a sentence feature out.

Two interchangeable encoders share one output, :class:`TextFeatures`:

* :class:`LSTMTextEncoder`, CMPC's language encoder (reference cmpc_refseg.md §3): a word
  :class:`Vocabulary` built from the training sentences (saved with the model, see
  :meth:`Vocabulary.to_json`), word embeddings optionally initialised from a local GloVe text
  file (:func:`load_glove`), and a one-layer LSTM (1000 wide in the paper) over at most 20
  tokens. As in the official code, padding never enters the LSTM, the LSTM is TF's
  ``BasicLSTMCell`` (forget bias 1.0), words are looked up as the official tokeniser leaves
  them (:func:`tokenize`) and the word features are L2-normalised.
* :class:`HFTextEncoder`: any Hugging Face ``transformers`` encoder saved in a local directory
  (BERT, RoBERTa, CLIP's text tower), frozen or fine-tuned. Nothing is downloaded.

Both are ``nn.Module``\\ s with ``forward(sentences: list[str]) -> TextFeatures``.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from cmseg.errors import ConfigError, InputError
from cmseg.fs import filesystem_reason

__all__ = [
    "TextFeatures",
    "SentenceTokens",
    "Vocabulary",
    "tokenize",
    "load_glove",
    "LSTMTextEncoder",
    "HFTextEncoder",
]

#: The official special tokens, ids 0-3 (text_objseg's vocabulary files).
PAD, GO, EOS, UNK = "<pad>", "<go>", "<eos>", "<unk>"
SPECIALS = (PAD, GO, EOS, UNK)

#: ``re.split`` with a capturing group keeps the separators: punctuation becomes tokens (with
#: the spaces around it, as the official code keeps them), whitespace-only pieces are dropped
#: afterwards. ``\W`` is Unicode-aware, so "café" or "ベッド" stay whole words.
_SPLIT = re.compile(r"(\W+)")


@dataclass
class TextFeatures:
    """What a text encoder returns for a batch of B sentences.

    Attributes:
        words: ``B x L x C`` word features (L = the longest sentence of the batch, at most the
            encoder's ``max_len``); padded positions are 0.
        mask: ``B x L`` bool, True on real words. Every row has at least one True.
        sentence: ``B x C`` one feature per sentence.
    """

    words: torch.Tensor
    mask: torch.Tensor
    sentence: torch.Tensor


@dataclass(frozen=True)
class SentenceTokens:
    """How a text encoder reads one sentence (:meth:`LSTMTextEncoder.inspect_sentence`,
    :meth:`HFTextEncoder.inspect_sentence`), for warnings before a prediction.

    Attributes:
        tokens: tokens the whole sentence makes (special tokens included where the encoder
            adds them).
        limit: the most tokens the encoder reads (its ``max_len``); the rest is cut.
        unknown: the word tokens it reads that its vocabulary lacks (each read as "unknown";
            a Hugging Face tokenizer gives its unknown token, which does not say which word).
        unknown_only: it reads at least one word token and every one of them is unknown:
            the model sees no word of the sentence.
    """

    tokens: int
    limit: int
    unknown: tuple[str, ...]
    unknown_only: bool

    @property
    def cut(self) -> bool:
        """The sentence is longer than the encoder reads."""
        return self.tokens > self.limit


#: A token holding a letter or digit (not a punctuation token such as ",").
_WORDLIKE = re.compile(r"\w")


def tokenize(sentence: str, *, strip: bool = False) -> list[str]:
    """CMPC's (text_objseg's) tokenisation, ``sentence2vocab_indices``: split on runs of
    non-word characters keeping them as tokens, drop the pieces that are only whitespace,
    lowercase, drop one trailing ``"."`` piece.

    The pieces are kept as they are, spaces included (``", "`` in "man, left"), because the
    official code looks them up that way: punctuation next to a space is never in a
    vocabulary (whose words are stripped) and reads as ``<unk>``, and only a final ``"."``
    written against the last word is dropped. ``strip=True`` strips every piece (cmseg's
    reading before it followed the official one; the checkpoints of that time use it).

    >>> tokenize("The man, on the LEFT.")
    ['the', 'man', ', ', 'on', 'the', 'left']
    >>> tokenize("The man, on the LEFT.", strip=True)
    ['the', 'man', ',', 'on', 'the', 'left']
    """
    words = [w.lower() for w in _SPLIT.split(sentence.strip()) if w.strip()]
    if strip:
        words = [w.strip() for w in words]
    if words and words[-1] == ".":
        words = words[:-1]
    return words


class Vocabulary:
    """Word <-> id, with the official specials ``<pad>``=0, ``<go>``=1, ``<eos>``=2, ``<unk>``=3.

    Args:
        words: the vocabulary words in id order, *after* the four specials (which are added
            here if ``words`` does not start with them).
        strip_tokens: how :meth:`encode` tokenises (:func:`tokenize`): False (the official
            lookup, a piece such as ``", "`` as it is, hence ``<unk>``) or True (every piece
            stripped: ris checkpoints written before cmseg followed the official lookup,
            whose ``meta.json`` has no ``extra.strip_tokens``).
    """

    def __init__(self, words: Iterable[str], *, strip_tokens: bool = False) -> None:
        self.strip_tokens = bool(strip_tokens)
        words = list(words)
        if tuple(words[: len(SPECIALS)]) != SPECIALS:
            words = list(SPECIALS) + [w for w in words if w not in SPECIALS]
        self.words: list[str] = words
        self.ids: dict[str, int] = {}
        for i, w in enumerate(words):
            self.ids.setdefault(w, i)

    def __len__(self) -> int:
        return len(self.words)

    @classmethod
    def build(
        cls, sentences: Iterable[str], *, min_count: int = 1, strip_tokens: bool = False
    ) -> Vocabulary:
        """The words of ``sentences`` seen at least ``min_count`` times, most frequent first
        (ties in first-seen order): ids do not depend on a hash seed.

        Pieces with spaces around them (``", "``) are left out: like the official vocabulary
        files, whose lines are stripped, the vocabulary holds only what the lookup can find.
        """
        counts: Counter[str] = Counter()
        for sentence in sentences:
            counts.update(w for w in tokenize(sentence, strip=strip_tokens) if w == w.strip())
        kept = [w for w, n in counts.most_common() if n >= min_count and w not in SPECIALS]
        return cls(kept, strip_tokens=strip_tokens)

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> Vocabulary:
        """One word per line, in id order (the official ``vocabulary_Gref.txt`` layout)."""
        path = Path(path)
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as err:
            reason = filesystem_reason(err) or f"cannot read the vocabulary ({err})"
            raise InputError(path, reason) from None
        words = [line.strip() for line in lines if line.strip()]
        if not words:
            raise InputError(path, "the vocabulary file is empty")
        return cls(words)

    def to_json(self) -> str:
        """The word list as JSON (stored beside a checkpoint)."""
        return json.dumps(self.words, ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str) -> Vocabulary:
        """Inverse of :meth:`to_json`."""
        words = json.loads(text)
        if not isinstance(words, list) or not all(isinstance(w, str) for w in words):
            raise ValueError("a vocabulary is a JSON list of strings")
        return cls(words)

    def encode(self, sentence: str, max_len: int = 20) -> list[int]:
        """Token ids of ``sentence``: unknown words -> ``<unk>``, the first ``max_len`` tokens
        kept (as the official code). An empty sentence gives ``[<unk>]`` so that every
        sentence has at least one word to attend to."""
        tokens = tokenize(sentence, strip=self.strip_tokens)[:max_len]
        ids = [self.ids.get(w, self.ids[UNK]) for w in tokens]
        return ids or [self.ids[UNK]]

    def batch(
        self, sentences: Sequence[str], max_len: int = 20
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(ids B x L int64, lengths B int64)``, right-padded with ``<pad>`` (0)."""
        encoded = [self.encode(s, max_len) for s in sentences]
        length = max((len(e) for e in encoded), default=1)
        ids = torch.zeros(len(encoded), length, dtype=torch.long)
        for row, e in zip(ids, encoded, strict=True):
            row[: len(e)] = torch.tensor(e)
        return ids, torch.tensor([len(e) for e in encoded], dtype=torch.long)


def load_glove(
    path: str | os.PathLike[str], vocab: Vocabulary, dim: int | None = None, *, seed: int = 0
) -> tuple[torch.Tensor, int]:
    """An embedding matrix for ``vocab`` from a GloVe text file (``word v1 ... vD`` per line).

    Words absent from the file (and the specials other than ``<pad>``) get N(0, 1/D) rows
    from a seeded generator; ``<pad>`` gets zeros.

    Args:
        path: the local ``glove.*.txt`` file (e.g. glove.840B.300d.txt).
        vocab: whose words to look up (exact, then lowercased).
        dim: the expected width; None takes the file's.

    Returns:
        ``(weights len(vocab) x D float32, number of vocabulary words found in the file)``.

    Raises:
        InputError: unreadable file, a line with the wrong number of values (its line number
            named), or no vector at all.
    """
    path = Path(path)
    wanted = {w: i for i, w in enumerate(vocab.words) if w not in SPECIALS}
    found: dict[int, list[float]] = {}
    width = dim
    try:
        with path.open(encoding="utf-8", errors="replace") as handle:
            for number, line in enumerate(handle, start=1):
                parts = line.rstrip("\n").rstrip().split(" ")
                if len(parts) < 2:
                    continue
                # Some GloVe files hold words with spaces: the vector is the last `width` fields.
                if width is None:
                    width = len(parts) - 1
                if len(parts) < width + 1:
                    raise InputError(
                        path, f"line {number}: {len(parts) - 1} values, expected {width}"
                    )
                word = " ".join(parts[: len(parts) - width])
                index = wanted.get(word, wanted.get(word.lower()))
                if index is None or (index in found and word != vocab.words[index]):
                    continue
                try:
                    found[index] = [float(v) for v in parts[len(parts) - width :]]
                except ValueError:
                    raise InputError(path, f"line {number}: a value is not a number") from None
    except OSError as err:
        reason = filesystem_reason(err) or err.strerror or err  # e.g. permission denied
        raise InputError(path, f"cannot read the GloVe file ({reason})") from None
    if width is None:
        raise InputError(path, "no word vector in the file")
    generator = torch.Generator().manual_seed(seed)
    weights = torch.randn(len(vocab), width, generator=generator) / math.sqrt(width)
    weights[vocab.ids[PAD]] = 0
    if found:
        rows = torch.tensor(list(found), dtype=torch.long)
        weights[rows] = torch.tensor(list(found.values()), dtype=torch.float32)
    return weights, len(found)


class LSTMTextEncoder(nn.Module):
    """CMPC's language encoder: word embeddings, a one-layer LSTM, L2-normalised word features.

    Padding is never fed to the LSTM (the official code skips padded steps with ``tf.cond``;
    here the batch is packed), so a sentence's features do not depend on the batch it is in.

    The LSTM computes what the official TF1 ``BasicLSTMCell(forget_bias=1.0)`` computes: TF
    adds ``forget_bias`` to the forget gate at run time, ``c' = c sigmoid(f + 1) + ...``,
    over one bias variable that starts at 0 and a Glorot-uniform kernel ``(in + H) x 4H``.
    PyTorch's LSTM has two biases and no run-time constant, so here ``bias_ih`` is that one
    bias plus ``forget_bias`` on the forget slice (starting at exactly TF's function) and
    ``bias_hh`` is held at 0, not trained (two trained copies of one bias would move their
    sum twice as fast under Adam); the kernels get TF's Glorot bound
    ``sqrt(6 / (in + H + 4H))``. The forget bias thus also trains, as TF's bias variable
    next to its constant does: the same function, the same gradients.

    Args:
        vocab: the word vocabulary (kept on the module: :meth:`extra_repr` and checkpoints).
        embed_dim: word embedding width (300 for GloVe).
        hidden: LSTM width (1000 in the paper).
        max_len: tokens kept per sentence (20 in the paper).
        embeddings: optional initial ``len(vocab) x embed_dim`` matrix (:func:`load_glove`).
        normalize: L2-normalise the word features (the official code does).
        forget_bias: the official ``BasicLSTMCell``'s (1.0): the forget gate's bias at
            initialisation.
    """

    def __init__(
        self,
        vocab: Vocabulary,
        *,
        embed_dim: int = 300,
        hidden: int = 1000,
        max_len: int = 20,
        embeddings: torch.Tensor | None = None,
        normalize: bool = True,
        forget_bias: float = 1.0,
    ) -> None:
        super().__init__()
        if max_len < 1:
            raise ConfigError(f"max_len must be >= 1, got {max_len}")
        self.vocab = vocab
        self.max_len = max_len
        self.normalize = normalize
        self.embedding = nn.Embedding(len(vocab), embed_dim, padding_idx=vocab.ids[PAD])
        if embeddings is not None:
            if tuple(embeddings.shape) != (len(vocab), embed_dim):
                raise ConfigError(
                    f"embeddings are {tuple(embeddings.shape)}, "
                    f"expected ({len(vocab)}, {embed_dim})"
                )
            with torch.no_grad():
                self.embedding.weight.copy_(embeddings)
        self.lstm = nn.LSTM(embed_dim, hidden, num_layers=1, batch_first=True)
        self.forget_bias = float(forget_bias)
        self.reset_lstm()
        self.out_channels = hidden

    def reset_lstm(self) -> None:
        """TF ``BasicLSTMCell``'s initialisation (see the class): Glorot-uniform kernels over
        ``(in + H) x 4H``, bias 0 but ``forget_bias`` on the forget gate, ``bias_hh`` 0 and
        not trained."""
        lstm, hidden = self.lstm, self.lstm.hidden_size
        bound = math.sqrt(6.0 / (lstm.input_size + hidden + 4 * hidden))
        with torch.no_grad():
            nn.init.uniform_(lstm.weight_ih_l0, -bound, bound)
            nn.init.uniform_(lstm.weight_hh_l0, -bound, bound)
            lstm.bias_ih_l0.zero_()
            lstm.bias_ih_l0[hidden : 2 * hidden] = self.forget_bias  # gates i, f, g, o
            lstm.bias_hh_l0.zero_()
        lstm.bias_hh_l0.requires_grad_(False)

    def extra_repr(self) -> str:
        return f"vocabulary={len(self.vocab)} words, max_len={self.max_len}"

    def inspect_sentence(self, sentence: str) -> SentenceTokens:
        """How :meth:`forward` reads ``sentence``: its token count against ``max_len`` and the
        words of the kept tokens that the vocabulary lacks."""
        tokens = tokenize(sentence)
        words = [w for w in tokens[: self.max_len] if _WORDLIKE.search(w)]
        unknown = tuple(w for w in words if w not in self.vocab.ids)
        return SentenceTokens(
            len(tokens), self.max_len, unknown, bool(words) and unknown == tuple(words)
        )

    def forward(self, sentences: Sequence[str]) -> TextFeatures:
        """Encode ``sentences`` (B strings; empty and non-ASCII are fine).

        Returns:
            :class:`TextFeatures` with C = ``hidden``; ``sentence`` is the LSTM's final
            hidden state at each sentence's last real word.
        """
        device = self.embedding.weight.device
        ids, lengths = self.vocab.batch(list(sentences), self.max_len)
        ids = ids.to(device)
        packed = pack_padded_sequence(
            self.embedding(ids), lengths, batch_first=True, enforce_sorted=False
        )
        out, (h_n, _) = self.lstm(packed)
        words, _ = pad_packed_sequence(out, batch_first=True, total_length=ids.shape[1])
        if self.normalize:
            words = F.normalize(words, dim=-1)
        mask = torch.arange(ids.shape[1], device=device)[None] < lengths.to(device)[:, None]
        return TextFeatures(words=words * mask[..., None], mask=mask, sentence=h_n[-1])


class HFTextEncoder(nn.Module):
    """A Hugging Face ``transformers`` text encoder loaded from a local directory.

    BERT, RoBERTa and similar load through ``AutoModel``; a full CLIP checkpoint
    (``model_type == "clip"``) loads its text tower only. The sentence feature is the pooled
    output where the model has one (BERT's ``[CLS]`` pooler, CLIP's end-of-text token), else
    the mean of the word features.

    Args:
        path: local directory with ``config.json``, the weights and the tokenizer files.
        freeze: keep the encoder's weights fixed (no gradients, eval mode kept).
        max_len: tokens per sentence including special tokens (truncated beyond).

    Raises:
        InputError: the directory is missing or does not hold a model and tokenizer.
    """

    def __init__(
        self, path: str | os.PathLike[str], *, freeze: bool = True, max_len: int = 20
    ) -> None:
        super().__init__()
        from transformers import AutoConfig, AutoModel, AutoTokenizer

        path = Path(path)
        if not path.is_dir():
            raise InputError(path, "no such folder (a local transformers model directory)")
        try:
            config = AutoConfig.from_pretrained(path, local_files_only=True)
            self.tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
            if config.model_type == "clip":
                from transformers import CLIPTextModel
                from transformers.utils import logging as hf_logging

                # The vision tower's weights are skipped on purpose: silence the table of
                # "unexpected" keys that transformers prints for them.
                verbosity = hf_logging.get_verbosity()
                hf_logging.set_verbosity_error()
                try:
                    self.model = CLIPTextModel.from_pretrained(path, local_files_only=True)
                finally:
                    hf_logging.set_verbosity(verbosity)
            else:
                self.model = AutoModel.from_pretrained(path, local_files_only=True)
        except (OSError, ValueError, KeyError) as err:
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise InputError(path, f"cannot load a transformers text model ({first})") from None
        if max_len < 2:
            raise ConfigError(f"max_len must be >= 2 (special tokens included), got {max_len}")
        self.max_len = max_len
        self.freeze = freeze
        self.out_channels = int(self.model.config.hidden_size)
        if freeze:
            self.model.requires_grad_(False)
            self.model.eval()

    def train(self, mode: bool = True) -> HFTextEncoder:
        """A frozen encoder stays in eval mode (no dropout) whatever the parent does."""
        super().train(mode)
        if self.freeze:
            self.model.eval()
        return self

    def inspect_sentence(self, sentence: str) -> SentenceTokens:
        """How :meth:`forward` reads ``sentence``: its token count (special tokens included)
        against ``max_len``, and whether every non-special token it keeps is the tokenizer's
        unknown token (WordPiece's ``[UNK]``; byte-level BPE tokenizers have none)."""
        ids = list(self.tokenizer(sentence, truncation=False)["input_ids"])
        unk = self.tokenizer.unk_token_id
        special = set(self.tokenizer.all_special_ids) - {unk}
        content = [i for i in ids[: self.max_len] if i not in special]
        unknown = tuple(
            str(self.tokenizer.unk_token) for i in content if unk is not None and i == unk
        )
        return SentenceTokens(
            len(ids), self.max_len, unknown, bool(content) and len(unknown) == len(content)
        )

    def forward(self, sentences: Sequence[str]) -> TextFeatures:
        """Encode ``sentences``; see :class:`TextFeatures` (C = the model's hidden size)."""
        device = next(self.model.parameters()).device
        # An empty sentence still has its special tokens ([CLS] [SEP], <bos> <eos>): never an
        # all-False mask row.
        tokens = self.tokenizer(
            list(sentences),
            padding=True,
            truncation=True,
            max_length=self.max_len,
            return_tensors="pt",
        ).to(device)
        context = torch.no_grad() if self.freeze else torch.enable_grad()
        with context:
            out = self.model(input_ids=tokens["input_ids"], attention_mask=tokens["attention_mask"])
        mask = tokens["attention_mask"].bool()
        words = out.last_hidden_state * mask[..., None]
        pooled = getattr(out, "pooler_output", None)
        if pooled is None:
            pooled = words.sum(1) / mask.sum(1, keepdim=True).clamp(min=1)
        return TextFeatures(words=words, mask=mask, sentence=pooled)
