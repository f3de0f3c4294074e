"""The evaluation set of issue 15 (tests/tts/corpus/unseen/): bulletin sentences written in the style
of ward notices and provincial news, kept apart from the tuned and held-out corpus and from every
case test, and never tuned on — no rule was written or changed to fix one of them. It measures how
well the normaliser reads text nobody here has seen; docs/speech.md gives the score, measured when
the set was written (before any rule of that round) and now.

Every sentence must leave nothing unread (no digit, no stray symbol) in all dialects; the share read
exactly as expected must stay at or above the score measured when the set was written.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tts.vi import normalize

UNSEEN = Path(__file__).parent / "corpus" / "unseen"
STRAY = re.compile(r"[0-9/\\%&@#+=<>~^_|*$€°–—′″]|(?<!\w)-|-(?!\w)")
FLOOR = 138 / 149  # measured when the set was written, before any fix of that round


def _rows(folder: Path, pattern: str) -> list[tuple[str, str]]:
    rows = []
    for path in sorted(folder.glob(pattern)):
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip() and not line.startswith("#"):
                written, spoken = line.split("\t")
                rows.append((written, spoken))
    return rows


ROWS = _rows(UNSEEN, "*.tsv")


def test_the_set_is_large_and_apart_from_the_tuned_sentences() -> None:
    tuned = {w for w, _ in _rows(UNSEEN.parent, "*.tsv") + _rows(UNSEEN.parent / "heldout", "*.tsv")}
    cases = (Path(__file__).parent / "test_normalize_cases.py").read_text(encoding="utf-8")
    assert len(ROWS) >= 140 and len({w for w, _ in ROWS}) == len(ROWS)
    assert not tuned & {w for w, _ in ROWS}
    assert not [w for w, _ in ROWS if w in cases]


def test_unseen_sentences_read_as_an_announcer_at_least_as_well_as_measured() -> None:
    wrong = [(w, normalize(w).text, s) for w, s in ROWS if normalize(w).text != s]
    score = 1 - len(wrong) / len(ROWS)
    assert score >= FLOOR - 1e-9, f"{score:.3f} < {FLOOR:.3f}: {wrong}"


@pytest.mark.parametrize("dialect", ["north", "central", "south"])
def test_unseen_sentences_leave_no_digit_or_symbol(dialect: str) -> None:
    for written, _ in ROWS:
        out = normalize(written, dialect=dialect).text  # type: ignore[arg-type]
        assert not STRAY.search(out), f"{written!r} → {out!r}"
