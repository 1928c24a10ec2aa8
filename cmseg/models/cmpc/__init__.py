"""CMPC: "Referring Image Segmentation via Cross-Modal Progressive Comprehension" (Huang et al.,
CVPR 2020), the official code's "Ours-Updated" variant.

An image and a referring sentence in, the mask of the object the sentence names out. The
package reads in the pipeline's order, one file per part: ``language.py`` (3),
``comprehension.py`` (2, 4-6), ``exchange.py`` (7-8), ``model.py`` (1, 9 and the builders),
``loss.py`` (the objective); everything is re-exported here. C is the lateral/word width
(1000 in the paper), D the fused width (500), R the MUTAN rank (5); maps are ``B x C x h x w``
at output stride 8 (40 x 40 for the paper's 320 x 320).

1. **Backbone and laterals.** ResNet-101 stages 3-5 (c3 512, c4 1024, c5 2048 channels), all
   at stride 8 (res4 dilated by 2, res5 by 4); each level goes through a 1x1 conv to C and is
   L2-normalised over channels.
2. **Coordinates.** An 8-channel map ``[xmin, ymin, xmax, ymax, xctr, yctr, 1/w, 1/h]`` per
   cell (:func:`spatial_coordinates`).
3. **Words.** The text encoder (:class:`~cmseg.models.text.LSTMTextEncoder`: GloVe + LSTM,
   L2-normalised word features) gives ``B x T x C`` words and a mask; a soft classifier gives
   each word's probabilities of being an entity, attribute, relation or unnecessary word
   (:class:`WordTypeClassifier`, no supervision), and two sentence vectors follow
   (:func:`sentence_vectors`): ``q`` from entity + attribute words, ``s`` from all but the
   unnecessary ones. Padded words are masked out of every sum.
4. **Entity Perception** per level (separate weights): MUTAN low-rank bilinear fusion of
   ``[X; P]`` with ``q``, ``M1`` (:class:`MutanFusion`).
5. **Relation-Aware Reasoning** per level: a graph over the h w positions of ``M1``; the
   affinity of positions and words, scaled by ``1/sqrt(C)`` and weighted by each word's
   relation probability, gives ``A_w`` (softmax over words) and ``A_v`` (softmax over
   positions); the adjacency ``A_w A_v^T`` (rows sum to 1) is never materialised
   (:func:`propagate`); one graph convolution with layer norm gives ``M2``
   (:class:`RelationGraph`).
6. **Per-level output** ``F_l = ReLU(conv1x1([M1, M2, tile(q), P]))`` (3C + 8 -> D), and an
   auxiliary 3x3 score head per level (:class:`LevelComprehension`).
7. **Text-Guided Feature Exchange**, 2 rounds, parallel update, own weights per round: each
   level gets gated messages from the others, gates from a global vector pooled from the
   level under the guidance of ``s`` (:class:`ExchangeRound`).
8. **Fusion.** A ConvLSTM (1x1 kernel, layer-normalised gates, peepholes, no bias, forget bias
   1) reads c3, c4, c5; a 3x3 conv scores its last hidden state (:class:`ConvLSTMFusion`).
9. :class:`CMPC` returns :class:`CMPCOutput` (final and per-level logits at stride 8, word
   types); the loss is :func:`cmpc_loss` (``loss.py``: 0.7 final + 0.1 per level, BCE on
   logits resized to the mask). ``forward(images, sentences)`` is
   ``segment(encode_image(images), sentences)``: the image half (backbone, laterals) can be
   cached and shared by many sentences.

Departures from the official code (TF1, batch size 1), each documented where it lives:

* The TGFE global vector is L2-normalised per sample; the official normalisation has no axis
  and divides by the norm over the whole batch, the same thing only at batch 1
  (:class:`GlobalVector`).
* ConvLSTM peepholes are per channel instead of per position and channel (the official
  ``40 x 40 x 500`` weights fix the input at 320 x 320) and start at 0 (:class:`ConvLSTMCell`).
* Padding: the official code slices the left-padded words away (batch 1 only); here padded
  words are masked (-inf before the word softmax, 0 weight in every sum), so a sentence's
  output does not depend on the batch it is in.
* When the text encoder's width differs from C (e.g. a 768-wide BERT) a linear projection
  maps the words to C; word features are L2-normalised in the head (a no-op for the LSTM
  encoder, which already normalises them).
* Resizing uses PyTorch's bilinear ``align_corners=False`` (half-pixel centres); TF1's
  ``resize_bilinear`` maps corners asymmetrically.
* The backbone is timm's ResNet-101 (stride on the 3x3 conv, ImageNet weights) instead of
  DeepLab-v2's Caffe ResNet-101 (stride on the 1x1 conv, COCO-pretrained weights).
* Every weight of the model is trainable (batch norm aside). The official README trains
  without ``-conv5``, which leaves the whole ResNet fixed; freezing the backbone is the
  training loop's choice here (``model.backbone.requires_grad_(False)``). A trained backbone
  is never weight-decayed (the official ``-conv5`` would decay res3-5's kernels too).

Kept as in the official code: layer norms normalise over all positions and channels of a
sample with a per-channel scale and shift (TF's ``layer_norm`` default,
:func:`sample_layer_norm`); each TGFE message has its own gate (the official ``lang_se``
builds one gate per (receiver, sender) pair); the ConvLSTM layer-normalises the cell state it
carries as well as the four gates, and adds its forget bias 1 after the gate's layer norm;
Xavier-uniform initialisation with zero biases in the head, MUTAN's five stacked heads each
with its own fan as the official five layers (:meth:`MutanFusion.reset_parameters`: bound
0.055 at C = 1000, not the stacked layer's 0.032); the language LSTM is TF's
``BasicLSTMCell`` with ``forget_bias=1.0`` (the same function and initialisation, see
:class:`~cmseg.models.text.LSTMTextEncoder`); words are looked up as the official tokeniser
leaves them, so punctuation next to a space reads as ``<unk>``
(:func:`~cmseg.models.text.tokenize`); the L2 term covers the official set, the head's
``DW`` kernels without the ConvLSTM's kernel and peepholes (:meth:`CMPC.weight_decay_names`);
frozen backbone batch norm in the paper configuration.
"""

