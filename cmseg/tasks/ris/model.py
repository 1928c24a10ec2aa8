"""How the ``ris`` task builds its network: the word vocabulary (stored in every checkpoint's
``meta.json`` as ``extra.vocabulary``, so that a checkpoint is all the predictor needs), the
model from the ``model`` section, its optimizer groups and the cache of a frozen backbone.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from torch import nn

from cmseg.engine.model_building import build_from_section
from cmseg.errors import ConfigError
from cmseg.tasks.ris.options import RISOptions

if TYPE_CHECKING:
    from cmseg.config import ModelConfig
    from cmseg.models.text import Vocabulary

__all__ = [
    "build_vocabulary",
    "uses_vocabulary",
    "build_ris_model",
    "attach_feature_cache",
    "parameter_groups",
]


def build_vocabulary(sentences: Sequence[str], opts: RISOptions) -> Vocabulary:
    """The word vocabulary: ``opts.vocabulary`` when it names a file, else built from
    ``sentences`` (the training sentences) keeping words seen ``min_word_count`` times."""
    from cmseg.models.text import Vocabulary

    if opts.vocabulary:
        return Vocabulary.from_file(opts.vocabulary)
    return Vocabulary.build(sentences, min_count=int(opts.min_word_count))


def uses_vocabulary(model_cfg: ModelConfig) -> bool:
    """Whether the model reads words through cmseg's own vocabulary (the LSTM encoder) rather
    than a Hugging Face tokenizer (``model.options.text_encoder`` names a local folder)."""
    return str((model_cfg.options or {}).get("text_encoder", "lstm")) == "lstm"


def build_ris_model(
    model_cfg: ModelConfig, vocabulary: Vocabulary | None, *, glove: str = ""
) -> nn.Module:
    """Build a ris network from a ``model`` section.

    Args:
        model_cfg: name, backbone, backbone_weights and options (keyword arguments of the
            builder, e.g. ``text_encoder``, ``lateral_channels``).
        vocabulary: the word vocabulary of the LSTM text encoder (None with a Hugging Face
            text encoder).
        glove: optional GloVe text file for the word embeddings.

    Raises:
        ConfigError: unknown model name, or an option the builder does not take.
    """
    extra: dict[str, Any] = {}
    if vocabulary is not None:
        extra["vocabulary"] = vocabulary
    if glove:
        extra["glove"] = glove
    return build_from_section(
        model_cfg, options_hint="task options such as flip go under data.options", **extra
    )


def attach_feature_cache(model: nn.Module, gib: float) -> None:
    """Give ``model`` (a CMPC) a :class:`~cmseg.models.feature_cache.FeatureCache` of its
    frozen backbone, or raise :class:`ConfigError` when the model cannot use one."""
    from cmseg.models.feature_cache import FeatureCache

    if not hasattr(model, "backbone_cache"):
        raise ConfigError(
            f"data.options.cache_backbone_features: {type(model).__name__} has no backbone cache"
        )
    if not getattr(model, "freeze_backbone_bn", False):
        raise ConfigError(
            "data.options.cache_backbone_features needs model.options.freeze_backbone_bn: true "
            "(batch norms in training mode make an image's features depend on its batch)"
        )
    model.backbone_cache = FeatureCache(max_bytes=int(gib * 2**30))


def parameter_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Optimizer groups: weight decay on exactly the official set.

    For CMPC that is :meth:`~cmseg.models.cmpc.CMPC.weight_decay_names`, the ``DW`` kernels
    of the official ``_conv`` layers: every convolution and linear weight of the head but the
    ConvLSTM's kernel and peepholes; biases, norm scales, the word embeddings, the LSTM and
    the backbone are not decayed. A model without that method gets the same rule by shape
    (the head's tensors of 2 or more dimensions). Frozen parameters are left out.
    """
    names_of = getattr(model, "weight_decay_names", None)
    decayed = set(names_of()) if callable(names_of) else None
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        if decayed is not None:
            chosen = name in decayed
        else:
            chosen = not name.startswith(("backbone.", "text_encoder.")) and param.ndim >= 2
        (decay if chosen else no_decay).append(param)
    groups = [{"params": decay, "weight_decay": float(weight_decay)}]
    if no_decay:
        groups.append({"params": no_decay, "weight_decay": 0.0})
    return groups
