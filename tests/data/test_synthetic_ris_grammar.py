"""The RIS sentence grammar on hand-made scenes: every generated sentence resolves to its
referent, and twins get relational sentences only."""

from __future__ import annotations

import numpy as np

from cmseg.data.synthetic import ris, ris_grammar
from cmseg.data.synthetic.ris_grammar import Obj, parse_sentence, refs_for_image, resolve


def test_ris_keeps_the_grammar_names():
    for name in ris_grammar.__all__:
        if name != "refs_for_image":
            assert getattr(ris, name) is getattr(ris_grammar, name)


def test_generated_sentences_name_their_referent():
    side = 128
    objs = [
        Obj("circle", "red", "small", 20.0, 64.0),
        Obj("circle", "red", "small", 100.0, 64.0),  # a twin of the first
        Obj("star", "blue", "big", 60.0, 20.0),
    ]
    refs = refs_for_image(objs, side, np.random.default_rng(0))
    assert [r["obj"] for r in refs] == [0, 1, 2]
    for ref in refs:
        assert 1 <= len(ref["sentences"]) <= 3
        for s in ref["sentences"]:
            assert resolve(parse_sentence(s["sent"]), objs, side) == [ref["obj"]]
            assert s["raw"].lower().rstrip(".") == s["sent"]
            assert s["relation_only"] == (ref["obj"] in (0, 1))
            if s["relation_only"]:
                assert s["kind"] == "relation"
    again = refs_for_image(objs, side, np.random.default_rng(0))
    assert again == refs
