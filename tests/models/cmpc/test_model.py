"""CMPC: shapes, padding invariance, word types, the relation graph, ablations, gradients,
the paper configuration's size and backbone weights."""

from __future__ import annotations

import math

import pytest
import timm
import torch

from cmseg.errors import ConfigError
from cmseg.models import MODELS, build_model
from cmseg.models.cmpc import (
    CMPCOutput,
    ConvLSTMCell,
    LevelComprehension,
    MutanFusion,
    RelationGraph,
    WordTypeClassifier,
    build_cmpc,
    build_text_encoder,
    propagate,
    relation_adjacency,
    relation_attention,
    sentence_vectors,
    spatial_coordinates,
)
from cmseg.models.cmpc.loss import cmpc_loss
from cmseg.models.text import TextFeatures, Vocabulary
from cmseg.models.weights import StateDictError

pytestmark = pytest.mark.usefixtures("one_thread")

SENTENCES = [
    "the small red triangle left of the blue circle",
    "green square",
    "the circle above the big yellow square on the right",
]


@pytest.fixture(scope="module")
def vocab() -> Vocabulary:
    return Vocabulary.build(SENTENCES)


@pytest.fixture(scope="module")
def tiny(vocab):
    torch.manual_seed(0)
    return build_model("cmpc_tiny", vocabulary=vocab)


def _images(b: int, h: int = 64, w: int = 64, seed: int = 0) -> torch.Tensor:
    return torch.randn(b, 3, h, w, generator=torch.Generator().manual_seed(seed))


def _grad_sum(module: torch.nn.Module) -> float:
    return sum(p.grad.abs().sum().item() for p in module.parameters() if p.grad is not None)


# --------------------------------------------------------------------------------------------
# Shapes


def test_tiny_output_shapes(tiny):
    tiny.train()
    out = tiny(_images(2, 128, 128), SENTENCES[:2])
    assert isinstance(out, CMPCOutput)
    assert tuple(out.final.shape) == (2, 1, 16, 16)  # output stride 8
    assert len(out.levels) == 3
    assert all(tuple(level.shape) == (2, 1, 16, 16) for level in out.levels)
    assert tuple(out.word_types.shape) == (2, 9, 4)  # the longest sentence has 9 words
    assert all(torch.isfinite(t).all() for t in (out.final, *out.levels))

    # Any input size: the maps are ceil(H / 8) x ceil(W / 8).
    tiny.eval()
    with torch.inference_mode():
        odd = tiny(_images(1, 60, 44), SENTENCES[1:2])
    assert tuple(odd.final.shape) == (1, 1, 8, 6)
    with pytest.raises(ValueError, match="B x 3 x H x W"):
        tiny(torch.zeros(1, 1, 64, 64), SENTENCES[:1])
    with pytest.raises(TypeError, match="list of sentences"):
        tiny(_images(1), SENTENCES[0])


def test_one_image_is_shared_by_many_sentences(tiny):
    tiny.eval()
    image = _images(1, seed=3)
    with torch.inference_mode():
        visual = tiny.encode_image(image)  # cached once, as a predictor would
        assert [tuple(v.lateral.shape) for v in visual] == [(1, 64, 8, 8)] * 3
        assert [tuple(v.entity.shape) for v in visual] == [(1, 5 * 64, 8, 8)] * 3
        shared = tiny.segment(visual, SENTENCES)
        views = tiny.segment(
            [type(v)(*(t.expand(3, -1, -1, -1) for t in v)) for v in visual], SENTENCES
        )
        repeated = tiny(image.expand(3, -1, -1, -1), SENTENCES)
    torch.testing.assert_close(shared.final, repeated.final)
    torch.testing.assert_close(views.final, repeated.final)
    with pytest.raises(ValueError, match="2 images but 3 sentences"):
        tiny.segment(tiny.encode_image(_images(2)), SENTENCES)


def test_sentences_grouped_by_image_read_their_own_image(tiny):
    tiny.eval()
    images = _images(2, seed=4)
    sentences = [SENTENCES[0], SENTENCES[2], SENTENCES[1], SENTENCES[0]]  # 2 per image
    with torch.inference_mode():
        grouped = tiny(images, sentences)
        repeated = tiny(images.repeat_interleave(2, dim=0), sentences)
    torch.testing.assert_close(grouped.final, repeated.final)
    for a, b in zip(grouped.levels, repeated.levels, strict=True):
        torch.testing.assert_close(a, b)


