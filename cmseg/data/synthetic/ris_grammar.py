"""The sentence grammar of the synthetic RIS benchmark (:mod:`.ris`): objects, relations,
sentence generation with a unique referent, and parsing sentences back.

**Grammar.** ::

    S    -> NP | NP REL NP' | NP "that is" REL NP'      (each NP with "the", or bare)
    NP   -> [SIZE] [COLOUR] SHAPE
    SIZE -> small | little | big | large
    REL  -> left of | to the left of | right of | to the right of | above | below | under

Relations compare the centres of the objects' boxes: "A left of B" is *true* when A's centre is
at least ``0.1 * size`` left of B's, *false* when it is at most ``0.025 * size`` left of it (or
right of it), and undecided in between.

**Uniqueness by construction.** A sentence is kept only when the objects matching its head NP
are exactly the referent (attribute sentences), or when the anchor NP' matches exactly one
object, the relation is true for the referent, and false (not undecided) for every other object
the head NP matches. A sentence is **relation-only** when the referent's full description (size,
colour and shape) matches another object too: no attribute sentence can name it. Each object
with at least one valid sentence becomes a ref with 1-3 sentences (attribute and relational
mixed); relation-only refs get only relational ones.

:func:`refs_for_image` generates the sentences of one image; :func:`parse_sentence` and
:func:`resolve` read them back.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "RIS_SHAPES",
    "RIS_COLOURS",
    "SIZE_WORDS",
    "RELATIONS",
    "Obj",
    "relation",
    "matches",
    "refs_for_image",
    "parse_sentence",
    "resolve",
]

#: The shape and colour words (8 shapes told apart at 128 px, 7 colours).
RIS_SHAPES: tuple[str, ...] = (
    "circle", "square", "triangle", "star", "arrow", "diamond", "cross", "heart",
)  # fmt: skip
RIS_COLOURS: tuple[str, ...] = ("red", "green", "blue", "yellow", "purple", "orange", "white")
#: surface words of each size value
SIZE_WORDS: dict[str, tuple[str, ...]] = {"small": ("small", "little"), "big": ("big", "large")}
#: surface phrases of each relation, longest first for parsing
RELATIONS: dict[str, tuple[str, ...]] = {
    "left": ("to the left of", "left of"),
    "right": ("to the right of", "right of"),
    "above": ("above",),
    "below": ("below", "under"),
}
#: "A left of B" is true from ``TRUE_MARGIN * side`` px apart, false up to ``FALSE_MARGIN * side``.
TRUE_MARGIN, FALSE_MARGIN = 0.1, 0.025


@dataclass(frozen=True)
class Obj:
    """One object of a scene: attributes and its box centre (pixels)."""

    shape: str
    colour: str
    size: str
    x: float
    y: float


def relation(rel: str, a: Obj, b: Obj, side: int) -> bool | None:
    """Three-valued spatial relation "a REL b": True, False, or None (undecided)."""
    if a is b:
        return False
    if rel == "left":
        d = b.x - a.x
    elif rel == "right":
        d = a.x - b.x
    elif rel == "above":
        d = b.y - a.y
    elif rel == "below":
        d = a.y - b.y
    else:
        raise ValueError(f"unknown relation {rel!r}")
    if d >= TRUE_MARGIN * side:
        return True
    if d <= FALSE_MARGIN * side:
        return False
    return None


def matches(o: Obj, shape: str | None, colour: str | None, size: str | None) -> bool:
    """Whether ``o`` fits the words of a noun phrase (None = word absent)."""
    return (
        (shape is None or o.shape == shape)
        and (colour is None or o.colour == colour)
        and (size is None or o.size == size)
    )


# --------------------------------------------------------------------------------------------
# Sentence generation


_HEADS = ((False, False), (False, True), (True, False), (True, True))  # (size?, colour?)


def _np_words(o: Obj, use_size: bool, use_colour: bool, rng: np.random.Generator) -> str:
    """The noun phrase "[size] [colour] shape" of ``o`` (a random synonym of its size)."""
    words = []
    if use_size:
        options = SIZE_WORDS[o.size]
        words.append(options[int(rng.integers(len(options)))])
    if use_colour:
        words.append(o.colour)
    words.append(o.shape)
    return " ".join(words)


def _matching(objs: list[Obj], o: Obj, use_size: bool, use_colour: bool) -> list[Obj]:
    """The objects that the noun phrase of ``o`` (with or without size and colour) fits."""
    return [
        x for x in objs
        if matches(x, o.shape, o.colour if use_colour else None, o.size if use_size else None)
    ]  # fmt: skip


def _candidate_sentences(
    objs: list[Obj], i: int, side: int, rng: np.random.Generator
) -> tuple[list[dict[str, Any]], bool]:
    """All valid sentences (as generation records) for object ``i``; and its relation-only flag."""
    o = objs[i]
    relation_only = len(_matching(objs, o, True, True)) > 1
    found: list[dict[str, Any]] = []
    for use_size, use_colour in _HEADS:
        head = _matching(objs, o, use_size, use_colour)
        if head == [o]:
            found.append({"kind": "attribute", "head": (use_size, use_colour)})
            continue
        for j, a in enumerate(objs):
            if j == i:
                continue
            anchor_head = next(
                (h for h in _HEADS if _matching(objs, a, *h) == [a]), None
            )  # the shortest unique description of the anchor
            if anchor_head is None:
                continue
            for rel in RELATIONS:
                if relation(rel, o, a, side) is not True:
                    continue
                if all(relation(rel, x, a, side) is False for x in head if x is not o):
                    found.append(
                        {"kind": "relation", "head": (use_size, use_colour), "rel": rel,
                         "anchor": j, "anchor_head": anchor_head}
                    )  # fmt: skip
    return found, relation_only


def _surface(rec: dict[str, Any], objs: list[Obj], i: int, rng: np.random.Generator) -> str:
    """The words of a generation record: article or not, a relation phrase, "that is"."""
    article = rng.random() < 0.8
    head = _np_words(objs[i], *rec["head"], rng)
    if rec["kind"] == "attribute":
        return f"the {head}" if article else head
    phrases = RELATIONS[rec["rel"]]
    rel = phrases[int(rng.integers(len(phrases)))]
    anchor = _np_words(objs[rec["anchor"]], *rec["anchor_head"], rng)
    that = "that is " if rng.random() < 0.3 else ""
    if article:
        return f"the {head} {that}{rel} the {anchor}"
    return f"{head} {that}{rel} {anchor}"


def _choose_sentences(
    cands: list[dict[str, Any]], relation_only: bool, rng: np.random.Generator
) -> list[dict[str, Any]]:
    """1-3 of the candidates: the shortest attribute one (unless relation-only), then random
    relational ones, then the other attribute ones."""
    if not cands:
        return []
    want = int(rng.integers(1, 4))
    attrs = [c for c in cands if c["kind"] == "attribute"]
    rels = [c for c in cands if c["kind"] == "relation"]
    chosen: list[dict[str, Any]] = []
    if attrs and not relation_only:
        chosen.append(attrs[0])  # the shortest attribute description
    order = rng.permutation(len(rels))
    for k in order:
        if len(chosen) >= want:
            break
        chosen.append(rels[int(k)])
    for c in attrs[1:]:
        if len(chosen) >= want:
            break
        chosen.append(c)
    return chosen


def _raw(sent: str, rng: np.random.Generator) -> str:
    """The sentence as "typed": sometimes capitalised, sometimes with a final period."""
    raw = sent
    if rng.random() < 0.3:
        raw = raw[0].upper() + raw[1:]
    if rng.random() < 0.2:
        raw += "."
    return raw


def refs_for_image(objs: list[Obj], side: int, rng: np.random.Generator) -> list[dict[str, Any]]:
    """The refs of one image: every object with at least one valid sentence, and 1-3 of them.

    Args:
        objs: the image's objects, in annotation order.
        side: image side in pixels (the relations' margins scale with it).
        rng: the image's generator (drawn from in object order).

    Returns:
        ``[{"obj": index, "sentences": [{"sent", "raw", "relation_only", "kind"}, ...]}]``,
        ``sent`` the normalised sentence, ``raw`` as "typed", ``kind`` ``attribute`` or
        ``relation``.
    """
    refs = []
    for i in range(len(objs)):
        cands, relation_only = _candidate_sentences(objs, i, side, rng)
        chosen = _choose_sentences(cands, relation_only, rng)
        if not chosen:
            continue
        sentences = []
        seen: set[str] = set()
        for rec in chosen:
            sent = _surface(rec, objs, i, rng)
            if sent in seen:
                continue
            seen.add(sent)
            sentences.append(
                {"sent": sent, "raw": _raw(sent, rng), "relation_only": relation_only,
                 "kind": rec["kind"]}
            )  # fmt: skip
        refs.append({"obj": i, "sentences": sentences})
    return refs


# --------------------------------------------------------------------------------------------
# Reading sentences back


_SIZE_OF_WORD = {w: k for k, ws in SIZE_WORDS.items() for w in ws}
_REL_PHRASES = sorted(
    ((p.split(), rel) for rel, ps in RELATIONS.items() for p in ps), key=lambda t: -len(t[0])
)


def _parse_np(words: list[str]) -> tuple[str | None, str | None, str | None]:
    """``(shape, colour, size)`` named by a noun phrase's words (None: word absent)."""
    shape = next((w for w in words if w in RIS_SHAPES), None)
    colour = next((w for w in words if w in RIS_COLOURS), None)
    size = next((_SIZE_OF_WORD[w] for w in words if w in _SIZE_OF_WORD), None)
    return shape, colour, size


def parse_sentence(sent: str) -> dict[str, Any]:
    """Parse a sentence of the grammar.

    Returns:
        ``{"head": (shape, colour, size), "rel": str | None, "anchor": (shape, colour, size) |
        None}`` (absent words are None).
    """
    words = sent.lower().rstrip(".").split()
    for i in range(len(words)):
        for phrase, rel in _REL_PHRASES:
            if words[i : i + len(phrase)] == phrase:
                return {
                    "head": _parse_np(words[:i]),
                    "rel": rel,
                    "anchor": _parse_np(words[i + len(phrase) :]),
                }
    return {"head": _parse_np(words), "rel": None, "anchor": None}


def resolve(parsed: dict[str, Any], objs: list[Obj], side: int) -> list[int]:
    """Indices of the objects a parsed sentence can refer to (exactly one when it is valid).

    An object qualifies when it fits the head and, with a relation, the relation to the unique
    anchor is not false (undecided counts as possible, so ambiguity shows as several indices).
    """
    head = [i for i, o in enumerate(objs) if matches(o, *parsed["head"])]
    if parsed["rel"] is None:
        return head
    anchors = [a for a in objs if matches(a, *parsed["anchor"])]
    if len(anchors) != 1:
        return head if not anchors else [i for i in head if objs[i] not in anchors] or head
    return [i for i in head if relation(parsed["rel"], objs[i], anchors[0], side) is not False]
