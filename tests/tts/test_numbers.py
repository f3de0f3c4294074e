"""Vietnamese number reading: the spec's examples, and a parser that reads every output back."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tts.vi import read_decimal, read_digits, read_int, read_ordinal
from tts.vi.numbers import roman_to_int

SPEC = [
    (21, "hai mươi mốt"), (15, "mười lăm"), (25, "hai mươi lăm"), (24, "hai mươi tư"),
    (105, "một trăm linh năm"), (1_000_000, "một triệu"), (2_500_000_000, "hai tỷ năm trăm triệu"),
    (0, "không"), (10, "mười"), (11, "mười một"), (14, "mười bốn"), (20, "hai mươi"), (41, "bốn mươi mốt"),
    (1000, "một nghìn"), (1001, "một nghìn không trăm linh một"), (1010, "một nghìn không trăm mười"),
    (1_000_000_000, "một tỷ"), (1_000_000_000_000, "một nghìn tỷ"),
    (123_456_789, "một trăm hai mươi ba triệu bốn trăm năm mươi sáu nghìn bảy trăm tám mươi chín"),
]


@pytest.mark.parametrize(("n", "words"), SPEC)
def test_spec_examples(n: int, words: str) -> None:
    assert read_int(n) == words


def test_dialects() -> None:
    assert read_int(105, "south") == "một trăm lẻ năm"
    assert read_int(105, "central") == "một trăm lẻ năm"
    assert read_int(2004, "south") == "hai ngàn không trăm lẻ bốn"
    assert read_decimal("99", "3") == "chín mươi chín phẩy ba"
    assert read_decimal("0", "05") == "không phẩy không năm"
    assert read_decimal("1", "000") == "một phẩy không không không"
    assert read_digits("0912") == "không chín một hai"
    assert [read_ordinal(i) for i in (1, 2, 4, 14)] == ["nhất", "hai", "tư", "mười bốn"]
    assert read_int(-5) == "âm năm"
    assert read_int(10**18) == "một " + "không " * 17 + "không"


def test_roman_numerals() -> None:
    assert [roman_to_int(r) for r in ("I", "IV", "XIII", "XV", "XXI", "MMXXVI")] == [1, 4, 13, 15, 21, 2026]
    assert roman_to_int("IIII") is None and roman_to_int("ABC") is None and roman_to_int("") is None


UNITS = {"không": 0, "một": 1, "mốt": 1, "hai": 2, "ba": 3, "bốn": 4, "tư": 4, "năm": 5, "lăm": 5,
         "sáu": 6, "bảy": 7, "tám": 8, "chín": 9}


def _below_thousand(words: list[str]) -> int:
    value = 0
    if "trăm" in words:
        i = words.index("trăm")
        assert i == 1 and words[0] in UNITS and words[0] not in ("mốt", "tư", "lăm")
        value, words = UNITS[words[0]] * 100, words[2:]
    if not words:
        return value
    if words[0] in ("linh", "lẻ"):
        assert len(words) == 2 and words[1] in ("một", "hai", "ba", "bốn", "năm", "sáu", "bảy", "tám", "chín")
        return value + UNITS[words[1]]
    if words[0] == "mười":
        assert len(words) <= 2 and (len(words) == 1 or words[1] not in ("mốt", "tư", "không", "năm"))
        return value + 10 + (UNITS[words[1]] if len(words) == 2 else 0)
    if len(words) >= 2 and words[1] == "mươi":
        assert words[0] not in ("không", "một") and len(words) <= 3
        unit = words[2] if len(words) == 3 else None
        assert unit not in ("một", "năm", "không")  # "mốt", "lăm" after mươi
        return value + UNITS[words[0]] * 10 + (UNITS[unit] if unit else 0)
    assert len(words) == 1 and words[0] not in ("mốt", "lăm", "tư")
    return value + UNITS[words[0]]


def parse(text: str) -> int:
    """Vietnamese number words back to an integer (strict about the reading rules)."""
    words = text.split()
    if "tỷ" in words:
        i = len(words) - 1 - words[::-1].index("tỷ")
        return parse(" ".join(words[:i])) * 10**9 + (parse(" ".join(words[i + 1:])) if words[i + 1:] else 0)
    total = 0
    for scale, factor in (("triệu", 10**6), ("nghìn", 1000), ("ngàn", 1000)):
        if scale in words:
            i = words.index(scale)
            total += _below_thousand(words[:i]) * factor
            words = words[i + 1:]
    return total + (_below_thousand(words) if words else 0)


@given(st.integers(min_value=0, max_value=10**15 - 1))
def test_every_number_reads_back(n: int) -> None:
    assert parse(read_int(n)) == n


@given(st.integers(min_value=1, max_value=10**12))
def test_southern_reading_reads_back(n: int) -> None:
    words = read_int(n, "south")
    assert "linh" not in words and "nghìn" not in words
    assert parse(words) == n