def test_mutan_fuse_by_hand_with_sentences_grouped_by_image():
    torch.manual_seed(0)
    mutan = MutanFusion(4, 5, heads=3).double()
    x = torch.randn(2, 4, 3, 2, dtype=torch.float64)
    spatial = spatial_coordinates(3, 2, dtype=torch.float64)
    q = torch.randn(6, 5, dtype=torch.float64, requires_grad=True)  # 3 sentences per image
    visual = mutan.project_visual(x, spatial).requires_grad_(True)
    # M1 = L2norm(tanh(sum_r tanh(W_r [X; P]) * tanh(U_r q))), image j // 3 for sentence j
    per_sentence = visual.repeat_interleave(3, dim=0).reshape(6, 3, 4, 3, 2)
    text = torch.tanh(mutan.text(q)).reshape(6, 3, 4, 1, 1)
    expected = torch.nn.functional.normalize(torch.tanh((per_sentence * text).sum(dim=1)), dim=1)
    torch.testing.assert_close(mutan.fuse(visual, q), expected)
    assert torch.autograd.gradcheck(mutan.fuse, (visual, q))
    with pytest.raises(ValueError, match="2 images but 5 sentences"):
        mutan.fuse(visual, q[:5])


@pytest.mark.parametrize("relation_reasoning", [True, False])
def test_level_fusion_equals_the_convolution_of_the_concatenation(relation_reasoning):
    torch.manual_seed(0)
    level = LevelComprehension(4, 3, heads=2, relation_reasoning=relation_reasoning).double()
    x = torch.nn.functional.normalize(torch.randn(2, 4, 3, 2, dtype=torch.float64), dim=1)
    spatial = spatial_coordinates(3, 2, dtype=torch.float64)
    words = torch.randn(4, 3, 4, dtype=torch.float64)  # 2 sentences per image
    types = torch.rand(4, 3, 4, dtype=torch.float64).softmax(dim=-1)
    mask = torch.ones(4, 3, dtype=torch.bool)
    q = torch.randn(4, 4, dtype=torch.float64)
    out = level(x, spatial, words, types, mask, q)
    # the paper's form: ReLU(conv1x1([M1, M2, tile(q), P])) on per-sentence copies
    m1 = level.entity(x.repeat_interleave(2, dim=0), spatial.expand(4, -1, -1, -1), q)
    parts = [m1]
    if relation_reasoning:
        parts.append(level.relation(m1, words, types[..., 2], mask))
    parts += [q[..., None, None].expand(-1, -1, 3, 2), spatial.expand(4, -1, -1, -1)]
    expected = torch.relu(level.fuse(torch.cat(parts, dim=1)))
    torch.testing.assert_close(out, expected)


def test_spatial_coordinates_by_hand():
    grid = spatial_coordinates(2, 4)
    assert tuple(grid.shape) == (1, 8, 2, 4)
    # Cell (h=1, w=2) of a 2 x 4 grid: x in [0, 0.5], y in [0, 1].
    expected = [0.0, 0.0, 0.5, 1.0, 0.25, 0.5, 0.25, 0.5]
    torch.testing.assert_close(grid[0, :, 1, 2], torch.tensor(expected))
    assert grid[:, :6].min().item() == -1.0 and grid[:, :6].max().item() == 1.0


# --------------------------------------------------------------------------------------------
# Words and padding


def test_padded_words_do_not_change_the_output(tiny):
    tiny.eval()
    images = _images(2, seed=1)
    with torch.inference_mode():
        visual = tiny.encode_image(images)
        text = tiny.encode_text(SENTENCES[:2])
        plain = tiny.decode(visual, text)
        # Five more padded positions holding garbage (not zeros): masked out everywhere.
        b, t, c = text.words.shape
        garbage = torch.randn(b, 5, c, generator=torch.Generator().manual_seed(0)) * 10
        padded = TextFeatures(
            words=torch.cat([text.words, garbage], dim=1),
            mask=torch.cat([text.mask, torch.zeros(b, 5, dtype=torch.bool)], dim=1),
            sentence=text.sentence,
        )
        longer = tiny.decode(visual, padded)
    torch.testing.assert_close(longer.final, plain.final)
    for a, b_ in zip(longer.levels, plain.levels, strict=True):
        torch.testing.assert_close(a, b_)
    assert longer.word_types[:, t:].abs().max().item() == 0


