"""CMPC, part 2: progressive comprehension at one visual level (see :mod:`cmseg.models.cmpc`).

Per level: the spatial coordinate map, Entity Perception (:class:`MutanFusion`, guided by the
entity/attribute sentence vector ``q``), Relation-Aware Reasoning (:class:`RelationGraph`, a
graph over the spatial positions whose edges go through the relation words) and the fusion
of both with ``q`` and the coordinates (:class:`LevelComprehension`).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from cmseg.models.cmpc.ops import l2_normalize

__all__ = [
    "spatial_coordinates",
    "sample_layer_norm",
    "MutanFusion",
    "relation_attention",
    "relation_adjacency",
    "propagate",
    "GraphConvolution",
    "RelationGraph",
    "LevelComprehension",
]

#: Channels of :func:`spatial_coordinates`.
SPATIAL_CHANNELS = 8


def spatial_coordinates(
    height: int,
    width: int,
    *,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """The 8-channel coordinate map of an ``height x width`` feature grid.

    Cell ``(h, w)`` holds ``[xmin, ymin, xmax, ymax, xctr, yctr, 1/W, 1/H]`` where the cell's
    box edges are ``xmin = 2 w / W - 1``, ``xmax = 2 (w + 1) / W - 1`` (the same for y) and
    the centre is their mean: the first six channels lie in [-1, 1].

    Returns:
        ``1 x 8 x height x width``.
    """
    xs = torch.arange(width, device=device, dtype=torch.float32)
    ys = torch.arange(height, device=device, dtype=torch.float32)
    xmin, xmax = 2 * xs / width - 1, 2 * (xs + 1) / width - 1
    ymin, ymax = 2 * ys / height - 1, 2 * (ys + 1) / height - 1
    x_maps = [v[None, :].expand(height, width) for v in (xmin, xmax, (xmin + xmax) / 2)]
    y_maps = [v[:, None].expand(height, width) for v in (ymin, ymax, (ymin + ymax) / 2)]
    maps = [m for pair in zip(x_maps, y_maps, strict=True) for m in pair]  # x, y alternating
    maps += [torch.full_like(maps[0], 1 / width), torch.full_like(maps[0], 1 / height)]
    return torch.stack(maps)[None].to(dtype)


def sample_layer_norm(channels: int) -> nn.GroupNorm:
    """Layer normalisation as the official code's ``tf.contrib.layers.layer_norm`` computes it.

    TF's default (``begin_norm_axis=1``, ``begin_params_axis=-1``) takes the mean and variance
    over *all* non-batch axes of a sample (every position and channel together) and learns
    one scale and shift per channel: that is ``GroupNorm`` with one group (here with
    PyTorch's eps, 1e-5, instead of TF's 1e-12).
    """
    return nn.GroupNorm(1, channels)


# --------------------------------------------------------------------------------------------
# Entity Perception


class MutanFusion(nn.Module):
    """Entity Perception: MUTAN-style low-rank bilinear fusion of ``[X; P]`` and ``q``.

    ``M1 = L2norm(tanh(sum_r tanh(W_r [X; P]) * tanh(U_r q)))`` over R heads. The R per-head
    1x1 convolutions (and the R linear maps of ``q``) are stored as one layer with ``R * C``
    outputs, head r in output channels ``[r C, (r + 1) C)``. Each head is initialised as the
    official per-head ``_conv`` (:meth:`reset_parameters`): Xavier-uniform with its own fan,
    bound ``sqrt(6 / (C + 8 + C))`` (0.055 at C = 1000), not the stacked layer's
    ``sqrt(6 / (C + 8 + R C))`` (0.032); zero biases.

    Args:
        channels: visual (and output) width C.
        text_channels: width of ``q``.
        heads: the rank R (5 in the paper).
    """

    def __init__(self, channels: int, text_channels: int, heads: int = 5) -> None:
        super().__init__()
        if heads < 1:
            raise ValueError(f"heads must be >= 1, got {heads}")
        self.heads = heads
        self.visual = nn.Conv2d(channels + SPATIAL_CHANNELS, heads * channels, 1)
        self.text = nn.Linear(text_channels, heads * channels)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Xavier-uniform per head (each head's ``C`` output rows with their own fan, as the
        official code creates five separate layers), zero biases."""
        for layer in (self.visual, self.text):
            for head in layer.weight.detach().chunk(self.heads, dim=0):
                nn.init.xavier_uniform_(head)
            nn.init.zeros_(layer.bias)

    def project_visual(self, x: torch.Tensor, spatial: torch.Tensor) -> torch.Tensor:
        """The image half, ``tanh(W_r [X; P])`` for every head: it does not read the sentence,
        so one image's projection serves all its sentences (cache it).

        Args:
            x: ``B x C x H x W`` visual features (L2-normalised over C).
            spatial: ``1 x 8 x H x W`` or ``B x 8 x H x W`` coordinates
                (:func:`spatial_coordinates`).

        Returns:
            ``B x (R C) x H x W`` in (-1, 1), head r in channels ``[r C, (r + 1) C)``.
        """
        spatial = spatial.expand(x.shape[0], -1, -1, -1)
        return torch.tanh(self.visual(torch.cat([x, spatial], dim=1)))

    def fuse(self, visual: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
        """The sentence half: ``M1`` from :meth:`project_visual`'s output and ``q``.

        Args:
            visual: ``B_v x (R C) x H x W`` from :meth:`project_visual`, for ``B_v`` images.
            q: ``B x C_text`` entity/attribute sentence vectors, ``k = B / B_v`` per image,
                grouped by image (sentence j reads image ``j // k``; ``B_v = 1`` shares one
                image among every sentence).

        Returns:
            ``M1``, ``B x C x H x W`` with unit L2 norm over C at every position.
        """
        images, rc, h, w = visual.shape
        batch = q.shape[0]
        if batch % images:
            raise ValueError(f"{images} images but {batch} sentences (not a multiple)")
        k, heads, c = batch // images, self.heads, rc // self.heads
        text = torch.tanh(self.text(q))
        if k == 1:  # one sentence per image (batch 1 in the paper, the predictor)
            fused = (visual * text[..., None, None]).reshape(batch, heads, c, h, w).sum(dim=1)
        else:
            # k sentences per image: sum_r visual_r * text_r for every (image, channel) is a
            # (k x R) @ (R x H W) product; one batched matmul instead of copying each image's
            # map k times (3x faster on the demo's training batches). With k = 1 the product
            # is slower than the elementwise form (1.3x on the paper's sentence half).
            visual = visual.reshape(images, heads, c, h * w).transpose(1, 2)  # B_v x C x R x HW
            text = text.reshape(images, k, heads, c).permute(0, 3, 1, 2)  # B_v x C x k x R
            fused = (text @ visual).transpose(1, 2).reshape(batch, c, h, w)
        return l2_normalize(torch.tanh(fused), dim=1)

    def forward(self, x: torch.Tensor, spatial: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
        """``M1`` for ``x`` (``B x C x H x W``), coordinates and ``q``: :meth:`fuse` of
        :meth:`project_visual`."""
        return self.fuse(self.project_visual(x, spatial), q)


# --------------------------------------------------------------------------------------------
# Relation-Aware Reasoning


def relation_attention(
    nodes: torch.Tensor, words: torch.Tensor, relation: torch.Tensor, mask: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """The two soft assignments between positions and words that define the RAR graph.

    ``Aff = nodes words^T / sqrt(C)``, multiplied by each word's relation probability before
    either softmax (so non-relation words get logits near 0, not -inf, as in the official
    code); ``A_w`` is the softmax over the (real) words, ``A_v`` the softmax over positions.

    Args:
        nodes: ``B x N x C`` projected position features (N = H W).
        words: ``B x T x C`` projected word features.
        relation: ``B x T`` relation-word probabilities.
        mask: ``B x T`` bool, True on real words; every row has at least one True.

    Returns:
        ``(A_w, A_v)``, each ``B x N x T``: rows of ``A_w`` sum to 1 over the real words,
        columns of ``A_v`` sum to 1 over positions for real words and are 0 for padded ones.
    """
    affinity = nodes @ words.transpose(1, 2) / math.sqrt(nodes.shape[-1])
    affinity = affinity * relation[:, None, :]
    a_w = affinity.masked_fill(~mask[:, None, :], float("-inf")).softmax(dim=2)
    a_v = affinity.softmax(dim=1) * mask[:, None, :].to(affinity.dtype)
    return a_w, a_v


def relation_adjacency(a_w: torch.Tensor, a_v: torch.Tensor) -> torch.Tensor:
    """The explicit ``B x N x N`` adjacency ``A_w A_v^T``; each row sums to 1.

    For inspection and tests only: the model never builds it (:func:`propagate`).
    """
    return a_w @ a_v.transpose(1, 2)


def propagate(a_w: torch.Tensor, a_v: torch.Tensor, nodes: torch.Tensor) -> torch.Tensor:
    """``(A_w A_v^T) nodes`` computed as ``A_w (A_v^T nodes)``.

    Gathering the nodes into the T word slots first costs ``O(N T C)`` time and ``O(T C)``
    memory instead of the ``O(N^2)`` adjacency (1600 x 1600 per level in the paper).

    Args:
        a_w, a_v: ``B x N x T`` from :func:`relation_attention`.
        nodes: ``B x N x C``.

    Returns:
        ``B x N x C``.
    """
    return a_w @ (a_v.transpose(1, 2) @ nodes)


class GraphConvolution(nn.Module):
    """One graph convolution over the positions of a map, as in the official ``graph_conv``.

    ``Z = ReLU(M + LN(Adj M))``, then ``ReLU(LN(conv1x1(Z)))``, where LN is
    :func:`sample_layer_norm`.

    Args:
        channels: node width C.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.message_norm = sample_layer_norm(channels)
        self.update = nn.Conv2d(channels, channels, 1)
        self.update_norm = sample_layer_norm(channels)

    def forward(self, nodes: torch.Tensor, a_w: torch.Tensor, a_v: torch.Tensor) -> torch.Tensor:
        """Args:
            nodes: ``B x C x H x W``.
            a_w, a_v: ``B x (H W) x T`` from :func:`relation_attention`.

        Returns:
            ``B x C x H x W``, non-negative.
        """
        b, c, h, w = nodes.shape
        flat = nodes.flatten(2).transpose(1, 2)  # B x N x C
        message = propagate(a_w, a_v, flat).transpose(1, 2).reshape(b, c, h, w)
        z = F.relu(nodes + self.message_norm(message))
        return F.relu(self.update_norm(self.update(z)))


class RelationGraph(nn.Module):
    """Relation-Aware Reasoning: a graph over the positions of ``M1``, edges via relation words.

    Projected positions ``M1 W_v`` and words ``L W_w`` give the affinity, the relation
    probabilities weigh it (:func:`relation_attention`), one :class:`GraphConvolution`
    propagates ``M1`` over ``Adj = A_w A_v^T`` and the result is L2-normalised: ``M2``.

    Args:
        channels: width C of ``M1`` and of the words.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.node_key = nn.Conv2d(channels, channels, 1)
        self.word_key = nn.Linear(channels, channels)
        self.gcn = GraphConvolution(channels)

    def attention(
        self, m1: torch.Tensor, words: torch.Tensor, relation: torch.Tensor, mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(A_w, A_v)``, each ``B x (H W) x T``, for ``M1`` (``B x C x H x W``)."""
        nodes = self.node_key(m1).flatten(2).transpose(1, 2)
        return relation_attention(nodes, self.word_key(words), relation, mask)

    def forward(
        self, m1: torch.Tensor, words: torch.Tensor, relation: torch.Tensor, mask: torch.Tensor
    ) -> torch.Tensor:
        """Args:
            m1: ``B x C x H x W`` from :class:`MutanFusion`.
            words: ``B x T x C`` word features, 0 on padded words.
            relation: ``B x T`` relation-word probabilities.
            mask: ``B x T`` bool, True on real words.

        Returns:
            ``M2``, ``B x C x H x W`` with unit L2 norm over C (or 0) at every position.
        """
        a_w, a_v = self.attention(m1, words, relation, mask)
        return l2_normalize(self.gcn(m1, a_w, a_v), dim=1)


# --------------------------------------------------------------------------------------------
# One level


class LevelComprehension(nn.Module):
    """Entity Perception, Relation-Aware Reasoning and their fusion at one visual level.

    ``F = ReLU(conv1x1([M1, M2, tile(q), P]))`` (the official "modified concatenation",
    ``3 C + 8 -> D``). With ``relation_reasoning=False`` the RAR module is not built and
    ``M2`` is left out of the concatenation, which becomes ``[M1, tile(q), P]`` (``2 C + 8``
    inputs): the ablation "EP only".

    Args:
        channels: width C of the visual and word features (1000 in the paper).
        out_channels: width D of the fused features (500 in the paper).
        heads: MUTAN rank R (5 in the paper).
        relation_reasoning: build and use RAR.
    """

    def __init__(
        self, channels: int, out_channels: int, heads: int = 5, *, relation_reasoning: bool = True
    ) -> None:
        super().__init__()
        self.entity = MutanFusion(channels, channels, heads)
        self.relation = RelationGraph(channels) if relation_reasoning else None
        parts = 3 if relation_reasoning else 2
        self.fuse = nn.Conv2d(parts * channels + SPATIAL_CHANNELS, out_channels, 1)

    def forward(
        self,
        x: torch.Tensor,
        spatial: torch.Tensor,
        words: torch.Tensor,
        types: torch.Tensor,
        mask: torch.Tensor,
        q: torch.Tensor,
        entity_visual: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Args:
            x: ``B_v x C x H x W`` lateral features of ``B_v`` images, L2-normalised over C;
                B (the number of sentences) is a multiple of ``B_v``, sentences grouped by
                image as in :meth:`MutanFusion.fuse`.
            spatial: ``1 x 8 x H x W`` coordinates (or the same map repeated B times).
            words: ``B x T x C`` word features, 0 on padded words.
            types: ``B x T x 4`` word-type probabilities (0 on padded words).
            mask: ``B x T`` bool, True on real words.
            q: ``B x C`` entity/attribute sentence vector.
            entity_visual: ``MutanFusion.project_visual(x, spatial)`` when already computed
                (cached with the image); computed here when None.

        Returns:
            ``B x D x H x W``, non-negative.
        """
        if entity_visual is None:
            entity_visual = self.entity.project_visual(x, spatial[: x.shape[0]])
        m1 = self.entity.fuse(entity_visual, q)
        parts = [m1]
        if self.relation is not None:
            parts.append(self.relation(m1, words, types[..., 2], mask))
        batch, size = q.shape[0], x.shape[-2:]
        parts += [q[..., None, None].expand(-1, -1, *size), spatial.expand(batch, -1, -1, -1)]
        return F.relu(self.fuse(torch.cat(parts, dim=1)))
