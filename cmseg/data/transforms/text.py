"""Sentence edits that follow a geometric transform (left and right swap under a flip)."""

from __future__ import annotations

import re

_LEFT_RIGHT = re.compile(r"\b(left|right)(most|wards?|hand)?\b", re.IGNORECASE)


def _swap_word(match: re.Match[str]) -> str:
    root, suffix = match.group(1), match.group(2) or ""
    new = "right" if root.lower() == "left" else "left"
    if root.isupper():
        new = new.upper()
    elif root[0].isupper():
        new = new.capitalize()
    return new + suffix


def swap_left_right(text: str) -> str:
    """Swap the words left and right in a referring sentence, preserving case.

    Whole words only, with the suffixes "most", "ward(s)" and "hand": "the leftmost cat, Left
    of the dog" -> "the rightmost cat, Right of the dog"; "bright" and "copyright" are kept.
    """
    return _LEFT_RIGHT.sub(_swap_word, text)
