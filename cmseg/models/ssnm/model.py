"""The SSNM network and its builders (reference ssnm_coseg.md §2).

:class:`SSNM` takes a batch of image groups ``(B, N, 3, H, W)``: any group size ``N``, any
``H`` and ``W`` that are multiples of 32 (the official code hard-codes ``N = 5`` and 224 px,
i.e. a 7 x 7 top map and 245 descriptors per group). Pipeline, in the paper's order:

1. encoder levels after pool2..pool5 (:mod:`.backbone`), each lifted to ``W`` channels
   (:class:`~.decoder.ChannelLifting`); with ``fuse_levels`` the lifted levels are fused into
   the coarsest (:class:`~.backbone.LevelFusion`, the HRNet figure), else the coarsest lifted
   level is the modulators' input, as in the released VGG16 code;
2. the **spatial modulator** (:func:`~.spatial.spatial_mask`): a parameter-free mask per
   group, the top eigenvector of the group's descriptor similarities, no gradient;
3. the **semantic modulator** (:class:`~.semantic.SemanticModulator`): gamma and the
   co-category logits;
4. **shift-and-scale** at every level: ``y_k = lifted_k * gamma + up(s)`` (the same gamma
   and the same mask, bilinearly resized, at all four levels);
5. the top-down decoder and the two-way softmax head (:mod:`.decoder`).

Ablations: ``spatial_modulator=False`` drops the shift (``y = lifted * gamma``),
``semantic_modulator=False`` drops the scale and the classifier (``y = lifted + up(s)``; the
output's ``cls`` is None and the loss has no classification term).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from cmseg.models.ssnm.backbone import LevelFusion, VGGPyramid, build_pyramid, pyramid_channels
from cmseg.models.ssnm.decoder import ChannelLifting, MaskHead, TopDownDecoder
from cmseg.models.ssnm.semantic import HSP_LAYOUTS, SemanticModulator
from cmseg.models.ssnm.spatial import SPATIAL_SOLVERS, spatial_mask

__all__ = ["SSNM", "SSNMOutput", "build_ssnm", "ssnm_vgg16", "ssnm_tiny", "official_init"]


@dataclass
class SSNMOutput:
    """What :class:`SSNM` returns for ``B`` groups of ``N`` images of ``H x W``.

    Attributes:
        mask: ``(B, N, H, W)`` foreground probability in [0, 1] (softmax channel 0).
        logits: ``(B, N, 2, H, W)`` the head's scores before the softmax.
        cls: ``(B, K)`` co-category probabilities (sigmoid), None without the semantic
            modulator.
        cls_logits: ``(B, K)`` or None.
        spatial: ``(B, N, h, w)`` the spatial mask at the top level (detached; zeros without
            the spatial modulator).
    """

    mask: torch.Tensor
    logits: torch.Tensor
    cls: torch.Tensor | None
    cls_logits: torch.Tensor | None
    spatial: torch.Tensor


def official_init(module: nn.Module) -> None:
    """The official initialisation: Xavier-uniform on every ``Conv2d`` weight, batch norms
    at weight 1 / bias 0; transposed convs, linears and conv biases keep PyTorch's."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.xavier_uniform_(m.weight)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


