"""CMPC details against the official TF1 code (spyflying/CMPC-Refseg, reference
cmpc_refseg.md): which parameters the L2 term covers, MUTAN's per-head Xavier bound, and the
language LSTM as a TF ``BasicLSTMCell`` (forget bias 1.0 added inside the gate)."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from cmseg.models import build_model
from cmseg.models.cmpc import MutanFusion
from cmseg.models.text import LSTMTextEncoder, Vocabulary

pytestmark = pytest.mark.usefixtures("one_thread")

SENTENCES = ["the small red triangle left of the blue circle", "green square"]


# --------------------------------------------------------------------------------------------
# Weight decay: the official `reg_var_list` is every `_conv` kernel (`DW`) under text_objseg


def test_weight_decay_covers_exactly_the_official_dw_kernels():
    vocab = Vocabulary([f"w{i}" for i in range(100)])
    with torch.device("meta"):
        model = build_model("cmpc_resnet101", vocabulary=vocab)
    names = model.weight_decay_names()
    params = dict(model.named_parameters())
    assert len(names) == len(set(names)) and all(n.endswith(".weight") for n in names)
    # not decayed officially: the ConvLSTM's `kernel` and peepholes `W_ci/W_cf/W_co`, the
    # layer norms, the biases, the (GloVe) embeddings, the LSTM, the backbone
    assert "fusion.cell.conv.weight" in params and "fusion.cell.conv.weight" not in names
    assert "fusion.cell.peephole" not in names
    assert not any(n.startswith(("backbone.", "text_encoder.", "fusion.")) for n in names)
    assert not any(".norm" in n or n.endswith(".bias") for n in names)
    # ... and decayed: every DW of the official graph, counted from CMPC_model.py's `_conv`
    # calls (C 1000, D 500, R 5; the R MUTAN heads are one stacked layer here)
    c, d, r = 1000, 500, 5
    laterals = (512 + 1024 + 2048) * c  # c3/c4/c5_lateral
    words = c * (c // 2) + (c // 2) * 4  # words_parse_1, words_parse_2
    mutan = r * ((c + 8) * c + c * c)  # vis_trans_*_head{1..5}, lang_trans_*_head{1..5}
    graph = 3 * c * c  # words_trans, spa_graph_trans2, gconv_update_spa_graph
    level = mutan + graph + (3 * c + 8) * d + 9 * d  # fusion_c*, score_c*
    # per level and round: spa_graph_key, lang_query, gv_lang, and for each of the two other
    # levels lang_feat_* (gate) and trans_feat_*
    exchange = 3 * (d * d + c * d + (d + c) * d + 2 * (d * d + d * d))
    official = laterals + words + 3 * level + 2 * exchange + 9 * d  # + the final score
    assert sum(params[n].numel() for n in names) == official


def test_parameter_groups_list_the_decayed_parameters():
    from cmseg.tasks.ris.model import parameter_groups

    torch.manual_seed(0)
    model = build_model("cmpc_tiny", vocabulary=Vocabulary.build(SENTENCES))
    model.backbone.requires_grad_(False)  # freeze_backbone
    ids = {id(p): n for n, p in model.named_parameters()}
    decay, rest = parameter_groups(model, 5e-4)
    decayed = sorted(ids[id(p)] for p in decay["params"])
    assert decay["weight_decay"] == 5e-4 and rest["weight_decay"] == 0.0
    assert decayed == sorted(model.weight_decay_names())
    not_decayed = {ids[id(p)] for p in rest["params"]}
    assert {"fusion.cell.conv.weight", "fusion.cell.peephole"} <= not_decayed
    assert "text_encoder.lstm.weight_ih_l0" in not_decayed
    assert "text_encoder.lstm.bias_hh_l0" not in not_decayed  # held at 0, not trained
    assert not any(n.startswith("backbone.") for n in decayed + sorted(not_decayed))


# --------------------------------------------------------------------------------------------
# MUTAN: five heads, each initialised with its own Xavier bound


def test_mutan_heads_get_the_per_head_xavier_bound():
    torch.manual_seed(0)
    c, r = 1000, 5
    mutan = MutanFusion(c, c, heads=r)
    visual = mutan.visual.weight.detach().reshape(r, c, c + 8)
    text = mutan.text.weight.detach().reshape(r, c, c)
    bound_visual = math.sqrt(6 / ((c + 8) + c))  # 0.0547, as xavier_initializer_conv2d per head
    bound_text = math.sqrt(6 / (c + c))
    assert round(bound_visual, 4) == 0.0547
    for head in range(r):
        for weights, bound in ((visual[head], bound_visual), (text[head], bound_text)):
            assert weights.abs().max() <= bound
            assert weights.abs().max() > 0.999 * bound  # the whole range is used
            assert abs(weights.std().item() - bound / math.sqrt(3)) < 0.01 * bound
    # the bound of one layer of five stacked heads would be sqrt(6 / (1008 + 5000)) = 0.032
    assert visual.abs().max() > 1.5 * math.sqrt(6 / ((c + 8) + r * c))
    assert not mutan.visual.bias.any() and not mutan.text.bias.any()


def test_cmpc_keeps_the_mutan_init(tmp_path):
    torch.manual_seed(0)
    model = build_model("cmpc_tiny", vocabulary=Vocabulary.build(SENTENCES))
    c = 64
    for level in model.levels:
        weights = level.entity.visual.weight.detach()
        assert weights.abs().max() > 1.2 * math.sqrt(6 / ((c + 8) + 5 * c))
        assert weights.abs().max() <= math.sqrt(6 / ((c + 8) + c))


# --------------------------------------------------------------------------------------------
# The language LSTM: a TF BasicLSTMCell (forget_bias=1.0), written out by hand


def tf_basic_lstm(
    inputs: torch.Tensor, kernel: torch.Tensor, bias: torch.Tensor, forget_bias: float = 1.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """TF1's ``BasicLSTMCell.call`` unrolled over ``T x in`` inputs from a zero state:
    ``i, j, f, o = split([x, h] @ kernel + bias, 4)``; ``c = c sigmoid(f + forget_bias) +
    sigmoid(i) tanh(j)``; ``h = tanh(c) sigmoid(o)``. Returns ``(outputs T x H, h)``."""
    hidden = kernel.shape[1] // 4
    h = c = torch.zeros(hidden, dtype=kernel.dtype)
    outputs = []
    for x in inputs:
        i, j, f, o = torch.split(torch.cat([x, h]) @ kernel + bias, hidden)
        c = c * torch.sigmoid(f + forget_bias) + torch.sigmoid(i) * torch.tanh(j)
        h = torch.tanh(c) * torch.sigmoid(o)
        outputs.append(h)
    return torch.stack(outputs), h


def tf_parameters(lstm: nn.LSTM, forget_bias: float) -> tuple[torch.Tensor, torch.Tensor]:
    """The TF ``kernel`` ``(in + H) x 4H`` (gates i, j, f, o) and ``bias`` that give
    ``lstm``'s function with ``forget_bias`` added at run time (PyTorch: gates i, f, g, o)."""
    w_ih, w_hh = lstm.weight_ih_l0.detach(), lstm.weight_hh_l0.detach()
    b = (lstm.bias_ih_l0 + lstm.bias_hh_l0).detach()
    i, f, g, o = (slice(k * lstm.hidden_size, (k + 1) * lstm.hidden_size) for k in range(4))
    order = [i, g, f, o]
    kernel = torch.cat([torch.cat([w_ih[s], w_hh[s]], dim=1) for s in order]).T
    bias = torch.cat([b[s] for s in order])
    bias[2 * lstm.hidden_size : 3 * lstm.hidden_size] -= forget_bias
    return kernel, bias


