"""CMPC, part 3: Text-Guided Feature Exchange and the ConvLSTM fusion (:mod:`cmseg.models.cmpc`).

Each level's fused features receive gated messages from every other level; the gates come
from a text-guided global vector of the receiving level (:class:`ExchangeRound`). Rounds run
in parallel (every level reads the previous round's outputs) with their own weights. A
convolutional LSTM (:class:`ConvLSTMCell`) then reads the levels finest first and its last
hidden state is the final feature map.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from cmseg.models.cmpc.comprehension import sample_layer_norm
from cmseg.models.cmpc.ops import l2_normalize

__all__ = ["GlobalVector", "GatedMessage", "ExchangeRound", "ConvLSTMCell", "ConvLSTMFusion"]


class GlobalVector(nn.Module):
    """A text-guided global vector of a feature map (the official ``global_vec``).

    ``alpha = softmax_HW(conv1x1(F) . W_q s / sqrt(D))`` pools the map, ``g = alpha^T F``, and
    ``gv = L2norm(W_g [g; s])``.

    Departure: ``gv`` is L2-normalised per sample. The official ``tf.nn.l2_normalize`` has no
    axis argument and so divides by the norm over the whole batch; the official code only
    runs with batch 1, where the two agree. With a batch, the official form would make each
    sample's output depend on the others.

    Args:
        channels: width D of the feature map and of ``gv``.
        text_channels: width of the sentence vector ``s``.
    """

    def __init__(self, channels: int, text_channels: int) -> None:
        super().__init__()
        self.key = nn.Conv2d(channels, channels, 1)
        self.query = nn.Linear(text_channels, channels)
        self.out = nn.Linear(channels + text_channels, channels)

    def forward(self, feat: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        """Args:
            feat: ``B x D x H x W``.
            s: ``B x C_text`` sentence vector.

        Returns:
            ``B x D`` with unit L2 norm per sample.
        """
        key = self.key(feat).flatten(2)  # B x D x N
        logits = torch.einsum("bdn,bd->bn", key, self.query(s)) / math.sqrt(key.shape[1])
        pooled = torch.einsum("bn,bdn->bd", logits.softmax(dim=1), feat.flatten(2))
        return l2_normalize(self.out(torch.cat([pooled, s], dim=1)), dim=1)


class GatedMessage(nn.Module):
    """A message from one level to another: ``ReLU(conv1x1(F_j)) * sigmoid(W gv_i)``.

    The official ``lang_se``: each (receiver, sender) pair has its own gate and transform.

    Args:
        channels: width D.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.gate = nn.Linear(channels, channels)
        self.transform = nn.Conv2d(channels, channels, 1)

    def forward(self, sender: torch.Tensor, global_vector: torch.Tensor) -> torch.Tensor:
        """``sender`` ``B x D x H x W``, ``global_vector`` ``B x D`` -> ``B x D x H x W``."""
        gate = torch.sigmoid(self.gate(global_vector))[..., None, None]
        return F.relu(self.transform(sender)) * gate


class ExchangeRound(nn.Module):
    """One round of Text-Guided Feature Exchange over L levels, all updated in parallel.

    ``F_i' = L2norm(F_i + sum_{j != i} GatedMessage_ij(F_j, gv_i))`` with
    ``gv_i = GlobalVector_i(F_i, s)``.

    Args:
        channels: width D of every level.
        text_channels: width of ``s``.
        levels: number of levels L (3 in the paper).
    """

    def __init__(self, channels: int, text_channels: int, levels: int = 3) -> None:
        super().__init__()
        if levels < 2:
            raise ValueError(f"feature exchange needs at least 2 levels, got {levels}")
        self.levels = levels
        self.global_vectors = nn.ModuleList(
            GlobalVector(channels, text_channels) for _ in range(levels)
        )
        # messages[i][k]: to level i from the k-th other level (in level order).
        self.messages = nn.ModuleList(
            nn.ModuleList(GatedMessage(channels) for _ in range(levels - 1)) for _ in range(levels)
        )

    def forward(self, feats: Sequence[torch.Tensor], s: torch.Tensor) -> list[torch.Tensor]:
        """Args:
            feats: L maps ``B x D x H x W``, same size.
            s: ``B x C_text`` sentence vector.

        Returns:
            L maps ``B x D x H x W``, unit L2 norm over D at every position.
        """
        if len(feats) != self.levels:
            raise ValueError(f"expected {self.levels} levels, got {len(feats)}")
        out = []
        for i, (global_vector, messages) in enumerate(
            zip(self.global_vectors, self.messages, strict=True)
        ):
            gv = global_vector(feats[i], s)
            senders = [f for j, f in enumerate(feats) if j != i]
            total = feats[i]
            for message, sender in zip(messages, senders, strict=True):
                total = total + message(sender, gv)
            out.append(l2_normalize(total, dim=1))
        return out