class SSNM(nn.Module):
    """Spatial-Semantic Network Modulation for object co-segmentation (module docstring).

    Args:
        backbone: a pyramid from :func:`~.backbone.build_pyramid` (4 levels, strides 4..32).
        num_classes: K, co-categories of the classifier (78 on COCO).
        width: W, the lifted width (512 in the paper).
        hsp_channels: ``(c1, c2)`` of the second-order pooling (64, 32).
        hsp_layout: ``images`` (the paper) or ``official`` (see :mod:`.semantic`).
        hsp_mean: Gram matrices as means, not sums (not official; see :mod:`.semantic`).
        spatial_solver: ``eigen`` (closed form) or ``adam`` (the official 200 Adam steps).
        spatial_modulator, semantic_modulator: False drops that modulator (ablations).
        fuse_levels: fuse all levels into the coarsest before the modulators (HRNet figure).
        shared_decoder: one stage for decoder levels 4, 3, 2 (official); False: separate.
    """

    def __init__(
        self,
        backbone: nn.Module,
        *,
        num_classes: int = 78,
        width: int = 512,
        hsp_channels: Sequence[int] = (64, 32),
        hsp_layout: str = "images",
        hsp_mean: bool = False,
        spatial_solver: str = "eigen",
        spatial_modulator: bool = True,
        semantic_modulator: bool = True,
        fuse_levels: bool = False,
        shared_decoder: bool = True,
    ) -> None:
        super().__init__()
        if spatial_solver not in SPATIAL_SOLVERS:
            raise ValueError(
                f"spatial_solver must be one of {', '.join(SPATIAL_SOLVERS)}, "
                f"got {spatial_solver!r}"
            )
        if hsp_layout not in HSP_LAYOUTS:
            raise ValueError(f"hsp_layout must be one of {', '.join(HSP_LAYOUTS)}")
        if int(num_classes) < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        self.backbone = backbone
        self.lifting = nn.ModuleList(ChannelLifting(c, width) for c in pyramid_channels(backbone))
        self.fusion = LevelFusion(width) if fuse_levels else None
        self.semantic = (
            SemanticModulator(
                width,
                int(num_classes),
                tuple(hsp_channels),
                hsp_layout,
                hsp_mean,  # type: ignore[arg-type]
            )
            if semantic_modulator
            else None
        )
        self.decoder = TopDownDecoder(width, shared=shared_decoder)
        self.head = MaskHead(width)
        self.spatial_solver = spatial_solver
        self.use_spatial = bool(spatial_modulator)
        self.num_classes = int(num_classes)

    def forward(self, images: torch.Tensor) -> SSNMOutput:
        """``images``: float ``(B, N, 3, H, W)``, ImageNet-normalised (see the class doc)."""
        if images.ndim != 5 or images.shape[2] != 3:
            raise ValueError(f"SSNM takes (B, N, 3, H, W) image groups, got {tuple(images.shape)}")
        b, n, _, h, w = images.shape
        if h % 32 or w % 32:
            raise ValueError(f"SSNM needs H and W that are multiples of 32, got {h} x {w}")
        levels = self.backbone(images.flatten(0, 1))
        lifted = [lift(x) for lift, x in zip(self.lifting, levels, strict=True)]
        top = self.fusion(lifted) if self.fusion is not None else lifted[-1]
        top = top.unflatten(0, (b, n))
        if self.use_spatial:
            spatial = spatial_mask(top, solver=self.spatial_solver).to(top.dtype)
        else:
            spatial = top.new_zeros((b, n) + top.shape[-2:])
        gamma = cls_logits = None
        if self.semantic is not None:
            gamma, cls_logits = self.semantic(top)
        modulated = [self._modulate(x, gamma, spatial) for x in lifted]
        logits = self.head(self.decoder(modulated))
        return SSNMOutput(
            mask=torch.softmax(logits, dim=1)[:, 0].unflatten(0, (b, n)),
            logits=logits.unflatten(0, (b, n)),
            cls=torch.sigmoid(cls_logits) if cls_logits is not None else None,
            cls_logits=cls_logits,
            spatial=spatial,
        )

    def _modulate(
        self, x: torch.Tensor, gamma: torch.Tensor | None, spatial: torch.Tensor
    ) -> torch.Tensor:
        """``x * gamma + up(s)`` on one level ``(B N, W, h, w)``."""
        b, n = spatial.shape[:2]
        if gamma is not None:
            x = x * gamma.repeat_interleave(n, dim=0)[:, :, None, None]
        if self.use_spatial:
            shift = F.interpolate(
                spatial.flatten(0, 1)[:, None], size=x.shape[-2:], mode="bilinear"
            )
            x = x + shift  # broadcast over the channels
        return x


def build_ssnm(
    *,
    num_classes: int = 78,
    backbone: str = "vgg16_bn",
    backbone_weights: str | os.PathLike[str] | None = None,
    backbone_width_divisor: int = 1,
    width: int = 512,
    hsp_channels: Sequence[int] = (64, 32),
    **options: Any,
) -> SSNM:
    """An :class:`SSNM` with the official initialisation, then the backbone weights.

    Args:
        backbone: ``vgg16_bn`` or a timm ``features_only`` name (e.g. ``hrnet_w18``).
        backbone_weights: local file (torchvision VGG16-BN layout, or timm's).
        backbone_width_divisor: ``vgg16_bn`` only: 1 the paper's, 8 the tiny model's.
        **options: the remaining :class:`SSNM` arguments (``spatial_solver``, ``hsp_layout``,
            ``spatial_modulator``, ``semantic_modulator``, ``fuse_levels``, ``shared_decoder``).
    """
    pyramid = build_pyramid(backbone, width_divisor=backbone_width_divisor)
    model = SSNM(
        pyramid, num_classes=num_classes, width=width, hsp_channels=hsp_channels, **options
    )
    # Official: Xavier over the whole net, then the VGG weights over the backbone. A timm
    # backbone keeps its own initialisation.
    official_init(model if isinstance(pyramid, VGGPyramid) else _head_only(model))
    if backbone_weights is not None:
        from cmseg.models.backbones import load_backbone_weights, read_state_dict
        from cmseg.models.ssnm.backbone import load_vgg_weights

        state = read_state_dict(backbone_weights)
        if isinstance(pyramid, VGGPyramid):
            load_vgg_weights(pyramid, state, source=str(backbone_weights))
        else:
            load_backbone_weights(pyramid, state, backbone, source=str(backbone_weights))
    return model


def _head_only(model: SSNM) -> nn.Module:
    return nn.ModuleList(m for name, m in model.named_children() if name != "backbone")


def ssnm_vgg16(**options: Any) -> SSNM:
    """SSNM as in the paper: VGG16-BN, width 512, HSP 64/32, 78 classes (40.8 M parameters)."""
    return build_ssnm(**options)


def ssnm_tiny(**options: Any) -> SSNM:
    """SSNM at CPU size: the VGG16-BN layout 1/8 as wide, width 64, HSP 16/8 (about 0.5 M
    parameters), for the tests and ``cmseg demo coseg``."""
    defaults: dict[str, Any] = {"backbone_width_divisor": 8, "width": 64, "hsp_channels": (16, 8)}
    if options.get("backbone", "vgg16_bn") != "vgg16_bn":
        defaults.pop("backbone_width_divisor")
    return build_ssnm(**{**defaults, **options})
