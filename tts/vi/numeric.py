"""Rules for numbers with a meaning (scores, ranges, operators, Roman numerals, units and money, codes of
letters and digits, fractions, ordinals, counts per unit, lists) and plain numbers; and the order of every
rule with digits (:data:`NUMERIC_RULES`), whose other rules live in :mod:`tts.vi.identifiers` (phones,
plates, document numbers), :mod:`tts.vi.clock` (weekdays, times) and :mod:`tts.vi.dates`.

Each rule is ``(text, dialect) -> text`` and runs in the order of :data:`NUMERIC_RULES`;
earlier rules turn their digits into words so later ones never see them.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from tts.vi.clock import hour_ratio, keyword_numbers, times, weekdays
from tts.vi.context import ends_with, next_words_in, word_alternation
from tts.vi.cues import (
    ADDRESS_BEFORE,
    COUNT_NOUNS,
    DOCUMENT_NAMES,
    HALF_BEFORE,
    PART_OF_WHOLE,
    RANK_ORDINALS,
    ROMAN_CONTEXT,
    ROMAN_ORDINAL_CONTEXT,
    SCORE_BEFORE,
)
from tts.vi.dates import date_ranges, day_month, full_dates, month_years, shared_months
from tts.vi.identifiers import documents, phones, plates, spell
from tts.vi.lexicon import ABBREVIATIONS
from tts.vi.measures import COMPASS, CURRENCY_PREFIX, UNITS, UNITS_ATTACHED
from tts.vi.numbers import (
    NUMBER,
    Dialect,
    read_int,
    read_number_string,
    read_number_token,
    read_ordinal,
    roman_to_int,
)

__all__ = ["NUMERIC_EARLY", "NUMERIC_RULES", "Rule"]

Rule = Callable[[str, Dialect], str]

# ---------------------------------------------------------------- scores, ranges, operators

_RANGE = re.compile(r"(\d(?:[hH]\d{0,2}|g\d\d|%|')?)\s*[-–—]\s*(?=\d)")
# between two measures or times: "5 km – 10 km", "7 giờ - 9 giờ"
_MEASURE_WORDS = "|".join(re.escape(u) for u in sorted({*UNITS, "giờ", "phút", "ngày", "tháng", "năm", "tuổi",
                                                        "độ", "tấn", "tạ", "lít", "mét", "người", "hộ"},
                                                       key=len, reverse=True))
_CODE_RANGE = re.compile(r"(?<![\w])([A-ZĐa-zđ]{1,3})\s?(\d{1,3})\s*[-–]\s*\1\s?(?=\d)")
_KM_RANGE = re.compile(r"(\d)\s*[-–—]\s*(?=K[Mm]\s?\d)")  # Km 5+200 - Km 7+500
_MEASURE_RANGE = re.compile(rf"(\d\s?(?:{_MEASURE_WORDS}))\s*[-–—]\s*(?=\d)")
_SCORE = re.compile(rf"(?i:\b({word_alternation(SCORE_BEFORE)}))(\s+)"
                    r"(\d{1,2})\s*[-–:]\s*(\d{1,2})(?![\d/])")


_COORD = re.compile(r"(?<![\w.,])(\d{1,3}(?:,\d{1,2})?)\s?(?:°\s?([NSEW])|([NSEW]))(?![\w])")
_COORD_PAIR = re.compile(r"(?<=\d)(°?\s?[NS])\s*[-–]\s*(?=\d{1,3}(?:,\d{1,2})?\s?°?\s?[EW]\b)")


def coordinates(text: str, dialect: Dialect) -> str:
    """20,5°N; 117,4°E → hai mươi phẩy năm độ vĩ bắc; …; 22,2N-118,2E → … độ vĩ bắc, … độ kinh đông."""

    def sub(m: re.Match[str]) -> str:
        if not (m[2] or "," in m[1]):
            return m.group(0)  # "5E" alone is no coordinate
        return f"{read_number_token(m[1], dialect)} {COMPASS[m[2] or m[3]]}"

    return _COORD.sub(sub, _COORD_PAIR.sub(r"\1, ", text))


def scores(text: str, dialect: Dialect) -> str:
    """A score is two numbers, not a range: "tỷ số 3-2" → tỷ số ba hai."""
    return _SCORE.sub(lambda m: f"{m[1]}{m[2]}{read_int(int(m[3]), dialect)} {read_int(int(m[4]), dialect)}",
                      text)


def operators(text: str, dialect: Dialect) -> str:
    """Ranges (2021-2025 → đến), + x = ~ > <, and negative numbers."""
    text = _RANGE.sub(r"\1 đến ", text)
    text = _MEASURE_RANGE.sub(r"\1 đến ", text)
    text = _KM_RANGE.sub(r"\1 đến ", text)
    text = _CODE_RANGE.sub(r"\1\2 đến \1", text)  # BĐ2-BĐ3 → BĐ2 đến BĐ3
    for pattern, words in ((r"\s*\+\s*", "cộng"), (r"\s*[x×]\s*", "nhân"), (r"\s*=\s*", "bằng")):
        text = re.sub(rf"(?<=\d){pattern}(?=\d)", f" {words} ", text)
    for sym, words in (("≥", "không dưới"), ("≤", "không quá"), (">", "trên"),  # as an announcer says them
                       ("<", "dưới"), ("~", "khoảng"), ("±", "cộng trừ"), ("#", "số")):
        text = re.sub(rf"{re.escape(sym)}\s*(?=\d)", f" {words} ", text)
    return re.sub(r"(?<![\w\d])[-−](?=\d)", "âm ", text)


# ---------------------------------------------------------------- numbers with meaning

_ROMAN = re.compile(rf"(?i:\b({word_alternation(ROMAN_CONTEXT)}))(\s+)([IVXLC]+)\b")
_ROMAN_AFTER_NUMBER = re.compile(r"(?<![\d.,])(\d+)-(I{2,3}|IV|VI{0,3}|IX|XI{0,3})\b")
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
    """khóa XV → khóa mười lăm; lần thứ I → lần thứ nhất; hạng II → hạng nhì."""

    def sub(m: re.Match[str]) -> str:
        value = roman_to_int(m[3])
        if value is None:
            return m.group(0)
        word = m[1].lower()
        if word == "hạng" and value in RANK_ORDINALS:
            return f"{m[1]}{m[2]}{RANK_ORDINALS[value]}"
        if word in ROMAN_ORDINAL_CONTEXT:
            return f"{m[1]}{m[2]}{read_ordinal(value, dialect)}"
        return f"{m[1]}{m[2]}{read_int(value, dialect)}"

    text = _ROMAN.sub(sub, text)
    return _ROMAN_AFTER_NUMBER.sub(  # RON 95-III → chín mươi lăm ba (a grade after its number)
        lambda m: f"{m[1]} {read_int(v, dialect)}" if (v := roman_to_int(m[2])) else m.group(0), text)


def fractions(text: str, dialect: Dialect) -> str:
    """18/18 xã → mười tám trên mười tám xã; 2/3 số hộ → hai phần ba số hộ; thứ 12/63 → thứ mười hai…"""

    def sub(m: re.Match[str]) -> str:
        a, b = m[1], m[2]
        after = m.string[m.end():]
        if ends_with(m.string[: m.start()], ("thứ",)) and a.isdigit():
            return f"{read_ordinal(int(a), dialect)} trên {read_number_token(b, dialect)}"
        if (a, b) == ("1", "2") and next_words_in(after, HALF_BEFORE):
            return "nửa"  # 1/2 ngày → nửa ngày
        part = (next_words_in(after, PART_OF_WHOLE) or not next_words_in(after, COUNT_NOUNS)) and \
            not ends_with(m.string[: m.start()], ADDRESS_BEFORE)
        if part and a.isdigit() and b.isdigit() and 0 < int(a) < int(b) <= 10:
            return f"{read_int(int(a), dialect)} phần {'tư' if b == '4' else read_int(int(b), dialect)}"
        return f"{read_number_token(a, dialect)} trên {read_number_token(b, dialect)}"

    text = _FRACTION.sub(sub, text)
    return _RATIO.sub(lambda m: f"{read_number_token(m[1], dialect)} trên {read_number_token(m[2], dialect)}",
                      text)


def ordinals(text: str, dialect: Dialect) -> str:
    return _ORDINAL.sub(lambda m: f"{m[1]}{m[2]}{read_ordinal(int(m[3]), dialect)}", text)


_ROAD_LETTER = re.compile(r"(?i:\b(quốc lộ|tỉnh lộ|đường tỉnh|đường huyện|số|nhà|ngõ|kiệt|hẻm|lô|khu|phòng"
                          r"|tổ))(\s+)(\d+)([a-zđ])\b")  # Quốc lộ 15c → … mười lăm xê
_KM_POST = re.compile(r"(?<![\w.,])(?<!\d\s)K[Mm]\s?(?:(số)\s)?(\d+)(?:\s?\+\s?(\d+))?(?![\w.,]?\d)")
_PER_UNIT = re.compile(r"(?<=[^\W\d_])\s?/\s?(m2|m3|m²|m³|km2|km²)(?![\w²³])")
_DONG_AFTER_WORD = re.compile(r"\b(nghìn|ngàn|triệu|tỷ|tỉ|trăm)\s?đ(?=[\s/.,;:!?)]|$)")
_WORD_UNITS = "|".join(map(re.escape, (u for u in _UNIT_WORDS if u not in ("đ", "°"))))
_UNIT_AFTER_WORD = re.compile(rf"\b(nghìn|ngàn|triệu|tỷ|tỉ|trăm|chục|vạn)\s?({_WORD_UNITS})(?![\w²³])")
_DEGREE_LETTER = re.compile(r"\b(độ)\s+([CF])\b")


_HEIGHT = re.compile(r"(?i:\b(cao|dưới|trên|chiều cao|thấp hơn|cao hơn))(\s+)(\d)m(\d{1,2})(?!\w)")


def _said(words: str, dialect: Dialect) -> str:
    """A unit's words in the dialect: "phần nghìn" is "phần ngàn" in the centre and the south."""
    return words if dialect == "north" else words.replace("nghìn", "ngàn")


