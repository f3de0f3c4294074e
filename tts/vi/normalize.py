"""Written Vietnamese → what an announcer says.

:func:`normalize` runs, in order: Unicode clean-up (NFC, invisible characters), the
ward's pronunciation dictionary, line structure, web addresses, document numbers,
abbreviations, every rule with digits (:mod:`tts.vi.numeric`), slashes between words,
unknown acronyms, punctuation into pauses. Anything no rule knows is left as written.
"""

from __future__ import annotations

import difflib
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field

from tts.vi.numbers import Dialect
from tts.vi.numeric import NUMERIC_EARLY, NUMERIC_RULES, Rule
from tts.vi.wording import abbreviations, acronyms, apply_dictionary, join_lines, pauses, slashes, tidy, web

__all__ = [
    "DIALECTS", "PIPELINE", "Normalized", "Step", "clean_unicode", "explain", "normalize", "text_warnings",
]

DIALECTS: tuple[Dialect, ...] = ("north", "central", "south")

_COMMON_UNACCENTED = frozenset(
    "thong bao nguoi dan phuong xa ngay thang nam cua va cac cho duoc khong tai tren trong se nhung voi den "
    "tu to chuc hop lich gio sang chieu toi con nhan vien khu vuc thuc hien yeu cau dong chi ke hoach "
    "tiem phong dich benh moi truong ve sinh ho gia dinh".split()
)
_OTHER_SCRIPTS = ("CJK", "HIRAGANA", "KATAKANA", "HANGUL", "CYRILLIC", "GREEK", "ARABIC", "HEBREW", "THAI",
                  "LAO", "KHMER", "DEVANAGARI", "MYANMAR", "TIBETAN", "ETHIOPIC", "GEORGIAN", "ARMENIAN")


@dataclass(frozen=True)
class Normalized:
    """The spoken form, plus what staff should know about the text."""

    text: str
    warnings: tuple[str, ...] = ()
    dictionary_hits: tuple[str, ...] = field(default=())


def clean_unicode(text: str) -> str:
    """NFC; drop control and format characters but keep line breaks; tabs become spaces."""
    text = unicodedata.normalize("NFC", text.replace("\r\n", "\n").replace("\r", "\n"))
    return "".join(
        ch if ch == "\n" or not (unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp") or ch.isspace())
        else (" " if ch.isspace() or unicodedata.category(ch) in ("Zl", "Zp") else "")
        for ch in text
    )


def _script(ch: str) -> str | None:
    try:
        first = unicodedata.name(ch).split()[0]
    except ValueError:
        return None
    return first if first in _OTHER_SCRIPTS else None


def text_warnings(text: str) -> list[str]:
    """Warnings for text the voice will read badly: no diacritics, other scripts."""
    warnings: list[str] = []
    words = re.findall(r"[^\W\d_]+", text)
    latin = [w for w in words if all(_script(ch) is None for ch in w)]
    accented = sum(1 for w in latin if any(ord(ch) > 127 for ch in w))
    plain_vi = sum(1 for w in latin if w.lower() in _COMMON_UNACCENTED)
    if len(latin) >= 5 and accented * 10 < len(latin) and plain_vi * 3 >= len(latin):
        warnings.append(
            "The text looks like Vietnamese typed without diacritics (không dấu): the voice cannot guess "
            "the tones and will read it wrongly. Please retype it with diacritics (có dấu)."
        )
    others = sorted({s for ch in text if (s := _script(ch))})
    if others:
        sample = "".join(ch for ch in text if _script(ch))[:10]
        warnings.append(
            f"The text contains characters in other scripts ({', '.join(s.lower() for s in others)}: "
            f"'{sample}') that a Vietnamese voice cannot read; they are kept but will be skipped or "
            "misread."
        )
    return warnings


# Every rule in order, with the name ``explain`` reports for the spans it changed.
PIPELINE: tuple[tuple[str, Rule], ...] = (
    ("web address", web),
    *NUMERIC_EARLY,
    ("abbreviation", abbreviations),
    *NUMERIC_RULES,
    ("slash between words", slashes),
    ("spelled acronym", acronyms),
    ("pause", pauses),
)


@dataclass(frozen=True)
class Step:
    """One span a rule rewrote: what it read (``written``, as the rule saw it) and what it made of it."""

    rule: str
    written: str
    spoken: str


def _prepare(text: str, dialect: Dialect,
             dictionary: Mapping[str, str] | None) -> tuple[str, list[str], list[str]]:
    if dialect not in DIALECTS:
        raise ValueError(f"dialect must be one of {', '.join(DIALECTS)}, got {dialect!r}")
    text = clean_unicode(text)
    warnings = text_warnings(text)
    hits: list[str] = []
    if dictionary:
        text, hits = apply_dictionary(text, dictionary)
    return join_lines(text), warnings, hits


def normalize(text: str, *, dialect: Dialect = "north",
              dictionary: Mapping[str, str] | None = None) -> Normalized:
    """Turn bulletin text into its spoken form (see the module docstring for the order)."""
    text, warnings, hits = _prepare(text, dialect, dictionary)
    for _, rule in PIPELINE:
        text = rule(text, dialect)
    return Normalized(text=tidy(text), warnings=tuple(warnings), dictionary_hits=tuple(hits))


_TOKEN = re.compile(r"[(\[\"“]|[^\s(\[\"“]+?(?=[.,;:!?)\]\"”]*(?:\s|$))|[.,;:!?)\]\"”]")


def _changes(rule: str, before: str, after: str) -> list[Step]:
    a, b = _TOKEN.findall(before), _TOKEN.findall(after)
    matcher = difflib.SequenceMatcher(a=a, b=b, autojunk=False)
    return [Step(rule, " ".join(a[i1:i2]), " ".join(b[j1:j2]))
            for op, i1, i2, j1, j2 in matcher.get_opcodes() if op != "equal"]


def explain(text: str, *, dialect: Dialect = "north",
            dictionary: Mapping[str, str] | None = None) -> tuple[Normalized, list[Step]]:
    """:func:`normalize`, and which rule rewrote which span (the ward dictionary first), in order.

    A misreading can then be reported precisely ("day and month: 9/9 → ngày chín tháng chín") and
    fixed with a dictionary entry or a table in :mod:`tts.vi.cues`.
    """
    cleaned = clean_unicode(text)
    steps: list[Step] = []
    if dictionary:
        steps += _changes("ward dictionary", cleaned, apply_dictionary(cleaned, dictionary)[0])
    current, warnings, hits = _prepare(text, dialect, dictionary)
    for name, rule in PIPELINE:
        after = rule(current, dialect)
        if after != current:
            steps += [s for s in _changes(name, current, after) if s.written.strip() != s.spoken.strip()]
        current = after
    return Normalized(text=tidy(current), warnings=tuple(warnings), dictionary_hits=tuple(hits)), steps
