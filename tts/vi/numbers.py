"""Reading numbers aloud in Vietnamese.

Rules (documented with examples in docs/speech.md):

* units after ``mươi`` (20 and above): 1 → ``mốt``, 4 → ``tư``, 5 → ``lăm``;
  after ``mười`` (10–19): 5 → ``lăm``, otherwise the plain digit (14 → ``mười bốn``);
* a zero tens digit with a non-zero unit under a hundred group reads ``linh``
  (northern) or ``lẻ`` (central/southern): 105 → ``một trăm linh năm``;
* groups after the first non-zero group are read in full, cheque style:
  1.005.000 → ``một triệu không trăm linh năm nghìn``; all-zero groups are skipped;
* thousands ``nghìn`` (northern) or ``ngàn`` (central/southern); ``triệu``; ``tỷ``
  recursively (a thousand billion is ``một nghìn tỷ``).
"""

from __future__ import annotations

import re
from typing import Literal

__all__ = [
    "DIGITS",
    "NUMBER",
    "Dialect",
    "read_decimal",
    "read_digits",
    "read_int",
    "read_number_string",
    "read_number_token",
    "read_ordinal",
    "roman_to_int",
]

Dialect = Literal["north", "central", "south"]

DIGITS = ("không", "một", "hai", "ba", "bốn", "năm", "sáu", "bảy", "tám", "chín")
BILLION = 10**9
MAX_READ = 10**18  # beyond this, digits are read one by one


def _linh(dialect: Dialect) -> str:
    return "linh" if dialect == "north" else "lẻ"


def _thousand(dialect: Dialect) -> str:
    return "nghìn" if dialect == "north" else "ngàn"


def _below_thousand(n: int, *, full: bool, dialect: Dialect) -> list[str]:
    """0 < n < 1000. ``full``: a higher group precedes, so say "không trăm" and "linh"."""
    hundreds, tens, units = n // 100, n // 10 % 10, n % 10
    words: list[str] = []
    if hundreds or full:
        words += [DIGITS[hundreds], "trăm"]
    if tens == 0:
        if units:
            if hundreds or full:
                words.append(_linh(dialect))
            words.append(DIGITS[units])
    elif tens == 1:
        words.append("mười")
        if units:
            words.append("lăm" if units == 5 else DIGITS[units])
    else:
        words += [DIGITS[tens], "mươi"]
        if units:
            words.append({1: "mốt", 4: "tư", 5: "lăm"}.get(units, DIGITS[units]))
    return words