def units(text: str, dialect: Dialect) -> str:
    """50.000đ → năm mươi nghìn đồng; 13400 m3/s → … mét khối trên giây; Km 12+500 → ki lô mét mười hai
    cộng năm trăm."""
    text = _KM_POST.sub(lambda m: "ki lô mét " + (f"{m[1]} " if m[1] else "")
                        + read_number_string(m[2], dialect)
                        + (f" cộng {read_number_string(m[3], dialect)}" if m[3] else ""), text)
    text = _ROAD_LETTER.sub(lambda m: f"{m[1]}{m[2]}{read_number_string(m[3], dialect)} {spell(m[4])}", text)
    text = _HEIGHT.sub(lambda m: f"{m[1]}{m[2]}{read_int(int(m[3]), dialect)} mét "
                       f"{read_number_string(m[4], dialect)}", text)  # "dưới 1m2" is a height: một mét hai
    text = _PREFIX.sub(lambda m: f"{read_number_token(m[2], dialect)} {CURRENCY_PREFIX[m[1]]}", text)
    text = _UNIT.sub(lambda m: f"{read_number_token(m[1], dialect)} {_said(UNITS[m[2]], dialect)}", text)
    text = _ATTACHED.sub(lambda m: f"{read_number_token(m[1], dialect)} "
                         f"{_said(UNITS_ATTACHED[m[2]], dialect)}", text)
    text = _PER_UNIT.sub(lambda m: f" một {UNITS[m[1]]}", text)
    text = _DONG_AFTER_WORD.sub(r"\1 đồng", text)
    text = _UNIT_AFTER_WORD.sub(lambda m: f"{m[1]} {UNITS[m[2]]}", text)  # 17 triệu m3 → … triệu mét khối
    return _DEGREE_LETTER.sub(lambda m: f"{m[1]} {'xê' if m[2] == 'C' else 'ép'}", text)