def test_lstm_is_tf_basic_lstm_cell_with_forget_bias_one():
    torch.manual_seed(0)
    vocab = Vocabulary.build(SENTENCES)
    encoder = LSTMTextEncoder(vocab, embed_dim=12, hidden=10, normalize=False).eval()
    lstm = encoder.lstm
    kernel, bias = tf_parameters(lstm, forget_bias=1.0)
    # at initialisation: TF's zero bias (the 1.0 lives in the gate), Glorot-uniform kernel
    assert torch.equal(bias, torch.zeros(40))
    bound = math.sqrt(6 / (12 + 10 + 4 * 10))
    assert kernel.abs().max() <= bound and kernel.abs().max() > 0.9 * bound
    # the same function as the hand-written TF step, at init and with any trained bias
    for trained in (False, True):
        if trained:
            with torch.no_grad():
                lstm.bias_ih_l0.normal_()
                lstm.weight_ih_l0.normal_()
            kernel, bias = tf_parameters(lstm, forget_bias=1.0)
        for sentence in SENTENCES:
            ids = torch.tensor(vocab.encode(sentence))
            expected, h = tf_basic_lstm(encoder.embedding(ids).detach(), kernel, bias)
            out = encoder([sentence])
            assert torch.allclose(out.words[0], expected, atol=1e-6)
            assert torch.allclose(out.sentence[0], h, atol=1e-6)


def test_lstm_has_one_trained_bias_like_tf():
    """TF's cell has one bias; PyTorch's two would train their sum twice as fast under
    Adam: ``bias_hh`` is held at 0 and the whole bias (forget 1.0 included) is ``bias_ih``."""
    torch.manual_seed(0)
    encoder = LSTMTextEncoder(Vocabulary.build(SENTENCES), embed_dim=6, hidden=5)
    lstm = encoder.lstm
    assert not lstm.bias_hh_l0.requires_grad and not lstm.bias_hh_l0.any()
    assert lstm.bias_ih_l0.requires_grad
    expected = torch.zeros(20)
    expected[5:10] = 1.0  # PyTorch's gate order i, f, g, o: the forget slice
    assert torch.equal(lstm.bias_ih_l0.detach(), expected)
    encoder(SENTENCES).words.sum().backward()
    assert lstm.bias_hh_l0.grad is None and lstm.bias_ih_l0.grad.abs().sum() > 0
    # another forget bias, or none
    other = LSTMTextEncoder(Vocabulary.build(SENTENCES), embed_dim=6, hidden=5, forget_bias=0.0)
    assert not other.lstm.bias_ih_l0.any()
