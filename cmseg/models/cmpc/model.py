"""CMPC, part 4: the model assembled from built parts, and its builders.

See :mod:`cmseg.models.cmpc` for the pipeline and the departures from the official code.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from cmseg.errors import ConfigError
from cmseg.models.backbones import create_feature_pyramid
from cmseg.models.cmpc.comprehension import LevelComprehension, MutanFusion, spatial_coordinates
from cmseg.models.cmpc.exchange import ConvLSTMCell, ConvLSTMFusion, ExchangeRound
from cmseg.models.cmpc.language import WordTypeClassifier, sentence_vectors
from cmseg.models.cmpc.ops import l2_normalize
from cmseg.models.feature_cache import FeatureCache
from cmseg.models.text import (
    HFTextEncoder,
    LSTMTextEncoder,
    TextFeatures,
    Vocabulary,
    load_glove,
)

__all__ = [
    "CMPCOutput",
    "VisualLevel",
    "CMPC",
    "build_text_encoder",
    "cmpc_backbone",
    "build_cmpc",
    "cmpc_resnet101",
    "cmpc_tiny",
]


class VisualLevel(NamedTuple):
    """One level of :meth:`CMPC.encode_image`: everything at that level that does not read
    the sentence.

    Attributes:
        lateral: ``B x C x h x w`` lateral features, unit L2 norm over C.
        entity: ``B x (R C) x h x w`` the image half of Entity Perception
            (:meth:`~cmseg.models.cmpc.MutanFusion.project_visual`).
    """

    lateral: torch.Tensor
    entity: torch.Tensor


@dataclass
class CMPCOutput:
    """What :meth:`CMPC.forward` returns; all maps at the feature resolution (stride 8).

    Attributes:
        final: ``B x 1 x h x w`` logits of the prediction (sigmoid for probabilities;
            resize bilinearly to the input size, as :func:`cmseg.models.cmpc.cmpc_loss` does).
        levels: one ``B x 1 x h x w`` auxiliary logit map per visual level, finest first
            (c3, c4, c5), from the level features before the exchange.
        word_types: ``B x T x 4`` soft word types (entity, attribute, relation, unnecessary),
            0 on padded words.
    """

    final: torch.Tensor
    levels: tuple[torch.Tensor, ...]
    word_types: torch.Tensor


class CMPC(nn.Module):
    """Cross-Modal Progressive Comprehension for referring image segmentation.

    Args:
        backbone: visual feature pyramid whose levels all have one size (ResNet stages 3-5 at
            output stride 8 in the paper), e.g. from
            :func:`~cmseg.models.backbones.create_feature_pyramid`; its widths are read from
            ``backbone.feature_info.channels()`` unless ``backbone_channels`` is given.
        text_encoder: a module mapping a list of sentences to
            :class:`~cmseg.models.text.TextFeatures` (:class:`~cmseg.models.text.LSTMTextEncoder`
            in the paper), with an ``out_channels`` attribute unless ``text_channels`` is given.
        width: width C of the lateral and word features (1000 in the paper).
        fused_width: width D of the per-level fused features (500 in the paper).
        heads: MUTAN rank R of Entity Perception (5 in the paper).
        relation_reasoning: build Relation-Aware Reasoning; False is the "no RAR" ablation
            (``M2`` leaves the per-level concatenation, see
            :class:`~cmseg.models.cmpc.LevelComprehension`).
        exchange_rounds: rounds of Text-Guided Feature Exchange (2 in the official code; 0
            feeds the level features to the ConvLSTM directly).
        freeze_backbone_bn: keep the backbone's batch norms in inference mode with fixed
            scale and shift (the paper's DeepLab ResNet is built with ``is_training=False``
            and its ``bn*`` variables are never trained), whatever ``train()`` is called with.
        backbone_channels: the backbone's level widths, finest first.
        text_channels: the text encoder's word width. When it differs from ``width`` a linear
            projection is added (not in the paper, where both are 1000).
    """

    def __init__(
        self,
        backbone: nn.Module,
        text_encoder: nn.Module,
        *,
        width: int = 1000,
        fused_width: int = 500,
        heads: int = 5,
        relation_reasoning: bool = True,
        exchange_rounds: int = 2,
        freeze_backbone_bn: bool = False,
        backbone_channels: Sequence[int] | None = None,
        text_channels: int | None = None,
    ) -> None:
        super().__init__()
        if exchange_rounds < 0:
            raise ConfigError(f"exchange_rounds must be >= 0, got {exchange_rounds}")
        if backbone_channels is None:
            backbone_channels = list(backbone.feature_info.channels())
        if text_channels is None:
            text_channels = int(text_encoder.out_channels)
        self.backbone = backbone
        self.text_encoder = text_encoder
        self.freeze_backbone_bn = freeze_backbone_bn
        self.relation_reasoning = relation_reasoning
        self.exchange_rounds = exchange_rounds
        #: Set to a :class:`~cmseg.models.feature_cache.FeatureCache` to remember the frozen
        #: backbone's features of every image (training with ``freeze_backbone``); not saved.
        self.backbone_cache: FeatureCache | None = None
        levels = len(backbone_channels)

        # Head: everything below is initialised as the official `_conv` (Xavier, zero bias).
        self.laterals = nn.ModuleList(nn.Conv2d(c, width, 1) for c in backbone_channels)
        self.word_proj = (
            nn.Identity() if text_channels == width else nn.Linear(text_channels, width)
        )
        self.word_classifier = WordTypeClassifier(width)
        self.levels = nn.ModuleList(
            LevelComprehension(width, fused_width, heads, relation_reasoning=relation_reasoning)
            for _ in range(levels)
        )
        self.level_scores = nn.ModuleList(
            nn.Conv2d(fused_width, 1, 3, padding=1) for _ in range(levels)
        )
        self.exchange = nn.ModuleList(
            ExchangeRound(fused_width, width, levels) for _ in range(exchange_rounds)
        )
        self.fusion = ConvLSTMFusion(fused_width)
        self.score = nn.Conv2d(fused_width, 1, 3, padding=1)
        # MUTAN's stacked heads are initialised head by head (MutanFusion.reset_parameters).
        mutan = {id(m) for f in self.modules() if isinstance(f, MutanFusion) for m in f.children()}
        for name, module in self.named_modules():
            if name.startswith(("backbone", "text_encoder")):
                continue
            if isinstance(module, MutanFusion):
                module.reset_parameters()
            elif isinstance(module, nn.Conv2d | nn.Linear) and id(module) not in mutan:
                nn.init.xavier_uniform_(module.weight)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)

        if freeze_backbone_bn:
            for module in self.backbone.modules():
                if isinstance(module, _BatchNorm):
                    module.requires_grad_(False)
        self.train()

    def train(self, mode: bool = True) -> CMPC:
        """Set the training mode; frozen backbone batch norms stay in inference mode."""
        super().train(mode)
        if self.freeze_backbone_bn:
            for module in self.backbone.modules():
                if isinstance(module, _BatchNorm):
                    module.eval()
        return self

    def weight_decay_names(self) -> list[str]:
        """The parameters the official L2 term covers (``reg_var_list``: the ``DW`` kernel of
        every layer built by the official ``_conv``): the weight of every convolution and
        linear layer of the head, i.e. the laterals, the word classifier, Entity Perception,
        the relation graph, the level fusions and scores, the exchange rounds and the final
        score (and ``word_proj`` when there is one).

        Not decayed, as officially: the ConvLSTM's kernel and peepholes (TF's ``kernel`` and
        ``W_ci/W_cf/W_co``, no ``DW`` in their names), biases, layer norms, the text encoder
        (GloVe embeddings and LSTM) and the backbone. (The official ``-conv5`` switch, which
        trains res3-5, would also decay their ``weights``; cmseg never decays the backbone.)
        """
        skipped = {id(p) for p in self.backbone.parameters()}
        skipped |= {id(p) for p in self.text_encoder.parameters()}
        for cell in self.modules():
            if isinstance(cell, ConvLSTMCell):
                skipped |= {id(p) for p in cell.parameters()}
        return [
            f"{name}.weight"
            for name, module in self.named_modules()
            if isinstance(module, nn.Conv2d | nn.Linear) and id(module.weight) not in skipped
        ]

    # ----------------------------------------------------------------------------------------

    def encode_image(self, images: torch.Tensor) -> list[VisualLevel]:
        """Everything that does not read the sentence: backbone, laterals, L2 norm, and the
        image half of Entity Perception (the largest sentence-free part of the head).

        Cache the result to segment one image for many sentences (:meth:`segment` shares a
        batch of one image among all its sentences).

        Args:
            images: ``B x 3 x H x W`` float images, normalised as the backbone expects.

        Returns:
            One :class:`VisualLevel` per level, finest first.
        """
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"images must be B x 3 x H x W, got {tuple(images.shape)}")
        if self.backbone_cache is not None:
            maps = self.backbone_cache(self.backbone, images)
        else:
            maps = self.backbone(images)
        laterals = [l2_normalize(lat(x), dim=1) for lat, x in zip(self.laterals, maps, strict=True)]
        spatial = spatial_coordinates(
            *laterals[0].shape[-2:], device=laterals[0].device, dtype=laterals[0].dtype
        )
        return [
            VisualLevel(x, level.entity.project_visual(x, spatial))
            for level, x in zip(self.levels, laterals, strict=True)
        ]

    def encode_text(self, sentences: Sequence[str]) -> TextFeatures:
        """The text encoder's output for ``sentences`` (B strings)."""
        if isinstance(sentences, str):
            raise TypeError("pass a list of sentences, not one string")
        return self.text_encoder(sentences)

    def segment(
        self, visual: Sequence[VisualLevel], text: Sequence[str] | TextFeatures
    ) -> CMPCOutput:
        """Segment from cached image features: :meth:`encode_text` (unless ``text`` is
        already :class:`~cmseg.models.text.TextFeatures`), then :meth:`decode`."""
        if not isinstance(text, TextFeatures):
            text = self.encode_text(text)
        return self.decode(visual, text)

    def decode(self, visual: Sequence[VisualLevel], text: TextFeatures) -> CMPCOutput:
        """Everything that reads the sentence.

        Args:
            visual: the levels from :meth:`encode_image`, all with batch ``B_v``: B (one
                image per sentence), 1 (one image shared by the B sentences) or B / k (k
                sentences per image, grouped by image: sentence j reads image j // k).
            text: B sentences' features; every row of ``text.mask`` has a True. Padded words
                may hold any value: they are masked out of every sum.

        Returns:
            :class:`CMPCOutput`.
        """
        mask = text.mask.to(torch.bool)
        batch = mask.shape[0]
        levels = [VisualLevel(*level) for level in visual]
        if len(levels) != len(self.levels):
            raise ValueError(f"expected {len(self.levels)} visual levels, got {len(levels)}")
        size = levels[0].lateral.shape[-2:]
        if any(v.lateral.shape[-2:] != size for v in levels):
            shapes = [tuple(v.lateral.shape[-2:]) for v in levels]
            raise ValueError(f"levels differ in size: {shapes}")
        images = levels[0].lateral.shape[0]
        if batch % images:
            raise ValueError(f"{images} images but {batch} sentences (not a multiple)")
        # No per-sentence copy of the image levels: each level reads them through
        # MutanFusion.fuse's grouping of sentences by image.
        words = self.word_proj(text.words.to(levels[0].lateral.dtype))
        words = l2_normalize(words, dim=-1) * mask[..., None].to(words.dtype)
        types = self.word_classifier(words, mask)
        q, s = sentence_vectors(words, types)
        spatial = spatial_coordinates(*size, device=words.device, dtype=words.dtype)

        fused = [
            level(v.lateral, spatial, words, types, mask, q, entity_visual=v.entity)
            for level, v in zip(self.levels, levels, strict=True)
        ]
        level_logits = tuple(head(f) for head, f in zip(self.level_scores, fused, strict=True))
        for exchange in self.exchange:
            fused = exchange(fused, s)
        final = self.score(self.fusion(fused))
        return CMPCOutput(final=final, levels=level_logits, word_types=types)

    def forward(self, images: torch.Tensor, text: Sequence[str] | TextFeatures) -> CMPCOutput:
        """Segment the object each sentence refers to.

        Args:
            images: ``B x 3 x H x W`` float images, normalised as the backbone expects
                (ImageNet mean and std for timm weights); any size (the maps are
                ``ceil(H / 8) x ceil(W / 8)`` with the paper's backbone).
            text: B sentences (``str``), or their precomputed
                :class:`~cmseg.models.text.TextFeatures`; or k B sentences, k per image
                grouped by image (the backbone then runs once per image, not per sentence).

        Returns:
            :class:`CMPCOutput` with logits at the feature resolution.
        """
        return self.segment(self.encode_image(images), text)


