"""XMSNet: "Object Segmentation by Mining Cross-Modal Semantics" (Wu et al., ACM MM 2023).

An RGB image and a depth or thermal map in, the salient (or camouflaged) object out. The
package reads in the paper's order, one file per component: ``fusion.py`` (2), ``decoder.py``
(3), ``model.py`` (1, 4, 5), ``loss.py`` (6), ``convert.py`` (7); all of it is re-exported
here. ``baselines.py`` holds XMSNet's ablations (early fusion: RGB and aux into one encoder),
imported from there (``MODELS["early_fusion_tiny"]``, ``MODELS["early_fusion_c2f_tiny"]``).

1. **Encoders.** Two separate (non-shared) feature pyramids, any timm ``features_only``
   backbone with levels at strides 4, 8, 16, 32 (PVT-v2-b5 in the paper). The one-channel
   aux map goes through a learnable 1x1 conv to three channels first.
2. **All-round Attentive Fusion** (:class:`AllRoundFusion`), one per stage: each modality's
   features split into a shared (global mean) and a specific (residual) part; *proportion*
   weighs the modalities per sample from the similarity of their shared embeddings, *region*
   gives a spatial gate and *pattern* a channel gate from the specific parts; a per-pixel
   linear layer fuses the gated features, and stages 2-4 add the max-pooled fused map of the
   stage above (top-down link).
3. **Coarse-to-Fine Decoder** (:class:`CoarseToFineDecoder`): a shared coarse decoder over the
   fused maps (multi-scale pooling blocks, a mask per stage), then *specificity-aware
   querying*: each modality's own features query the mask-weighted decoded features through
   transposed (channel) attention; a fine path merges the results top-down.
4. :class:`XMSNet` assembles them: ``forward(rgb, aux)`` returns seven logit maps at the input
   resolution, coarse strides 32, 16, 8, 4 then fine strides 16, 8, 4; the last is the
   prediction.
5. Builders: :func:`build_xmsnet`, :func:`xmsnet_pvt_v2_b5` (the paper) and
   :func:`xmsnet_tiny` (PVT-v2-b0, 32 channels: CPU tests and the demo).
6. **Loss** (:func:`xmsnet_loss`): deep supervision of the seven outputs with the structure
   loss (:func:`structure_loss`) plus a cross-layer KL term between adjacent fine outputs
   (:func:`bernoulli_kl`); the model returns logits, the training wrapper adds the loss.
7. **Official checkpoints** (:func:`convert_official_xmsnet`): a pure rename map from the
   official state dict onto these modules, with shape checks; load the result with
   :func:`cmseg.models.weights.load_strict`.

Where the official code (Zongwei97/XMSNet, ``Code/lib/model_pvt.py``) departs from what it
evidently means, cmseg builds the working version by default and keeps a flag that restores
the official behaviour (``official=True`` sets all of them):

* **Region attention input.** The official 6-map input of the spatial gate is
  ``[A_rgb, A_aux, max_c x_rgb, max_c x_aux, mean_c x_rgb, mean_c x_rgb]``: the RGB channel
  mean twice, the aux channel mean never. cmseg uses ``mean_c x_aux`` in the last slot;
  ``duplicate_rgb_mean=True`` restores the official input. The conv shapes are the same.
* **ReLU before sigmoid.** The official spatial gate is ``sigmoid(ReLU(BN(conv(.))))``, so it
  lies in [0.5, 1) and can never suppress a region by more than half. cmseg drops that last
  ReLU (gate in (0, 1)); ``relu_before_gate=True`` restores it. No parameter is involved.
* **Proportion.** Officially ``a = alpha / (alpha + beta)`` with cosine similarities alpha
  and beta in [-1, 1]: infinite when ``alpha + beta`` is near 0, and a negative weight with
  the other above 1 when the signs differ. cmseg uses
  ``a = (alpha+ + eps) / (alpha+ + beta+ + 2 eps)`` with ``x+ = max(x, 0)``: the same value
  when both similarities are positive (up to eps), weights in [0, 1] summing to 1, an even
  split when neither modality agrees with the mix. ``proportion="official"`` keeps the
  official ratio, only holding ``|alpha + beta|`` at eps or more (sign kept).
* **Unused modules** are not built: ``AF.linear`` (every fusion block), ``AF0.layer_ful2``
  (stage 1 has no top-down input), ``XMSNet.conv1_1`` and ``XMSNet.conv_128`` (about 0.12 M
  parameters that never receive a gradient). The converter drops their keys.
* **The aux input** (read by the sod task, not by this package). The official loader feeds
  ``value / 255`` of the 8-bit map at train and test time (``Image.convert('L')``, so colour
  thermal maps become ITU-R 601 luma, then ``ToTensor``); cmseg's default, ``minmax``, stretches
  each map over its own range (colour maps: the channel mean), which makes a map's absolute
  level meaningless and a noisy near-constant map full-range. ``data.options.aux_normalisation:
  div255`` restores the official input (the paper configs and the official-checkpoint
  predictor use it; :func:`cmseg.io.normalise_aux` has the rules for 16-bit and float maps).

Kept as in the official code, on purpose:

* Every "BasicConv2d" is conv + BN without ReLU (the official forward skips its ReLU); that
  is the network that was trained, and the next layer is linear in several places.
* The channel gates of *pattern* are ``ReLU(BN(conv))``: non-negative, unbounded, no sigmoid.
  One GCT module is shared by both modalities.
* The official backbones are built with ``drop_path_rate=0.3``, which the repo's PVT
  constructor ignores, so the effective rate is 0; it is 0 here too (a builder argument).

Training needs a batch of 2 or more: the *pattern* branch applies BatchNorm to ``1 x 1``
channel descriptors (as in the official code).
"""

