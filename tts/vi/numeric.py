"""Rules for everything with digits: phones, plates, document numbers, dates, times,
ranges, fractions, ordinals, units and plain numbers.

Each rule is ``(text, dialect) -> text`` and runs in the order of :data:`NUMERIC_RULES`;
earlier rules turn their digits into words so later ones never see them.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from tts.vi.lexicon import (
    ABBREVIATIONS,
    CURRENCY_PREFIX,
    DATE_CONTEXT,
    DOC_CODES,
    LETTERS,
    PHONE_CONTEXT,
    ROMAN_CONTEXT,
    UNITS,
    UNITS_ATTACHED,
    VOWELS,
)
from tts.vi.numbers import (
    Dialect,
    read_decimal,
    read_digits,
    read_int,
    read_number_string,
    read_ordinal,
    roman_to_int,
)

__all__ = ["NUMBER", "NUMERIC_RULES", "read_number_token", "spell"]

Rule = Callable[[str, Dialect], str]

NUMBER = (
    r"\d{1,3}(?:\.\d{3})+(?!\d)(?:,\d+)?"  # 6.665 / 1.234,5
    r"|\d{1,3}(?:,\d{3}){2,}(?!\d)"  # 1,000,000 (English style, two or more groups)
    r"|\d+(?:\.\d+)+"  # 4.0 → bốn chấm không
    r"|\d+,\d+"  # 99,3
    r"|\d+"
)
_THOUSANDS = re.compile(r"\d{1,3}(?:\.\d{3})+(?:,\d+)?")
_LONG_PLAIN = 10  # a plain digit string this long is an id: read digit by digit


def _words(pattern: str) -> str:
    return "|".join(re.escape(w).replace(r"\ ", r"\s+") for w in sorted(pattern.split("|"), key=len,
                                                                        reverse=True))


def spell(letters: str) -> str:
    """Vietnamese letter names: ``VNPT`` → ``vê en pê tê``."""
    return " ".join(LETTERS.get(ch.upper(), ch) for ch in letters)


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


def _ends_with(before: str, words: tuple[str, ...]) -> bool:
    tail = before.rstrip(" ,(:").lower()
    return any(tail.endswith(w) and (len(tail) == len(w) or not tail[-len(w) - 1].isalnum()) for w in words)


# ---------------------------------------------------------------- phones, plates, documents

_PHONE = re.compile(r"(?<![\w.,/+])(\+84|\(0\d{1,3}\)|0)([\s.\-]?\d){6,10}(?![\w.,]?\d)")
_HOTLINE = re.compile(r"(?<![\w.,])1[89]00(?:[\s.]?\d{2,4}){1,3}(?![\w.,]?\d)")
_SERVICE = re.compile(rf"(?i:\b({_words('|'.join(PHONE_CONTEXT))}))(\s*:?\s*)"
                      r"(\d{3,5}(?:\s*(?:,|hoặc|và)\s*\d{3,5})*)(?![\w.,]?\d)")


def _digit_groups(raw: str) -> str:
    groups = [g for g in re.split(r"[\s.\-()]+", raw) if g]
    if len(groups) == 1 and len(groups[0]) >= 9:  # unseparated: 4-3-3 (or 4-3-4)
        d = groups[0]
        groups = [d[:4], d[4:7], d[7:]]
    return ", ".join("cộng " + read_digits(g) if g.startswith("+") else read_digits(g) for g in groups)


def phones(text: str, dialect: Dialect) -> str:
    def phone(m: re.Match[str]) -> str:
        digits = re.sub(r"\D", "", m.group(0))
        if not 9 <= len(digits) <= 12 or (len(digits) < 10 and not m.group(1).startswith("(")):
            return m.group(0)
        return _digit_groups(m.group(0).replace("+84", "+84 "))

    text = _PHONE.sub(phone, text)
    text = _HOTLINE.sub(lambda m: _digit_groups(m.group(0)), text)
    return _SERVICE.sub(lambda m: m.group(1) + m.group(2) + re.sub(r"\d+", lambda d: read_digits(d.group(0)),
                                                                   m.group(3)), text)


_PLATE = re.compile(r"\b(\d{2})([A-Z]{1,2}\d?)\s?-\s?(\d{3}\.\d{2}|\d{4,5})(?![\w.,]?\d)")


def plates(text: str, dialect: Dialect) -> str:
    def plate(m: re.Match[str]) -> str:
        series = " ".join(spell(p) if p.isalpha() else read_digits(p) for p in re.findall(r"[A-Z]+|\d", m[2]))
        return f"{read_int(int(m[1]), dialect)} {series}, {read_digits(m[3])}"

    return _PLATE.sub(plate, text)


_DOC = re.compile(r"(?<![\w/.,])(\d+)((?:/\d{4})?)/([A-ZĐ][A-Za-zĐđ&]*(?:[-–][A-ZĐ][A-Za-zĐđ&]*)*)(?![\w/])")


def _code(part: str) -> str:
    if part in DOC_CODES:
        return DOC_CODES[part]
    if not any(ch in VOWELS for ch in part.upper()):
        return spell(part)
    return part


def documents(text: str, dialect: Dialect) -> str:
    def doc(m: re.Match[str]) -> str:
        if len(m[3]) < 2:
            return m.group(0)
        year = f" trên {read_int(int(m[2][1:]), dialect)}" if m[2] else ""
        codes = " ".join(_code(p) for p in re.split(r"[-–]", m[3]))
        return f"{read_number_string(m[1], dialect)}{year} trên {codes}"

    return _DOC.sub(doc, text)


# ---------------------------------------------------------------- dates, times, ranges

_FULL_DATE = re.compile(r"(?<![\d/.\-,])(\d{1,2})([/.\-])(\d{1,2})\2(\d{4})(?![\d/.\-]?\d)")
_QUARTER = re.compile(r"(?i:\b(quý))\s+(IV|I{1,3}|[1-4])\s*[/\-]\s*(\d{4})\b")
_MONTH_YEAR = re.compile(r"(?<![\d/.,])(?:(?i:(tháng))\s+)?(\d{1,2})/(\d{4})(?![\d/])")
_MONTH_YEAR_DASH = re.compile(r"(?i:\b(tháng))\s+(\d{1,2})[\-.](\d{4})\b")
_DAY_MONTH = re.compile(r"(?<![\d/.,])(\d{1,2})/(\d{1,2})(?![\d/])")
_DAY_WORD = ("ngày", "mùng", "mồng")
_KEYWORD_NUMBER = re.compile(r"(?i:\b(ngày|mùng|mồng|tháng))(\s+)(\d{1,2})\b(?![.,/:\-]\d)")
_RANGE = re.compile(r"(\d(?:[hH]\d{0,2}|g\d\d|%|')?)\s*[-–—]\s*(?=\d)")
_MINUTES = r"([0-5]\d)(?:\s?(?:phút|ph|p)(?!\w)|')?"
# 7h, 7h30, 7H30', 17g30 (a bare "7g" is seven grams)
_TIME_H = re.compile(rf"(?<![\w.,])([01]?\d|2[0-4])(?:\s?[hH](?:{_MINUTES})?|g{_MINUTES})(?!\w)")
_TIME_COLON = re.compile(r"(?<![\w.,:])([01]?\d|2[0-4]):([0-5]\d)(?::([0-5]\d))?(?![\w:])")


def _month(m: int, dialect: Dialect) -> str:
    return "tư" if m == 4 else read_int(m, dialect)


def _date(day: int, month: int, year: int | None, before: str, dialect: Dialect) -> str:
    lead = "" if _ends_with(before, _DAY_WORD) else "ngày "
    out = f"{lead}{read_int(day, dialect)} tháng {_month(month, dialect)}"
    return out + (f" năm {read_int(year, dialect)}" if year is not None else "")


_WEEKDAY_RANGE = re.compile(r"\b(T[2-7]|CN)\s*[-–]\s*(T[2-7]|CN)\b")
_WEEKDAY = re.compile(r"\b(T[2-7]|CN)\b(?=\s*[,(]?\s*(?:ngày\s+)?\d{1,2}/\d{1,2})")
_DATE_RANGE = re.compile(r"(?<![\d/.,])(\d{1,2}/\d{1,2})\s*[-–]\s*(?=\d{1,2}/\d{1,2}(?![\d/]))")


def _weekday(token: str, dialect: Dialect) -> str:
    return "chủ nhật" if token == "CN" else f"thứ {read_ordinal(int(token[1]), dialect)}"


def weekdays(text: str, dialect: Dialect) -> str:
    """T2-T6 → thứ hai đến thứ sáu; "CN 22/11" → chủ nhật 22/11 (T5, CN only before a date)."""
    text = _WEEKDAY_RANGE.sub(lambda m: f"{_weekday(m[1], dialect)} đến {_weekday(m[2], dialect)}", text)
    return _WEEKDAY.sub(lambda m: _weekday(m[1], dialect), text)


def dates(text: str, dialect: Dialect) -> str:
    def full(m: re.Match[str]) -> str:
        d, mo = int(m[1]), int(m[3])
        if not (1 <= d <= 31 and 1 <= mo <= 12):
            return m.group(0)
        return _date(d, mo, int(m[4]), m.string[: m.start()], dialect)

    def quarter(m: re.Match[str]) -> str:
        q = roman_to_int(m[2]) or int(m[2])
        return f"{m[1]} {read_int(q, dialect)} năm {read_int(int(m[3]), dialect)}"

    def month_year(m: re.Match[str]) -> str:
        mo, year = int(m[2]), int(m[3])
        if not (1 <= mo <= 12 and 1900 <= year <= 2100) or _ends_with(m.string[: m.start()], ("số",)):
            return m.group(0)
        return f"{m[1] or 'tháng'} {_month(mo, dialect)} năm {read_int(year, dialect)}"

    last_end = -100

    def day_month(m: re.Match[str]) -> str:
        nonlocal last_end
        d, mo = int(m[1]), int(m[2])
        before, after = m.string[: m.start()], m.string[m.end():]
        chained = m.start() - last_end < 12 and re.fullmatch(r"\s*(?:,|và|-|–|đến|tới)\s*",
                                                               m.string[last_end: m.start()])
        ahead = re.match(r"\s*(?:-|–|đến|tới)\s*\d{1,2}/\d{1,2}(?!\d)", after)
        if not (1 <= d <= 31 and 1 <= mo <= 12) or not (_ends_with(before, DATE_CONTEXT) or chained or ahead):
            return m.group(0)
        last_end = m.end()
        return _date(d, mo, None, before, dialect)

    text = _FULL_DATE.sub(full, text)
    text = _DATE_RANGE.sub(r"\1 đến ", text)
    text = _QUARTER.sub(quarter, text)
    text = _MONTH_YEAR_DASH.sub(month_year, text)
    text = _MONTH_YEAR.sub(month_year, text)
    return _DAY_MONTH.sub(day_month, text)


def keyword_numbers(text: str, dialect: Dialect) -> str:
    """``ngày 05`` → ``ngày năm``; ``tháng 4`` → ``tháng tư`` (not after a count: "3 tháng 4 ngày")."""

    def sub(m: re.Match[str]) -> str:
        n, word = int(m[3]), m[1].lower()
        if re.search(r"\d\s*$", m.string[: m.start()]) or n == 0 or n > (12 if word == "tháng" else 31):
            return m.group(0)
        return f"{m[1]}{m[2]}{_month(n, dialect) if word == 'tháng' else read_int(n, dialect)}"

    return _KEYWORD_NUMBER.sub(sub, text)


def _clock(h: int, mi: int, s: int, dialect: Dialect) -> str:
    out = f"{read_int(h, dialect)} giờ"
    if mi:
        out += f" {read_int(mi, dialect)} phút"
    if s:
        out += f" {read_int(s, dialect)} giây"
    return out


def times(text: str, dialect: Dialect) -> str:
    text = _TIME_H.sub(lambda m: _clock(int(m[1]), int(m[2] or m[3] or 0), 0, dialect), text)
    return _TIME_COLON.sub(lambda m: _clock(int(m[1]), int(m[2]), int(m[3] or 0), dialect), text)


def operators(text: str, dialect: Dialect) -> str:
    """Ranges (2021-2025 → đến), + x = ~ > <, and negative numbers."""
    text = _RANGE.sub(r"\1 đến ", text)
    for pattern, words in ((r"\s*\+\s*", "cộng"), (r"\s*[x×]\s*", "nhân"), (r"\s*=\s*", "bằng")):
        text = re.sub(rf"(?<=\d){pattern}(?=\d)", f" {words} ", text)
    for sym, words in (("≥", "lớn hơn hoặc bằng"), ("≤", "nhỏ hơn hoặc bằng"), (">", "lớn hơn"),
                       ("<", "nhỏ hơn"), ("~", "khoảng"), ("±", "cộng trừ"), ("#", "số")):
        text = re.sub(rf"{re.escape(sym)}\s*(?=\d)", f" {words} ", text)
    return re.sub(r"(?<![\w\d])[-−](?=\d)", "âm ", text)


# ---------------------------------------------------------------- numbers with meaning

_ROMAN = re.compile(rf"(?i:\b({_words('|'.join(ROMAN_CONTEXT))}))(\s+)([IVXLC]+)\b")
_FRACTION = re.compile(rf"(?<![\w/.,])({NUMBER})/({NUMBER})(?![\w/])")
_RATIO = re.compile(r"(?<![\w.,:])(\d+):(\d+)(?![\w:])")  # what times() left: 1:500
_ORDINAL = re.compile(r"\b([Tt]hứ)(\s+)(\d+)(?![\d.,]?\d)")
_UNIT_WORDS = sorted(UNITS, key=len, reverse=True)
_UNIT = re.compile(rf"(?<![\w.,])({NUMBER})\s?({'|'.join(map(re.escape, _UNIT_WORDS))})(?![\w²³])")
_ATTACHED = re.compile(rf"(?<![\w.,])({NUMBER})({'|'.join(map(re.escape, UNITS_ATTACHED))})(?!\w)")
_PREFIX = re.compile(rf"([{''.join(map(re.escape, CURRENCY_PREFIX))}])\s?({NUMBER})")
_ALNUM = re.compile(r"(?<![\w])(?=[A-ZĐ0-9]*[A-ZĐ])(?=[A-ZĐ0-9]*\d)[A-ZĐ0-9]{2,12}(?![\w])")
_PLAIN = re.compile(rf"(?<!\d)({NUMBER})")


def romans(text: str, dialect: Dialect) -> str:
    def sub(m: re.Match[str]) -> str:
        value = roman_to_int(m[3])
        return m.group(0) if value is None else f"{m[1]}{m[2]}{read_int(value, dialect)}"

    return _ROMAN.sub(sub, text)


def fractions(text: str, dialect: Dialect) -> str:
    """18/18 → mười tám trên mười tám; 2/3 → hai phần ba; thứ 12/63 → thứ mười hai trên ..."""

    def sub(m: re.Match[str]) -> str:
        a, b = m[1], m[2]
        if _ends_with(m.string[: m.start()], ("thứ",)) and a.isdigit():
            return f"{read_ordinal(int(a), dialect)} trên {read_number_token(b, dialect)}"
        if a.isdigit() and b.isdigit() and 0 < int(a) < int(b) <= 10:
            return f"{read_int(int(a), dialect)} phần {'tư' if b == '4' else read_int(int(b), dialect)}"
        return f"{read_number_token(a, dialect)} trên {read_number_token(b, dialect)}"

    text = _FRACTION.sub(sub, text)
    return _RATIO.sub(lambda m: f"{read_number_token(m[1], dialect)} trên {read_number_token(m[2], dialect)}",
                      text)


def ordinals(text: str, dialect: Dialect) -> str:
    return _ORDINAL.sub(lambda m: f"{m[1]}{m[2]}{read_ordinal(int(m[3]), dialect)}", text)


def units(text: str, dialect: Dialect) -> str:
    text = _PREFIX.sub(lambda m: f"{read_number_token(m[2], dialect)} {CURRENCY_PREFIX[m[1]]}", text)
    text = _UNIT.sub(lambda m: f"{read_number_token(m[1], dialect)} {UNITS[m[2]]}", text)
    return _ATTACHED.sub(lambda m: f"{read_number_token(m[1], dialect)} {UNITS_ATTACHED[m[2]]}", text)


def alnum(text: str, dialect: Dialect) -> str:
    """Letters mixed with digits: QL1A → quốc lộ một a; H5N1 → hát năm en một; 4G → bốn giê."""

    def part(p: str) -> str:
        if p.isdigit():
            return read_number_string(p, dialect)
        return ABBREVIATIONS.get(p) or spell(p)

    return _ALNUM.sub(lambda m: " ".join(part(p) for p in re.findall(r"[A-ZĐ]+|\d+", m.group(0))), text)


def numbers(text: str, dialect: Dialect) -> str:
    return _PLAIN.sub(lambda m: read_number_token(m[1], dialect), text)


NUMERIC_EARLY: tuple[Rule, ...] = (documents,)
NUMERIC_RULES: tuple[Rule, ...] = (
    phones, plates, weekdays, dates, operators, keyword_numbers, times, romans, units, alnum, fractions,
    ordinals, numbers,
)
