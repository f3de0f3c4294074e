"""Looking at the words around a match: what a number's neighbours are decides how it is read.

The tables these look for are in :mod:`tts.vi.cues`; the rules that call them are in :mod:`tts.vi.dates`,
:mod:`tts.vi.identifiers`, :mod:`tts.vi.clock`, :mod:`tts.vi.numeric` and :mod:`tts.vi.wording`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

__all__ = ["ends_with", "next_words_in", "word_alternation"]

_NEXT_WORDS = re.compile(r"[ \t]*\(?([^\W\d_]+(?:[ \t]+[^\W\d_]+){0,2})")


def ends_with(before: str, words: tuple[str, ...]) -> bool:
    """Does ``before`` end with one of ``words`` (whole words, ignoring " ,(:")?"""
    tail = before[-40:].rstrip(" ,(:").lower()
    return any(tail.endswith(w) and (len(tail) == len(w) or not tail[-len(w) - 1].isalnum()) for w in words)


def next_words_in(after: str, table: frozenset[str] | tuple[str, ...]) -> bool:
    """Do the next one to three words of ``after`` (same clause) start with an entry of ``table``?"""
    m = _NEXT_WORDS.match(after[:60])
    if not m:
        return False
    words = m.group(1).lower().split()
    return any(" ".join(words[:k]) in table for k in (3, 2, 1) if k <= len(words))


def word_alternation(words: Iterable[str]) -> str:
    """A regex alternation of ``words``, longest first, any run of spaces matching a space."""
    return "|".join(re.escape(w).replace(r"\ ", r"\s+") for w in sorted(words, key=len, reverse=True))