def alnum(text: str, dialect: Dialect) -> str:
    """Letters mixed with digits: QL1A → quốc lộ một a; H5N1 → hát năm en một; 4G → bốn giê."""

    def part(p: str) -> str:
        if p.isdigit():
            return read_number_string(p, dialect)
        return ABBREVIATIONS.get(p) or spell(p)

    return _ALNUM.sub(lambda m: " ".join(part(p) for p in re.findall(r"[A-ZĐ]+|\d+", m.group(0))), text)


_PER_ONE = re.compile(r"(?<=[^\W\d_])\s*/\s*1\s+(?=[^\W\d_])")
_WORD_SLASH_NUMBER = re.compile(r"(?<=[^\W\d_])\s*/\s*(?=\d)")


def word_slash_number(text: str, dialect: Dialect) -> str:
    """489,4 ca mắc/100.000 dân → … ca mắc trên một trăm nghìn dân."""
    text = _PER_ONE.sub(" một ", text)  # 2 lần/1 tháng → hai lần một tháng
    return _WORD_SLASH_NUMBER.sub(" trên ", text)


_COUNT_SLASH = re.compile(r"(?<=\d )([^\W\d_]+(?: [^\W\d_]+)?)/([^\W\d_]+)(?![\w/])")
_NAME_NEXT = re.compile(r" [A-ZĐ][a-zà-ỹđ]")  # a street name follows
_COUNTED_NEXT = re.compile(r" (?:[a-zđà-ỹ]|Tổ )")  # a lower-case word follows: not a code