# --------------------------------------------------------------------------------------------
# Builders


def _vocabulary(vocabulary: Vocabulary | str | os.PathLike[str] | None) -> Vocabulary:
    if vocabulary is None:
        return Vocabulary([])
    if isinstance(vocabulary, Vocabulary):
        return vocabulary
    return Vocabulary.from_file(vocabulary)


def build_text_encoder(
    text_encoder: nn.Module | str | os.PathLike[str] | None = None,
    *,
    vocabulary: Vocabulary | str | os.PathLike[str] | None = None,
    width: int = 1000,
    embed_dim: int = 300,
    glove: str | os.PathLike[str] | None = None,
    max_len: int = 20,
) -> nn.Module:
    """CMPC's text encoder: a module as given, a local Hugging Face folder, or the LSTM.

    Args:
        text_encoder: a ready module (returned as is); ``None`` or ``"lstm"`` for the
            built-in :class:`~cmseg.models.text.LSTMTextEncoder` (``width`` wide); any other
            string or path is a local ``transformers`` folder
            (:class:`~cmseg.models.text.HFTextEncoder`, frozen).
        vocabulary: the LSTM's words: a :class:`~cmseg.models.text.Vocabulary` or a
            word-per-line file. None gives the four special tokens only (every word is
            ``<unk>``): for shape tests.
        width: the LSTM's width (C).
        embed_dim: the LSTM's word embedding width (300 for GloVe).
        glove: a local GloVe text file that initialises the embeddings
            (:func:`~cmseg.models.text.load_glove`; its width must be ``embed_dim``).
        max_len: tokens kept per sentence (20).
    """
    if isinstance(text_encoder, nn.Module):
        return text_encoder
    if text_encoder is not None and str(text_encoder) != "lstm":
        return HFTextEncoder(text_encoder, max_len=max_len)
    vocab = _vocabulary(vocabulary)
    embeddings = None
    if glove:
        embeddings, _ = load_glove(glove, vocab, embed_dim)
    return LSTMTextEncoder(
        vocab, embed_dim=embed_dim, hidden=width, max_len=max_len, embeddings=embeddings
    )


