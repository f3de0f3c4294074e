"""Split long spoken text into pieces an engine accepts, at the most natural boundary.

Sentence ends first, then clause marks (``,;:``), then spaces; a single word longer than
the limit is cut. Pieces are packed greedily, so a 5,000-character bulletin for a
100-character engine becomes about 50 requests, not one per clause.
"""

from __future__ import annotations

import re

__all__ = ["split_text"]

_LEVELS = (re.compile(r"(?<=[.!?])\s+"), re.compile(r"(?<=[,;:])\s+"), re.compile(r"\s+"))


def _pieces(text: str, limit: int, level: int) -> list[str]:
    if len(text) <= limit:
        return [text]
    if level == len(_LEVELS):
        return [text[i:i + limit] for i in range(0, len(text), limit)]
    parts = [p for p in _LEVELS[level].split(text) if p]
    out: list[str] = []
    for part in parts:
        out.extend(_pieces(part, limit, level + 1) if len(part) > limit else [part])
    return out


def split_text(text: str, limit: int) -> list[str]:
    """Chunks of at most ``limit`` characters whose words, joined by spaces, give ``text`` back."""
    if limit < 1:
        raise ValueError("limit must be positive")
    text = text.strip()
    if not text:
        return []
    chunks: list[str] = []
    for piece in _pieces(text, limit, 0):
        if chunks and len(chunks[-1]) + 1 + len(piece) <= limit:
            chunks[-1] = f"{chunks[-1]} {piece}"
        else:
            chunks.append(piece)
    return chunks
