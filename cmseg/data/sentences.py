"""What counts as a referring sentence, checked once for every way one comes in.

The JSON-lines reader (:mod:`cmseg.data.formats.jsonl_refs`), ``cmseg predict ris
--sentence`` and the ris task's ``RISPredictor`` (``tasks/ris/predictor.py``) all call
:func:`check_sentence`: a sentence is a ``str`` holding at least one word character (a letter
or digit in any script). An empty, blank or punctuation-only string would reach the text
encoder as nothing but ``<unk>`` and give a mask that answers no question, so it is refused
rather than predicted. A list where one sentence is expected, or a bare ``str`` where a list
is expected (which would otherwise be read character by character), is a ``TypeError``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any, NoReturn

__all__ = ["check_sentence", "check_sentences"]

#: A word character in any script (``\w`` is Unicode-aware: "café", "ベッド", "3").
_WORD = re.compile(r"\w")


def _problem(sentence: Any) -> tuple[type[Exception], str] | None:
    """``(exception type, reason)`` when ``sentence`` is no sentence, else None."""
    if isinstance(sentence, str):
        if not sentence.strip():
            return ValueError, "is empty or blank"
        if not _WORD.search(sentence):
            return ValueError, "has no word (only punctuation or symbols)"
        return None
    if isinstance(sentence, (bytes, bytearray)):
        return TypeError, "must be a str, got bytes (decode it first)"
    if isinstance(sentence, (list, tuple)):
        return TypeError, f"must be one str, got a {type(sentence).__name__} of {len(sentence)}"
    return TypeError, f"must be a str, got {type(sentence).__name__}"


def check_sentence(sentence: Any) -> str:
    """``sentence`` itself when it is a usable referring sentence.

    Raises:
        TypeError: not a ``str`` (a list of sentences, bytes, a number, None...).
        ValueError: empty, blank, or without a single word character (``"?!"``, ``"..."``).
    """
    problem = _problem(sentence)
    if problem is not None:
        shown = f" {sentence!r}" if isinstance(sentence, str) else ""
        _fail(problem, f"sentence{shown}")
    return sentence


def check_sentences(sentences: Any) -> list[str]:
    """``sentences`` as a list, each checked by :func:`check_sentence`.

    Raises:
        TypeError: a bare ``str`` (one sentence, not a list of them), a mapping or a
            non-iterable, or an element that is not a ``str``.
        ValueError: an element that is no sentence (its position is named).
    """
    if isinstance(sentences, (str, bytes, bytearray)):
        raise TypeError(
            f"expected a list of sentences, got one {type(sentences).__name__} "
            f"({sentences[:40]!r}); wrap it in a list"
        )
    if isinstance(sentences, Mapping) or not isinstance(sentences, Iterable):
        raise TypeError(f"expected a list of sentences, got {type(sentences).__name__}")
    items = list(sentences)
    for k, sentence in enumerate(items):
        problem = _problem(sentence)
        if problem is not None:
            shown = f" ({sentence!r})" if isinstance(sentence, str) else ""
            _fail(problem, f"sentence {k + 1} of {len(items)}{shown}")
    return items


def _fail(problem: tuple[type[Exception], str], subject: str) -> NoReturn:
    kind, reason = problem
    raise kind(f"{subject} {reason}")