def test_output_does_not_depend_on_the_batch(tiny):
    # "green square" alone vs padded to 9 words next to a longer sentence in one batch: the
    # masks, the per-sample TGFE normalisation and the packed LSTM keep the samples apart.
    tiny.eval()
    images = torch.cat([_images(1, seed=4), _images(1, seed=5)])
    with torch.inference_mode():
        batched = tiny(images, [SENTENCES[1], SENTENCES[0]])
        alone = tiny(images[:1], [SENTENCES[1]])
    torch.testing.assert_close(batched.final[:1], alone.final)


def test_word_types_sum_to_one_and_vanish_on_pads():
    torch.manual_seed(0)
    classifier = WordTypeClassifier(16)
    assert classifier.hidden.out_features == 8  # C -> C / 2 -> 4
    words = torch.randn(3, 6, 16)
    lengths = torch.tensor([6, 2, 4])
    mask = torch.arange(6)[None] < lengths[:, None]
    types = classifier(words, mask)
    torch.testing.assert_close(types.sum(-1)[mask], torch.ones(int(lengths.sum())))
    assert types[~mask].abs().max().item() == 0
    assert (types[mask] > 0).all()

    q, s = sentence_vectors(words * mask[..., None], types)
    torch.testing.assert_close(q.norm(dim=-1), torch.ones(3))
    # By hand for the second sentence: weights p_ent + p_attr and 1 - p_unnecessary.
    w = words[1, :2]
    q_hand = ((types[1, :2, 0] + types[1, :2, 1])[:, None] * w).sum(0)
    s_hand = ((1 - types[1, :2, 3])[:, None] * w).sum(0)
    torch.testing.assert_close(q[1], q_hand / q_hand.norm())
    torch.testing.assert_close(s[1], s_hand / s_hand.norm())


# --------------------------------------------------------------------------------------------
# Relation-Aware Reasoning


def test_adjacency_rows_sum_to_one_and_the_factorised_product_is_exact():
    g = torch.Generator().manual_seed(0)
    b, n, t, c = 2, 12, 5, 8
    nodes = torch.randn(b, n, c, generator=g, dtype=torch.float64)
    words = torch.randn(b, t, c, generator=g, dtype=torch.float64)
    relation = torch.rand(b, t, generator=g, dtype=torch.float64)
    mask = torch.tensor([[True] * 5, [True, True, True, False, False]])
    a_w, a_v = relation_attention(nodes, words, relation, mask)
    assert a_w[~mask[:, None, :].expand(b, n, t)].abs().max().item() == 0
    assert a_v[1, :, 3:].abs().max().item() == 0
    torch.testing.assert_close(a_w.sum(2), torch.ones(b, n, dtype=torch.float64))
    torch.testing.assert_close(a_v.sum(1)[mask], torch.ones(8, dtype=torch.float64))

    adjacency = relation_adjacency(a_w, a_v)
    assert tuple(adjacency.shape) == (b, n, n)
    torch.testing.assert_close(adjacency.sum(2), torch.ones(b, n, dtype=torch.float64))
    values = torch.randn(b, n, c, generator=g, dtype=torch.float64)
    torch.testing.assert_close(propagate(a_w, a_v, values), adjacency @ values)

    # Relation probabilities of 0 flatten the word softmax: uniform over the real words.
    a_w0, _ = relation_attention(nodes, words, torch.zeros(b, t, dtype=torch.float64), mask)
    torch.testing.assert_close(a_w0[1, :, :3], torch.full((n, 3), 1 / 3, dtype=torch.float64))


def test_gradcheck_mutan_relation_graph_and_convlstm():
    torch.manual_seed(0)
    mutan = MutanFusion(4, 5, heads=2).double()
    x = torch.randn(2, 4, 3, 2, dtype=torch.float64, requires_grad=True)
    spatial = spatial_coordinates(3, 2, dtype=torch.float64).expand(2, -1, -1, -1)
    q = torch.randn(2, 5, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b: mutan(a, spatial, b), (x, q))

    graph = RelationGraph(4).double()
    m1 = torch.randn(2, 4, 3, 2, dtype=torch.float64, requires_grad=True)
    words = torch.randn(2, 3, 4, dtype=torch.float64, requires_grad=True)
    relation = torch.rand(2, 3, dtype=torch.float64, requires_grad=True)
    mask = torch.tensor([[True, True, True], [True, True, False]])
    assert torch.autograd.gradcheck(lambda a, b, r: graph(a, b, r, mask), (m1, words, relation))

    cell = ConvLSTMCell(3, 4).double()
    with torch.no_grad():
        cell.peephole.normal_()
    inputs = torch.randn(1, 3, 2, 2, dtype=torch.float64, requires_grad=True)
    c0 = torch.randn(1, 4, 2, 2, dtype=torch.float64, requires_grad=True)
    h0 = torch.randn(1, 4, 2, 2, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, c, h: cell(a, (c, h))[0], (inputs, c0, h0))