from cmseg.models.xmsnet.convert import OFFICIAL_XMSNET_UNUSED, convert_official_xmsnet
from cmseg.models.xmsnet.decoder import (
    CoarseDecoder,
    CoarseToFineDecoder,
    FineDecoder,
    MaskHead,
    MultiScalePooling,
    QueryAttention,
    SpecificityQuery,
)
from cmseg.models.xmsnet.fusion import (
    AllRoundFusion,
    ModalityProportion,
    PatternAttention,
    ProportionMode,
    RegionAttention,
    proportion_weights,
)
from cmseg.models.xmsnet.loss import (
    XMSNET_SIDE_WEIGHTS,
    bernoulli_kl,
    boundary_weight,
    deep_supervision_loss,
    structure_loss,
    xmsnet_loss,
)
from cmseg.models.xmsnet.model import XMSNet, build_xmsnet, xmsnet_pvt_v2_b5, xmsnet_tiny

__all__ = [
    # 2. All-round Attentive Fusion (fusion.py)
    "ProportionMode",
    "proportion_weights",
    "ModalityProportion",
    "RegionAttention",
    "PatternAttention",
    "AllRoundFusion",
    # 3. Coarse-to-Fine Decoder (decoder.py)
    "MultiScalePooling",
    "MaskHead",
    "CoarseDecoder",
    "QueryAttention",
    "SpecificityQuery",
    "FineDecoder",
    "CoarseToFineDecoder",
    # 4-5. The model and its builders (model.py)
    "XMSNet",
    "build_xmsnet",
    "xmsnet_pvt_v2_b5",
    "xmsnet_tiny",
    # 6. The loss (loss.py)
    "XMSNET_SIDE_WEIGHTS",
    "structure_loss",
    "boundary_weight",
    "bernoulli_kl",
    "xmsnet_loss",
    "deep_supervision_loss",
    # 7. Official checkpoints (convert.py)
    "convert_official_xmsnet",
    "OFFICIAL_XMSNET_UNUSED",
]
