"""Referring image segmentation: one image, many sentences, on cached visual features.

Usage::

    predictor = RISPredictor.from_checkpoint("runs/ris/best")    # device="auto"
    predictor.set_image(image)                 # uint8 (H, W, 3): runs the visual backbone once
    mask = predictor.predict("the red circle left of the star")  # bool (H, W)
    masks = predictor.predict_sentences(["the big square", "the small one"])  # one pass
    prob = predictor.predict_probability("the big square")       # float32 (H, W) in [0, 1]

The model must split into ``encode_image(images) -> visual`` (everything that does not read
the sentence: the backbone, the lateral projections, the image half of the multimodal fusion)
and ``segment(visual, sentences) -> output`` (a batch of one image shared by all the
sentences); :meth:`set_image` runs the first part once and every sentence runs only the second. Pre- and postprocessing are the training validation's
(:func:`cmseg.tasks.ris.process.preprocess` / :func:`~cmseg.tasks.ris.process.postprocess`).

Sentences are checked by :func:`cmseg.data.sentences.check_sentence` before any work: an
empty, blank or punctuation-only sentence is a ``ValueError``, a non-``str`` a ``TypeError``
(``predict(["a", "b"])`` and ``predict_sentences("the cup")``, which would otherwise read
the string character by character, included). A sentence longer than the text encoder reads
(CMPC's LSTM: 20 tokens; a Hugging Face encoder: its ``max_len``) or without a single word
the vocabulary knows is still predicted, with a warning that says so (the first
:data:`SHOWN_NOTES` of each kind; :attr:`RISPredictor.sentence_notes` counts them all).

Inside: eval mode, ``torch.inference_mode()``, ``channels_last`` images, and on CUDA bfloat16
autocast (``amp="auto"``; ``amp="off"`` keeps float32 everywhere).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from cmseg.data.sentences import check_sentence, check_sentences
from cmseg.engine import inference
from cmseg.engine.inference import AmpMode, DeviceLike, PathLike
from cmseg.errors import InputError
from cmseg.tasks.ris.process import check_image_size, postprocess, preprocess, restore_logits

__all__ = ["RISPredictor"]

log = logging.getLogger(__name__)

#: Warnings of each kind (a sentence cut, a sentence without a known word) shown per predictor;
#: later ones go to the debug log and are only counted in ``sentence_notes``.
SHOWN_NOTES = 5


class RISPredictor:
    """Masks of the objects that sentences refer to, in one image.

    Args:
        model: a ris network with ``encode_image`` and ``segment`` (module docstring).
        image_size: the square input side the model was trained at.
        device: ``auto``, ``cpu``, ``cuda``, ``cuda:N`` or a ``torch.device``.
        amp: ``auto`` (bfloat16 on CUDA when supported, float32 on CPU), ``off``, ``bf16`` or
            ``fp16`` (CUDA only; ignored on CPU).
        max_sentences: sentences per forward pass in :meth:`predict_sentences`.

    Attributes:
        sentence_notes: how many sentences were predicted with a warning, by kind: ``cut``
            (longer than the text encoder reads) and ``unknown`` (no word in its vocabulary).
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        image_size: int = 320,
        device: DeviceLike = "auto",
        amp: AmpMode = "auto",
        max_sentences: int = 16,
    ) -> None:
        for method in ("encode_image", "segment"):
            if not callable(getattr(model, method, None)):
                raise TypeError(f"{type(model).__name__} has no {method}(); see RISPredictor")
        self.runtime = inference.InferenceRuntime(model, device, amp)
        self.device, self.model = self.runtime.device, self.runtime.model
        self.amp_dtype = self.runtime.amp_dtype
        self.image_size = check_image_size(image_size)
        self.max_sentences = max(1, int(max_sentences))
        self.sentence_notes: Counter[str] = Counter()
        self._visual: Any = None
        self._hw: tuple[int, int] | None = None

    @classmethod
    def from_checkpoint(
        cls, path: PathLike, device: DeviceLike = "auto", *, amp: AmpMode = "auto"
    ) -> RISPredictor:
        """Build the model that ``path`` was trained as (vocabulary included) and load its
        weights.

        Args:
            path: see :func:`cmseg.engine.inference.load_task_checkpoint`.
            device, amp: see the class.

        Raises:
            InputError: no checkpoint there, a checkpoint of another task, metadata without
                the model or its vocabulary, or weights that do not fit the model.
        """
        from cmseg.config import ModelConfig
        from cmseg.models.text import Vocabulary
        from cmseg.tasks.ris.model import build_ris_model, uses_vocabulary

        checkpoint = inference.load_task_checkpoint(path, "ris")
        meta, model_cfg = checkpoint.meta, checkpoint.model_section
        # The checkpoint holds every weight: neither the backbone file nor GloVe is read.
        model_cfg["backbone_weights"] = None
        fields = set(ModelConfig.__dataclass_fields__)
        mcfg = ModelConfig(**{k: v for k, v in model_cfg.items() if k in fields})
        vocabulary = None
        if uses_vocabulary(mcfg):
            extra = meta.get("extra") or {}
            words = extra.get("vocabulary")
            if not isinstance(words, list) or not words:
                raise InputError(path, "meta.json holds no word vocabulary (extra.vocabulary)")
            # Checkpoints written before extra.strip_tokens existed tokenised stripped.
            vocabulary = Vocabulary(words, strip_tokens=bool(extra.get("strip_tokens", True)))
        model = build_ris_model(mcfg, vocabulary)
        inference.load_model_weights(model, checkpoint.state_dict, path)
        return cls(model, image_size=int(mcfg.image_size), device=device, amp=amp)

    # ----------------------------------------------------------------------------------------
    # Two phases

    def set_image(self, image: np.ndarray) -> None:
        """Encode ``image`` (``uint8 (H, W, 3)``; grey is repeated) and keep its features for
        every following :meth:`predict`.

        Raises:
            ValueError: not an image array.
        """
        x = self.runtime.to_device(preprocess(image, self.image_size)[None])
        with torch.inference_mode(), self.runtime.autocast():
            self._visual = self.model.encode_image(x)
        self._hw = (int(np.shape(image)[0]), int(np.shape(image)[1]))

    def reset_image(self) -> None:
        """Forget the image given to :meth:`set_image` (and free its features)."""
        self._visual = self._hw = None

    def predict(self, sentence: str) -> np.ndarray:
        """``bool (H, W)`` mask of the object ``sentence`` refers to, at the image's size.

        Raises:
            TypeError: ``sentence`` is not a ``str`` (several go to :meth:`predict_sentences`).
            ValueError: ``sentence`` is empty, blank or only punctuation.
            RuntimeError: :meth:`set_image` was not called first.
        """
        return self.predict_sentences([_one_sentence(sentence)])[0]

    def predict_sentences(self, sentences: Sequence[str]) -> list[np.ndarray]:
        """One ``bool (H, W)`` mask per sentence, in chunks of ``max_sentences`` per pass.

        Raises:
            TypeError: ``sentences`` is a bare ``str`` or holds a non-``str``.
            ValueError: one of them is empty, blank or only punctuation (its position named).
            RuntimeError: :meth:`set_image` was not called first.
        """
        sentences = check_sentences(sentences)
        hw = self._image_hw()
        return [postprocess(one, hw, self.image_size) for one in self._logits(sentences)]

    def predict_probability(self, sentence: str) -> np.ndarray:
        """``float32 (H, W)`` foreground probability in [0, 1] at the image's size (the mask
        of :meth:`predict` is this map >= 0.5). Raises as :meth:`predict`."""
        logits = self._logits([_one_sentence(sentence)])[0]
        restored = restore_logits(logits, self._image_hw(), self.image_size)
        return restored.sigmoid().cpu().numpy().astype(np.float32)

    # ----------------------------------------------------------------------------------------
    # Internals

    def _image_hw(self) -> tuple[int, int]:
        if self._visual is None or self._hw is None:
            raise RuntimeError("RISPredictor.predict() called before set_image(image)")
        return self._hw

    def _note(self, sentence: str) -> None:
        """Warn when the text encoder reads less of ``sentence`` than it says (module doc)."""
        inspect = getattr(getattr(self.model, "text_encoder", None), "inspect_sentence", None)
        if inspect is None:
            return  # a network without cmseg's text encoders: nothing to say
        seen = inspect(sentence)
        notes = []
        if seen.cut:
            notes.append(
                ("cut", f"{seen.tokens} tokens, cut to the model's limit of {seen.limit}: "
                 "the rest is not read")
            )  # fmt: skip
        if seen.unknown_only:
            notes.append(
                ("unknown", "none of its words is in the model's vocabulary "
                 f"({', '.join(dict.fromkeys(seen.unknown))}): it reads only unknown words")
            )  # fmt: skip
        for kind, text in notes:
            self.sentence_notes[kind] += 1
            count = self.sentence_notes[kind]
            level = logging.WARNING if count <= SHOWN_NOTES else logging.DEBUG
            more = " (further warnings of this kind are logged at debug level)"
            shown = sentence if len(sentence) <= 60 else sentence[:57] + "..."
            log.log(level, "sentence %r: %s%s", shown, text, more if count == SHOWN_NOTES else "")

    def _logits(self, sentences: Sequence[str]) -> list[torch.Tensor]:
        """Final logits ``1 x h x w`` (on the padded square) per sentence (already checked)."""
        self._image_hw()
        for sentence in sentences:
            self._note(sentence)
        out: list[torch.Tensor] = []
        with torch.inference_mode(), self.runtime.autocast():
            for start in range(0, len(sentences), self.max_sentences):
                chunk = sentences[start : start + self.max_sentences]
                output = self.model.segment(self._visual, chunk)  # shares the image
                final = output.final if hasattr(output, "final") else output
                out.extend(final.float())
        return out


def _one_sentence(sentence: Any) -> str:
    """``sentence`` when it is one sentence; a list gets a pointer to ``predict_sentences``."""
    if isinstance(sentence, (list, tuple)):
        raise TypeError(
            f"predict() takes one sentence (a str), got a {type(sentence).__name__} of "
            f"{len(sentence)}: use predict_sentences() for several"
        )
    return check_sentence(sentence)