# --------------------------------------------------------------------------------------------
# Ablations, gradients, frozen batch norm


def _head_parameters(model: torch.nn.Module) -> dict[str, torch.Size]:
    return {
        n: p.shape
        for n, p in model.named_parameters()
        if not n.startswith(("backbone.", "text_encoder."))
    }


def test_ablation_flags_change_the_parameters_and_still_run(tiny, vocab):
    full = _head_parameters(tiny)
    no_rar = build_model("cmpc_tiny", vocabulary=vocab, relation_reasoning=False)
    one_round = build_model("cmpc_tiny", vocabulary=vocab, exchange_rounds=1)
    no_exchange = build_model("cmpc_tiny", vocabulary=vocab, exchange_rounds=0)

    ablated = _head_parameters(no_rar)
    assert not any(".relation." in n for n in ablated)
    assert any(".relation." in n for n in full)
    c = 64  # the tiny width: [M1, q, P] instead of [M1, M2, q, P]
    assert ablated["levels.0.fuse.weight"][1] == 2 * c + 8
    assert full["levels.0.fuse.weight"][1] == 3 * c + 8
    removed = sum(math.prod(s) for n, s in full.items() if ".relation." in n)
    assert sum(map(math.prod, full.values())) - sum(map(math.prod, ablated.values())) == (
        removed + 3 * c * 32  # the three fusion convs lose C inputs each (D = 32)
    )
    assert not any(n.startswith("exchange.1.") for n in _head_parameters(one_round))
    assert not any(n.startswith("exchange.") for n in _head_parameters(no_exchange))

    for model in (no_rar, no_exchange):
        model.eval()
        with torch.inference_mode():
            out = model(_images(2), SENTENCES[:2])
        assert tuple(out.final.shape) == (2, 1, 8, 8)
        assert torch.isfinite(out.final).all()
    with pytest.raises(ConfigError, match="exchange_rounds"):
        build_model("cmpc_tiny", exchange_rounds=-1)


def test_gradients_reach_the_text_encoder_and_the_backbone(tiny):
    tiny.train()
    tiny.zero_grad(set_to_none=True)
    out = tiny(_images(2, seed=2), SENTENCES[:2])
    target = torch.zeros(2, 1, 64, 64)
    target[:, :, 16:40, 8:32] = 1
    loss, _ = cmpc_loss(out, target)
    loss.backward()
    assert _grad_sum(tiny.text_encoder.lstm) > 0
    assert _grad_sum(tiny.text_encoder.embedding) > 0
    assert _grad_sum(tiny.backbone) > 0
    assert tiny.backbone.conv1.weight.grad.abs().sum() > 0  # the very first layer
    # Every trained head parameter takes part (the ConvLSTM peepholes through the later
    # steps); the LSTM's bias_hh is held at 0 (TF's cell has one bias, bias_ih).
    unused = [
        n
        for n, p in tiny.named_parameters()
        if p.grad is None and not n.startswith("backbone.") and p.requires_grad
    ]
    assert unused == []
    assert [n for n, p in tiny.named_parameters() if not p.requires_grad] == [
        "text_encoder.lstm.bias_hh_l0"
    ]
    tiny.zero_grad(set_to_none=True)