class ConvLSTMCell(nn.Module):
    """The official ConvLSTM cell: layer-normalised gates, peepholes, no bias, forget bias 1.

    ``[j, i, f, o] = conv([x; h])``; ``i += w_ci c``, ``f += w_cf c``; ``j, i, f`` are
    layer-normalised; ``c' = c sigmoid(f + 1) + sigmoid(i) tanh(j)``; ``o += w_co c'``; ``o``
    and ``c'`` are layer-normalised; ``h' = sigmoid(o) tanh(c')``. The layer norm is
    :func:`~cmseg.models.cmpc.comprehension.sample_layer_norm` (one per gate and one for the
    cell, as TF creates them); the normalised cell is the state carried on.

    Departure: the peephole weights are one per channel (``D``). The official ones have the
    map's full shape (``40 x 40 x 500``: a weight per position), which fixes the input size
    at 320 x 320; per-channel peepholes work at any size.

    Args:
        in_channels: width of the input x.
        hidden: width D of h and c.
        kernel_size: odd convolution size (1 in the paper).
        forget_bias: added to the forget gate before the sigmoid (1.0).
    """

    def __init__(
        self, in_channels: int, hidden: int, kernel_size: int = 1, *, forget_bias: float = 1.0
    ) -> None:
        super().__init__()
        if kernel_size % 2 != 1:
            raise ValueError(f"kernel_size must be odd, got {kernel_size}")
        self.hidden = hidden
        self.forget_bias = forget_bias
        self.conv = nn.Conv2d(
            in_channels + hidden, 4 * hidden, kernel_size, padding=kernel_size // 2, bias=False
        )
        self.peephole = nn.Parameter(torch.zeros(3, hidden))  # w_ci, w_cf, w_co
        self.norms = nn.ModuleList(sample_layer_norm(hidden) for _ in range(5))  # j i f o c

    def forward(
        self, x: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor] | None = None
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """One step.

        Args:
            x: ``B x C_in x H x W``.
            state: ``(c, h)``, each ``B x D x H x W``; zeros when None.

        Returns:
            ``(h', (c', h'))``.
        """
        if state is None:
            zeros = x.new_zeros(x.shape[0], self.hidden, *x.shape[-2:])
            state = (zeros, zeros)
        c, h = state
        w_ci, w_cf, w_co = (w[None, :, None, None] for w in self.peephole)
        norm_j, norm_i, norm_f, norm_o, norm_c = self.norms
        j, i, f, o = self.conv(torch.cat([x, h], dim=1)).chunk(4, dim=1)
        i = norm_i(i + w_ci * c)
        f = norm_f(f + w_cf * c)
        c = c * torch.sigmoid(f + self.forget_bias) + torch.sigmoid(i) * torch.tanh(norm_j(j))
        o = norm_o(o + w_co * c)
        c = norm_c(c)
        h = torch.sigmoid(o) * torch.tanh(c)
        return h, (c, h)


class ConvLSTMFusion(nn.Module):
    """Run a :class:`ConvLSTMCell` over the levels (finest first); return the last ``h``.

    Args:
        channels: width D of the levels and of the hidden state.
        kernel_size: the cell's convolution size (1 in the paper).
    """

    def __init__(self, channels: int, kernel_size: int = 1) -> None:
        super().__init__()
        self.cell = ConvLSTMCell(channels, channels, kernel_size)

    def forward(self, feats: Sequence[torch.Tensor]) -> torch.Tensor:
        """L maps ``B x D x H x W`` -> ``B x D x H x W``."""
        if not feats:
            raise ValueError("no levels to fuse")
        state = None
        for feat in feats:
            _, state = self.cell(feat, state)
        return state[1]