def count_per(text: str, dialect: Dialect) -> str:
    """17 tiêu chí/xã → mười bảy tiêu chí một xã (a count per unit; "xã/phường" alone stays a pause)."""

    def sub(m: re.Match[str]) -> str:
        if m[1].lower() in COUNT_NOUNS and m[2].lower() in COUNT_NOUNS:
            return f"{m[1]} một {m[2]}"
        return m.group(0)

    return _COUNT_SLASH.sub(sub, text)


_COMMA_LIST = re.compile(r"(?<![\w.,])\d{1,3}(?:,\d{1,3}){2,}(?![\w.,]?\d)")


def comma_lists(text: str, dialect: Dialect) -> str:
    """Phường 1,2,3,4,5 → một, hai, ba…: three or more numbers with commas are a list (a decimal has
    one comma; English grouping, 1,000,000, has groups of three digits)."""

    def sub(m: re.Match[str]) -> str:
        parts = m.group(0).split(",")
        if all(len(p) == 3 for p in parts[1:]):
            return m.group(0)
        return ", ".join(parts)

    return _COMMA_LIST.sub(sub, text)


def numbers(text: str, dialect: Dialect) -> str:
    """Plain numbers; a leading zero before a count or a time is not read ("08 tổ dân phố", "từ 07 giờ")."""

    def sub(m: re.Match[str]) -> str:
        token = m[1]
        if len(token) == 2 and token[0] == "0" and token[1] != "0" and not ends_with(
                m.string[: m.start()], DOCUMENT_NAMES) and (
                _COUNTED_NEXT.match(m.string, m.end()) or next_words_in(m.string[m.end():], COUNT_NOUNS) or (
                    ends_with(m.string[: m.start()], ("số",)) and _NAME_NEXT.match(m.string, m.end()))):
            return read_int(int(token), dialect)  # "02 khẩu trang", "số 04 Phạm Ngọc Thạch": a count, a house
        return read_number_token(token, dialect)

    return _PLAIN.sub(sub, text)


# (name, rule): the name is what ``loaphuong normalize --explain`` shows for a span.
NUMERIC_EARLY: tuple[tuple[str, Rule], ...] = (("document number", documents),)
NUMERIC_RULES: tuple[tuple[str, Rule], ...] = (
    ("phone or service number", phones),
    ("coordinates", coordinates),
    ("list of numbers", comma_lists),
    ("hours ratio", hour_ratio),
    ("vehicle plate", plates),
    ("weekday", weekdays),
    ("score", scores),
    ("date range", date_ranges),
    ("shared month", shared_months),
    ("full date", full_dates),
    ("month and year", month_years),
    ("day and month", day_month),
    ("range or operator", operators),
    ("day or month number", keyword_numbers),
    ("time", times),
    ("roman numeral", romans),
    ("unit or money", units),
    ("letters and digits", alnum),
    ("ratio or fraction", fractions),
    ("ordinal", ordinals),
    ("per", word_slash_number),
    ("count per unit", count_per),
    ("number", numbers),
)