def _below_billion(n: int, *, leading: bool, dialect: Dialect) -> list[str]:
    groups = [(n // 10**6, "triệu"), (n // 1000 % 1000, _thousand(dialect)), (n % 1000, "")]
    words: list[str] = []
    started = not leading
    for value, scale in groups:
        if value == 0:
            continue
        words += _below_thousand(value, full=started, dialect=dialect)
        if scale:
            words.append(scale)
        started = True
    return words


def _words(n: int, *, leading: bool, dialect: Dialect) -> list[str]:
    if n >= BILLION:
        high, low = divmod(n, BILLION)
        words = [*_words(high, leading=leading, dialect=dialect), "tỷ"]
        if low:
            words += _below_billion(low, leading=False, dialect=dialect)
        return words
    return _below_billion(n, leading=leading, dialect=dialect)


def read_int(n: int, dialect: Dialect = "north") -> str:
    """``21`` → ``hai mươi mốt``; ``2_500_000_000`` → ``hai tỷ năm trăm triệu``."""
    if n < 0:
        return "âm " + read_int(-n, dialect)
    if n == 0:
        return DIGITS[0]
    if n >= MAX_READ:
        return read_digits(str(n))
    return " ".join(_words(n, leading=True, dialect=dialect))


def read_digits(digits: str) -> str:
    """Digit by digit: ``0912`` → ``không chín một hai`` (non-digits are skipped)."""
    return " ".join(DIGITS[int(d)] for d in digits if d.isdigit())


def read_number_string(digits: str, dialect: Dialect = "north") -> str:
    """An integer as written: leading zeros are read one by one (``05`` → ``không năm``)."""
    if len(digits) > 1 and digits.startswith("0"):
        return read_digits(digits)
    return read_int(int(digits), dialect)


def read_decimal(integer: str, fraction: str, dialect: Dialect = "north", *, point: str = "phẩy") -> str:
    """``99``, ``3`` → ``chín mươi chín phẩy ba``.

    The fraction is read as a number when it has at most three digits (leading zeros
    each as ``không``: ``0,05`` → ``không phẩy không năm``), else digit by digit.
    """
    head = read_int(int(integer), dialect)
    if len(fraction) > 3:
        tail = read_digits(fraction)
    else:
        stripped = fraction.lstrip("0")
        zeros = ["không"] * (len(fraction) - len(stripped))
        tail = " ".join([*zeros, read_int(int(stripped), dialect)] if stripped else zeros)
    return f"{head} {point} {tail}"


def read_ordinal(n: int, dialect: Dialect = "north") -> str:
    """The word after ``thứ``: 1 → ``nhất``, 4 → ``tư``, else the number."""
    return {1: "nhất", 4: "tư"}.get(n) or read_int(n, dialect)


_ROMAN = {"I": 1, "V": 5, "X": 10, "L": 50, "C": 100, "D": 500, "M": 1000}


def roman_to_int(text: str) -> int | None:
    """Value of a canonical Roman numeral (``XIV`` → 14), else None."""
    if not text or any(ch not in _ROMAN for ch in text):
        return None
    total = 0
    for i, ch in enumerate(text):
        value = _ROMAN[ch]
        nxt = _ROMAN[text[i + 1]] if i + 1 < len(text) else 0
        total += -value if value < nxt else value
    return total if 0 < total < 4000 and _to_roman(total) == text else None


def _to_roman(n: int) -> str:
    out = []
    for value, sym in ((1000, "M"), (900, "CM"), (500, "D"), (400, "CD"), (100, "C"), (90, "XC"),
                       (50, "L"), (40, "XL"), (10, "X"), (9, "IX"), (5, "V"), (4, "IV"), (1, "I")):
        while n >= value:
            out.append(sym)
            n -= value
    return "".join(out)


# A written number: 6.665, 1.234,5, 1,000,000, 4.0, 99,3, 42 (read by read_number_token).
NUMBER = (
    r"\d{1,3}(?:\.\d{3})+(?!\d)(?:,\d+)?"  # 6.665 / 1.234,5
    r"|\d{1,3}(?:,\d{3}){2,}(?!\d)"  # 1,000,000 (English style, two or more groups)
    r"|\d+(?:\.\d+)+"  # 4.0 → bốn chấm không
    r"|\d+,\d+"  # 99,3
    r"|\d+"
)
_THOUSANDS = re.compile(r"\d{1,3}(?:\.\d{3})+(?:,\d+)?")
_LONG_PLAIN = 10  # a plain digit string this long is an id: read digit by digit


def read_number_token(token: str, dialect: Dialect) -> str:
    """Read a token matched by :data:`NUMBER`."""
    if _THOUSANDS.fullmatch(token):
        integer, _, fraction = token.replace(".", "").partition(",")
        return read_decimal(integer, fraction, dialect) if fraction else read_int(int(integer), dialect)
    if token.count(",") >= 2:
        return read_int(int(token.replace(",", "")), dialect)
    if "." in token:
        return " chấm ".join(read_number_string(p, dialect) for p in token.split("."))
    if "," in token:
        integer, fraction = token.split(",")
        return read_decimal(integer, fraction, dialect)
    if len(token) >= _LONG_PLAIN:
        return read_digits(token)
    return read_number_string(token, dialect)