from cmseg.models.cmpc.comprehension import (
    GraphConvolution,
    LevelComprehension,
    MutanFusion,
    RelationGraph,
    propagate,
    relation_adjacency,
    relation_attention,
    sample_layer_norm,
    spatial_coordinates,
)
from cmseg.models.cmpc.exchange import (
    ConvLSTMCell,
    ConvLSTMFusion,
    ExchangeRound,
    GatedMessage,
    GlobalVector,
)
from cmseg.models.cmpc.language import WORD_TYPES, WordTypeClassifier, sentence_vectors
from cmseg.models.cmpc.loss import cmpc_loss
from cmseg.models.cmpc.model import (
    CMPC,
    CMPCOutput,
    VisualLevel,
    build_cmpc,
    build_text_encoder,
    cmpc_backbone,
    cmpc_resnet101,
    cmpc_tiny,
)

__all__ = [
    # 3. Words (language.py)
    "WORD_TYPES",
    "WordTypeClassifier",
    "sentence_vectors",
    # 2, 4-6. One level (comprehension.py)
    "spatial_coordinates",
    "sample_layer_norm",
    "MutanFusion",
    "relation_attention",
    "relation_adjacency",
    "propagate",
    "GraphConvolution",
    "RelationGraph",
    "LevelComprehension",
    # 7-8. Exchange and fusion (exchange.py)
    "GlobalVector",
    "GatedMessage",
    "ExchangeRound",
    "ConvLSTMCell",
    "ConvLSTMFusion",
    # 1, 9. The model and its builders (model.py)
    "CMPCOutput",
    "VisualLevel",
    "CMPC",
    "build_text_encoder",
    "cmpc_backbone",
    "build_cmpc",
    "cmpc_resnet101",
    "cmpc_tiny",
    # The loss (loss.py)
    "cmpc_loss",
]