def cmpc_backbone(name: str, weights: str | os.PathLike[str] | None = None) -> nn.Module:
    """CMPC's visual pyramid: timm CNN ``name``'s stages 3-5, all at output stride 8 (dilated).

    Args:
        name: a timm CNN with five feature stages (reductions 2, 4, 8, 16, 32) that accepts
            ``output_stride=8`` (ResNets, RegNets, ...).
        weights: local file with its weights in timm's layout. Never downloaded.
    """
    return create_feature_pyramid(
        name, strides=(8, 8, 8), weights=weights, output_stride=8, out_indices=(2, 3, 4)
    )


def build_cmpc(
    backbone: str = "resnet101",
    *,
    vocabulary: Vocabulary | str | os.PathLike[str] | None = None,
    text_encoder: nn.Module | str | os.PathLike[str] | None = None,
    embed_dim: int = 300,
    glove: str | os.PathLike[str] | None = None,
    max_len: int = 20,
    width: int = 1000,
    fused_width: int = 500,
    heads: int = 5,
    relation_reasoning: bool = True,
    exchange_rounds: int = 2,
    freeze_backbone_bn: bool = True,
    backbone_weights: str | os.PathLike[str] | None = None,
) -> CMPC:
    """Build CMPC around a timm CNN at output stride 8.

    Args:
        backbone: timm name of a CNN with five feature stages (reductions 2, 4, 8, 16, 32)
            that accepts ``output_stride=8`` (ResNets, RegNets, ...). Stages 3-5 are tapped
            (ResNet-101: 512, 1024, 2048 channels, all at stride 8 through dilation).
        vocabulary, text_encoder, embed_dim, glove, max_len: the text encoder, see
            :func:`build_text_encoder` (the LSTM is ``width`` wide).
        width, fused_width, heads, relation_reasoning, exchange_rounds, freeze_backbone_bn:
            see :class:`CMPC`.
        backbone_weights: local file with the backbone's weights in timm's layout (e.g. an
            ImageNet ``resnet101`` checkpoint). Never downloaded.
    """
    pyramid = cmpc_backbone(backbone, backbone_weights)
    text = build_text_encoder(
        text_encoder,
        vocabulary=vocabulary,
        width=width,
        embed_dim=embed_dim,
        glove=glove,
        max_len=max_len,
    )
    return CMPC(
        pyramid,
        text,
        width=width,
        fused_width=fused_width,
        heads=heads,
        relation_reasoning=relation_reasoning,
        exchange_rounds=exchange_rounds,
        freeze_backbone_bn=freeze_backbone_bn,
    )


def cmpc_resnet101(*, backbone: str | None = None, **kwargs: Any) -> CMPC:
    """The paper's configuration: ResNet-101 at stride 8, C = 1000, D = 500, R = 5, frozen BN.

    107.3 M parameters without the text encoder (42.5 M backbone + 64.8 M head); the LSTM
    encoder adds 5.2 M plus ``300 x len(vocab)`` embeddings (3.6 M for RefCOCO's 12,112
    words).
    """
    defaults = {"width": 1000, "fused_width": 500, "heads": 5, "freeze_backbone_bn": True}
    return build_cmpc(backbone or "resnet101", **{**defaults, **kwargs})


def cmpc_tiny(*, backbone: str | None = None, **kwargs: Any) -> CMPC:
    """A small configuration for CPU tests and the demo (128 px inputs -> 16 x 16 maps).

    ResNet-18 at stride 8, C = 64, D = 32, R = 5, 32-wide word embeddings, trainable BN.
    """
    defaults = {
        "width": 64,
        "fused_width": 32,
        "heads": 5,
        "embed_dim": 32,
        "freeze_backbone_bn": False,
    }
    return build_cmpc(backbone or "resnet18", **{**defaults, **kwargs})