def test_frozen_backbone_batch_norm(vocab):
    model = build_model("cmpc_tiny", vocabulary=vocab, freeze_backbone_bn=True)
    bns = [m for m in model.backbone.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert bns and all(not m.training for m in bns)
    assert all(not p.requires_grad for m in bns for p in m.parameters())
    before = bns[0].running_mean.clone()
    model.train()
    assert model.training and model.levels.training and not bns[0].training
    model(_images(2), SENTENCES[:2])
    assert torch.equal(bns[0].running_mean, before)
    model.eval().train()  # still frozen after a round trip
    assert not bns[0].training
    assert any(m.training for m in build_model("cmpc_tiny").backbone.modules())


# --------------------------------------------------------------------------------------------
# Builders, the paper configuration, weights


def test_builders_registered():
    assert {"cmpc_resnet101", "cmpc_tiny"} <= set(MODELS)
    with pytest.raises(TypeError):
        build_model("cmpc_tiny", no_such_option=1)


def test_text_encoder_options(tmp_path, vocab):
    # A word-per-line vocabulary file and a GloVe file initialise the LSTM encoder.
    (tmp_path / "vocab.txt").write_text("\n".join(vocab.words), encoding="utf-8")
    (tmp_path / "glove.txt").write_text(
        "red " + " ".join(["0.5"] * 8) + "\ncircle " + " ".join(["-1"] * 8) + "\n",
        encoding="utf-8",
    )
    kwargs = {"width": 16, "fused_width": 8, "embed_dim": 8, "backbone": "resnet10t"}
    model = build_model(
        "cmpc_tiny",
        vocabulary=tmp_path / "vocab.txt",
        glove=tmp_path / "glove.txt",
        text_encoder="lstm",
        **kwargs,
    )
    encoder = model.text_encoder
    assert encoder.vocab.words == vocab.words and encoder.out_channels == 16
    torch.testing.assert_close(encoder.embedding.weight[vocab.ids["red"]], torch.full((8,), 0.5))

    # A ready encoder of another width: the words are projected to C.
    other = build_text_encoder(vocabulary=vocab, width=24, embed_dim=8)
    model = build_model("cmpc_tiny", text_encoder=other, **kwargs)
    assert model.text_encoder is other and model.word_proj.in_features == 24
    with torch.inference_mode():
        out = model.eval()(_images(1), SENTENCES[:1])
    assert tuple(out.final.shape) == (1, 1, 8, 8)


def test_paper_config_parameter_count():
    # Built on the meta device (no memory, ~0.2 s), with a RefCOCO-sized vocabulary.
    vocab = Vocabulary([f"w{i}" for i in range(12112 - 4)])
    with torch.device("meta"):
        model = build_model("cmpc_resnet101", vocabulary=vocab)
    c, d, r = 1000, 500, 5

    def count(module: torch.nn.Module) -> int:
        return sum(p.numel() for p in module.parameters())

    def conv(i: int, o: int, k: int = 1) -> int:  # weight + bias
        return i * o * k * k + o

    entity = r * conv(c + 8, c) + r * conv(c, c)  # R heads, visual and text
    relation = 2 * conv(c, c) + conv(c, c) + 2 * 2 * c  # W_v, W_w, GCN update, 2 layer norms
    level = entity + relation + conv(3 * c + 8, d) + conv(d, 1, 3)  # fusion, aux score
    gates = 2 * (conv(d, d) + conv(d, d))  # two senders: gate and transform each
    exchange = 3 * (conv(d, d) + conv(c, d) + conv(d + c, d) + gates)  # key, query, gv
    convlstm = 2 * d * 4 * d + 3 * d + 5 * 2 * d  # kernel (no bias), peepholes, 5 norms
    laterals = conv(512, c) + conv(1024, c) + conv(2048, c)
    words = conv(c, c // 2) + conv(c // 2, 4)
    head = laterals + words + 3 * level + 2 * exchange + convlstm + conv(d, 1, 3)
    backbone = count(model.backbone)
    assert backbone == 42_500_160  # timm resnet101 without its classifier
    text = count(model.text_encoder)
    assert text == 12112 * 300 + 4 * c * (300 + c) + 2 * 4 * c  # GloVe-sized embedding + LSTM
    assert count(model) - backbone - text == head == 64_819_508
    assert 100e6 < count(model) < 125e6  # ~116 M with the text encoder
    bns = [m for m in model.backbone.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert all(not m.training and not m.weight.requires_grad for m in bns)


def test_backbone_weights_round_trip(tmp_path, vocab):
    torch.manual_seed(1)
    plain = timm.create_model("resnet18", pretrained=False)
    with torch.no_grad():
        for p in plain.parameters():
            p.normal_()
    path = tmp_path / "resnet18.pth"
    torch.save(plain.state_dict(), path)
    model = build_model("cmpc_tiny", vocabulary=vocab, backbone_weights=str(path))
    state = plain.state_dict()
    loaded = model.backbone.state_dict()
    assert len(loaded) > 50
    for key, value in loaded.items():
        assert torch.equal(value, state[key]), key

    other = tmp_path / "resnet10t.pth"
    torch.save(timm.create_model("resnet10t", pretrained=False).state_dict(), other)
    with pytest.raises(StateDictError, match="resnet18"):
        build_cmpc("resnet18", vocabulary=vocab, width=16, fused_width=8, backbone_weights=other)
