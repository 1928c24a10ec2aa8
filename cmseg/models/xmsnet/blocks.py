"""The small blocks of XMSNet's fusion and decoder: the convolution unit, per-pixel linear and
layer-norm layers, gated channel transformation (GCT), channel shuffle and transposed
(channel) attention.

Everything here works on ``B x C x H x W`` tensors in either memory format (contiguous or
``torch.channels_last``); nothing calls ``.view`` on a permuted tensor.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "BasicConv2d",
    "PixelLinear",
    "PixelLayerNorm",
    "GCT",
    "channel_shuffle",
    "transposed_attention",
]


class BasicConv2d(nn.Sequential):
    """Convolution without bias, then BatchNorm, then (optionally) ReLU.

    The name comes from the RGB-D SOD code family (BBSNet, SPNet, XMSNet). In the official
    XMSNet code the class builds a ReLU but its ``forward`` never applies it, so every
    "BasicConv2d" there is conv + BN only; ``act=False`` (the default) reproduces that and is
    what XMSNet uses. The state-dict keys are ``conv.weight`` and ``bn.*`` as in those codes.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        *,
        stride: int = 1,
        padding: int | None = None,
        dilation: int = 1,
        act: bool = False,
    ) -> None:
        if padding is None:
            padding = dilation * (kernel_size // 2)
        super().__init__()
        self.conv = nn.Conv2d(
            in_channels, out_channels, kernel_size, stride, padding, dilation, bias=False
        )
        self.bn = nn.BatchNorm2d(out_channels)
        if act:
            self.act = nn.ReLU(inplace=True)


class PixelLinear(nn.Linear):
    """A ``Linear`` over the channels at every pixel: ``B x C_in x H x W -> B x C_out x H x W``.

    Mathematically a 1x1 convolution, but the weight keeps ``nn.Linear``'s ``(C_out, C_in)``
    layout, which is how token-MLP code (and its checkpoints) stores it. On a
    ``channels_last`` input the permutes are free and the output is ``channels_last`` again.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class PixelLayerNorm(nn.LayerNorm):
    """LayerNorm over the channels at every pixel of a ``B x C x H x W`` map."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class GCT(nn.Module):
    """Gated Channel Transformation (Yang et al., CVPR 2020), L2 mode, returning the gate only.

    ``embedding = alpha * sqrt(sum_hw x^2 + eps)``; the embedding is divided by its RMS over
    channels, scaled by ``gamma``, shifted by ``beta`` and squashed with tanh. With the
    published initialisation (``alpha = 1``, ``gamma = beta = 0``) the gate starts at 0.

    Args:
        channels: number of channels C.
        eps: the smoothing term inside both square roots.
    """

    def __init__(self, channels: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.alpha = nn.Parameter(torch.ones(1, channels, 1, 1))
        self.gamma = nn.Parameter(torch.zeros(1, channels, 1, 1))
        self.beta = nn.Parameter(torch.zeros(1, channels, 1, 1))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``B x C x H x W -> B x C x 1 x 1`` gate in (-1, 1)."""
        embedding = (x.pow(2).sum(dim=(2, 3), keepdim=True) + self.eps).sqrt() * self.alpha
        scale = self.gamma / (embedding.pow(2).mean(dim=1, keepdim=True) + self.eps).sqrt()
        return torch.tanh(embedding * scale + self.beta)


def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    """ShuffleNet's channel shuffle: channel ``g * k + j`` moves to ``j * groups + g``.

    Args:
        x: ``B x C x H x W`` with C divisible by ``groups``.
        groups: the number of groups.
    """
    b, c, h, w = x.shape
    return x.reshape(b, groups, c // groups, h, w).transpose(1, 2).reshape(b, c, h, w)


def transposed_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, heads: int, temperature: torch.Tensor
) -> torch.Tensor:
    """Attention across channels instead of pixels (Restormer's "transposed" attention).

    Per head, queries and keys are L2-normalised along the pixels, the ``c x c`` affinity
    (``c = C / heads``) is scaled by a learnable per-head temperature and soft-maxed, and it
    mixes the value channels. The cost is linear in the number of pixels.

    Args:
        q, k, v: ``B x C x H x W`` each.
        heads: number of heads; C must be divisible by it.
        temperature: ``heads x 1 x 1`` learnable scale.

    Returns:
        ``B x C x H x W``.
    """
    b, c, h, w = v.shape
    q, k, v = (t.reshape(b, heads, c // heads, h * w) for t in (q, k, v))
    attn = F.normalize(q, dim=-1) @ F.normalize(k, dim=-1).transpose(-2, -1)
    attn = (attn * temperature).softmax(dim=-1)
    return (attn @ v).reshape(b, c, h, w)
