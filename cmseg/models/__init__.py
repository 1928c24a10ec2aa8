"""Models by name: ``MODELS`` maps a name to a builder function, :func:`build_model` calls it.

Importing this package is cheap (no torch): each builder imports its model module when it is
called. A builder takes keyword arguments only and returns an ``nn.Module`` in training mode;
unknown keyword arguments raise ``TypeError``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from cmseg.errors import ConfigError

__all__ = ["MODELS", "build_model"]


def _xmsnet_pvt_v2_b5(**kwargs: Any) -> Any:
    """XMSNet as in the paper: two PVT-v2-b5 encoders (167 M parameters)."""
    from cmseg.models.xmsnet import xmsnet_pvt_v2_b5

    return xmsnet_pvt_v2_b5(**kwargs)


def _xmsnet_tiny(**kwargs: Any) -> Any:
    """XMSNet with PVT-v2-b0 encoders and 32 channels, for CPU tests and the demo."""
    from cmseg.models.xmsnet import xmsnet_tiny

    return xmsnet_tiny(**kwargs)


def _cmpc_resnet101(**kwargs: Any) -> Any:
    """CMPC as in the paper: ResNet-101 at stride 8, LSTM text encoder (107 M + text)."""
    from cmseg.models.cmpc import cmpc_resnet101

    return cmpc_resnet101(**kwargs)


def _cmpc_tiny(**kwargs: Any) -> Any:
    """CMPC with a ResNet-18 and 64/32 channels, for CPU tests and the demo."""
    from cmseg.models.cmpc import cmpc_tiny

    return cmpc_tiny(**kwargs)


def _early_fusion_tiny(**kwargs: Any) -> Any:
    """Naive early-fusion baseline (RGB + aux as 4 input channels of one encoder), demo size."""
    from cmseg.models.xmsnet.baselines import early_fusion_tiny

    return early_fusion_tiny(**kwargs)


def _early_fusion_c2f_tiny(**kwargs: Any) -> Any:
    """Early fusion (one 4-channel encoder) with XMSNet's decoder and outputs, demo size."""
    from cmseg.models.xmsnet.baselines import early_fusion_c2f_tiny

    return early_fusion_c2f_tiny(**kwargs)


def _ssnm_vgg16(**kwargs: Any) -> Any:
    """SSNM as in the paper: VGG16-BN, 512-wide head, 78 co-categories (40.8 M parameters)."""
    from cmseg.models.ssnm import ssnm_vgg16

    return ssnm_vgg16(**kwargs)


def _ssnm_tiny(**kwargs: Any) -> Any:
    """SSNM with a VGG16-BN 1/8 as wide and a 64-wide head, for CPU tests and the demo."""
    from cmseg.models.ssnm import ssnm_tiny

    return ssnm_tiny(**kwargs)


MODELS: dict[str, Callable[..., Any]] = {
    "xmsnet_pvt_v2_b5": _xmsnet_pvt_v2_b5,
    "xmsnet_tiny": _xmsnet_tiny,
    "cmpc_resnet101": _cmpc_resnet101,
    "cmpc_tiny": _cmpc_tiny,
    "early_fusion_tiny": _early_fusion_tiny,
    "early_fusion_c2f_tiny": _early_fusion_c2f_tiny,
    "ssnm_vgg16": _ssnm_vgg16,
    "ssnm_tiny": _ssnm_tiny,
}


def build_model(name: str, **kwargs: Any) -> Any:
    """Build model ``name`` (a key of :data:`MODELS`) with keyword arguments ``kwargs``.

    Raises:
        ConfigError: ``name`` is not a known model; the message lists the known ones.
    """
    try:
        builder = MODELS[name]
    except KeyError:
        known = ", ".join(sorted(MODELS))
        raise ConfigError(f"unknown model {name!r}; known models: {known}") from None
    return builder(**kwargs)
