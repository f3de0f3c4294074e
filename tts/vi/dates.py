"""Dates: whether d/m is a date or a ratio, shared months and years, date ranges.

The decision for a bare ``a/b`` (:func:`is_date`, see docs/speech.md) looks at the words around it:

1. not a valid day and month → a ratio;
2. an address word right before it ("số", "hẻm", "ngõ"…) → a house number (mười hai trên ba);
   "ngày/mùng/mồng", a holiday name or a street/school word ("đường 3/2") → a date;
3. a > b → a date (it cannot be "a out of b"), except ``24/7`` (round the clock);
4. a count noun or a part of a whole after it (:data:`cues.COUNT_NOUNS`, ``PART_OF_WHOLE``) → a ratio,
   outweighing a weaker date word before it ("kết nối đến 9/9 xã, phường" → chín trên chín xã);
5. a date word, weekday or "mai/nay/chậm nhất…" before it, "âm lịch" after it, or chained to
   another date (``10/12 và 15/12``, ``1/12 đến 15/12/2026``) → a date;
6. otherwise a ratio (read by :func:`tts.vi.numeric.fractions`: "phần" only for a part of a whole).
"""

from __future__ import annotations

import re

from tts.vi.context import ends_with, next_words_in, word_alternation
from tts.vi.cues import (
    ADDRESS_BEFORE,
    COUNT_NOUNS,
    DATE_AFTER,
    DATE_BEFORE,
    DATE_CONTEXT,
    DAY_LEAD,
    HOLIDAYS,
    NAME_BEFORE,
    PART_OF_WHOLE,
    SEQUENCE_YEAR_BEFORE,
    WEEKDAY_WORDS,
)
from tts.vi.numbers import Dialect, read_int, read_ordinal, roman_to_int

__all__ = [
    "date_ranges",
    "dates",
    "day_month",
    "full_dates",
    "month_word",
    "month_years",
    "shared_months",
]

_BEFORE_CUES = tuple(sorted({*DATE_CONTEXT, *DATE_BEFORE, *HOLIDAYS, *WEEKDAY_WORDS}, key=len, reverse=True))
_CHAIN_WORDS = frozenset({"đến", "tới", "và", "hoặc", "từ", "hết", "ngày"})
_STRONG_BEFORE = tuple(sorted({"ngày", "mùng", "mồng", "các ngày", *HOLIDAYS}, key=len, reverse=True))
_DAY_NAME = re.compile(r"\bNgày(?: [^\W\d_]+){0,7} [A-ZĐ][^\W\d_]*\s*$")  # … Việt Nam 21/4
_NAMED_DAYS = ("ngày mai", "ngày hôm nay", "ngày hôm qua", "hôm nay", "hôm qua", "ngày kia")
_DURATION = frozenset({"lần", "giờ", "tiếng", "ngày", "tuần", "tháng", "năm", "phút", "buổi", "ca", "lượt"})


def month_word(m: int, dialect: Dialect) -> str:
    return "tư" if m == 4 else read_int(m, dialect)


def _lead(before: str) -> str:
    """ "ngày " unless one is written: "ngày 2/9", "Quốc khánh 2/9" (not "Quốc khánh (2/9/1945…)")."""
    bracketed = before.rstrip()[-1:] in ("(", ",")
    if bracketed and ends_with(before, _NAMED_DAYS):
        return "ngày "  # "ngày mai (17/12)" → ngày mai, ngày mười bảy tháng mười hai
    if ends_with(before, DAY_LEAD) or ends_with(before, NAME_BEFORE):
        return ""  # "ngày 2/9"; "đường 3/2" is a name: đường ba tháng hai
    tail = re.split(r"[,.;:()!?]", before[-40:])[-1].lower().split()[-3:]
    if "ngày" in tail[:-1] and tail[-1] not in _CHAIN_WORDS and not any(c.isdigit() for w in tail for c in w):
        return ""  # "Ngày bầu cử 15/3/2026"
    if _DAY_NAME.search(re.split(r"[,.;:()!?]", before[-70:])[-1]):
        return ""  # "Ngày Sách và Văn hóa đọc Việt Nam 21/4": the name of a day, then its date
    return "" if ends_with(before, HOLIDAYS) and not bracketed else "ngày "


def _date(day: int, month: int, year: int | None, before: str, dialect: Dialect) -> str:
    out = f"{_lead(before)}{read_int(day, dialect)} tháng {month_word(month, dialect)}"
    return out + (f" năm {read_int(year, dialect)}" if year is not None else "")


def _valid(d: int, m: int) -> bool:
    return 1 <= d <= 31 and 1 <= m <= 12


# ---------------------------------------------------------------- before the date rules

# 2h/21/7 (hydrology bulletins) → 2h ngày 21/7
_TIME_SLASH = re.compile(r"(?<![\d/])(\d{1,2}[hg](?:\d\d)?)\s*/\s*(?=\d{1,2}/\d{1,2}(?![\d]))")
# 27/7/1947-27/7/2023, 15/8-16/8/2025 → … đến …
_DASH_DATES = re.compile(r"(?<![\d/.,])(\d{1,2}/\d{1,2}(?:/\d{4})?)\s*[-–—]\s*(?=\d{1,2}/\d{1,2}(?![\d]))")
# từ 1-7 đến 10-9 → từ 1/7 đến 10/9
_DASH_PAIR_RANGE = re.compile(r"(?<![\d/.,\-])(\d{1,2})-(\d{1,2})(\s+(?:đến|tới)\s+(?:hết\s+)?(?:ngày\s+)?)"
                              r"(\d{1,2})-(\d{1,2})(?![\d/\-.,]?\d)")
# chiều 14-8, ngày 17-2 → chiều 14/8 (after a word that only a date follows)
_DASH_DAY = re.compile(r"(?i:\b(ngày|mùng|mồng|sáng|trưa|chiều|tối|đêm|hôm|mai|nay|hết|qua|muộn|khuya|sớm"
                       r"|tính đến))"
                       r"(\s*\(?\s*)(\d{1,2})[-.](\d{1,2})(?![\d/\-.,]?\d)")  # "hôm qua 2.6", "nay (16.3)"


_DASH_HOLIDAY = re.compile(rf"(?i:\b({word_alternation(h for h in HOLIDAYS if ' ' in h)}))(\s+)"
                           r"(\d{1,2})-(\d{1,2})(?![\d/\-.,]?\d)")


def date_ranges(text: str, dialect: Dialect) -> str:
    """Dashes between dates are "đến"; 2h/21/7 is "2h ngày 21/7"; d-m after a day word is d/m."""
    text = _TIME_SLASH.sub(r"\1 ngày ", text)
    text = _DASH_DATES.sub(r"\1 đến ", text)

    def pair(m: re.Match[str]) -> str:
        if not (_valid(int(m[1]), int(m[2])) and _valid(int(m[4]), int(m[5]))) or \
                next_words_in(m.string[m.end():], COUNT_NOUNS):
            return m.group(0)
        return f"{m[1]}/{m[2]}{m[3]}{m[4]}/{m[5]}"

    def dash_day(m: re.Match[str]) -> str:
        d, mo = int(m[3]), int(m[4])
        after = m.string[m.end():]
        if not _valid(d, mo) or next_words_in(after, COUNT_NOUNS | _DURATION) or \
                after.lstrip()[:1] == "%" or ends_with(m.string[: m.start()], ("mỗi",)):  # mỗi ngày 3-4 lần
            return m.group(0)
        return f"{m[1]}{m[2]}{m[3]}/{m[4]}"

    text = _DASH_PAIR_RANGE.sub(pair, text)
    text = _DASH_HOLIDAY.sub(lambda m: f"{m[1]}{m[2]}{m[3]}/{m[4]}" if _valid(int(m[3]), int(m[4]))
                             else m.group(0), text)  # "Quốc khánh 2-9" is a date
    return _DASH_DAY.sub(dash_day, text)


# ---------------------------------------------------------------- shared months: ngày 3-4/12, 5 và 6/12

_DAY_SEP = r"\s*(?:[-–]\s*(?:và\s+)?|,\s*|và\s+|(?:đến|tới)\s+(?:hết\s+)?(?:ngày\s+)?)\s*"
_SHARED = re.compile(
    rf"(?<![\d/.,:\-–])(\d{{1,2}}(?:{_DAY_SEP}\d{{1,2}})+)\s*([/-])\s*(\d{{1,2}})(?:\2(\d{{4}}))?(?![\d/]|[.,]\d)"
)
_DAY_SPLIT = re.compile(rf"({_DAY_SEP})")


def _spoken_sep(sep: str) -> str:
    s = " ".join(sep.replace("–", "-").split())
    s = s.replace("- và", "và")
    return {"-": "đến", ",": ","}.get(s, s)


def shared_months(text: str, dialect: Dialect) -> str:
    """``ngày 3-4/12`` → ngày ba đến bốn tháng mười hai; the month (and year) belong to every day."""

    def sub(m: re.Match[str]) -> str:
        parts = _DAY_SPLIT.split(m[1])
        days, seps = [int(p) for p in parts[0::2]], parts[1::2]
        month, year = int(m[3]), (int(m[4]) if m[4] else None)
        before, after = m.string[: m.start()], m.string[m.end():]
        dash_month = m[2] == "-"
        strong = ends_with(before, _STRONG_BEFORE)
        if not all(_valid(d, month) for d in days) or \
                (not strong and next_words_in(after, COUNT_NOUNS | _DURATION)):
            return m.group(0)
        if dash_month and any(s.strip().startswith(("-", "–")) for s in seps):
            return m.group(0)  # 1-7-10 is no shared month
        if not (ends_with(before, _BEFORE_CUES) or year is not None):
            return m.group(0)
        out = [_lead(before) + read_int(days[0], dialect)]
        for sep, day in zip(seps, days[1:], strict=True):
            spoken = _spoken_sep(sep)
            out.append(("," if spoken == "," else " " + spoken) + " " + read_int(day, dialect))
        tail = f" tháng {month_word(month, dialect)}" + (f" năm {read_int(year, dialect)}" if year else "")
        return "".join(out) + tail

    return _SHARED.sub(sub, text)


# ---------------------------------------------------------------- full dates, quarters, month/year

_FULL_DATE = re.compile(r"(?<![\d/.,])(\d{1,2})([/.\-])(\d{1,2})\2 ?(\d{4})(?![\d/.\-]?\d)")
_TIME_NEXT = re.compile(r"\s+\d{1,2}(?::\d\d|[hg]\d\d)")
_QUARTER = re.compile(r"(?i:\b(quý))\s+(IV|I{1,3}|[1-4])\s*[/\-]\s*(\d{4})\b")
_MONTH_YEAR = re.compile(r"(?<![\d/.,])(?:(?i:(tháng))\s+)?(\d{1,2})/(\d{4})(?![\d/])")
_MONTH_YEAR_DASH = re.compile(r"(?i:\b(tháng))\s+(\d{1,2})[\-.](\d{4})\b")


def full_dates(text: str, dialect: Dialect) -> str:
    def full(m: re.Match[str]) -> str:
        d, mo = int(m[1]), int(m[3])
        if not _valid(d, mo):
            return m.group(0)
        pause = "," if _TIME_NEXT.match(m.string, m.end()) else ""  # "… năm hai nghìn, mười một giờ"
        return _date(d, mo, int(m[4]), m.string[: m.start()], dialect) + pause

    return _FULL_DATE.sub(full, text)


def month_years(text: str, dialect: Dialect) -> str:
    def quarter(m: re.Match[str]) -> str:
        q = roman_to_int(m[2]) or int(m[2])
        return f"{m[1]} {read_int(q, dialect)} năm {read_int(int(m[3]), dialect)}"

    def month_year(m: re.Match[str]) -> str:
        mo, year = int(m[2]), int(m[3])
        if not m[1] and ends_with(m.string[: m.start()], SEQUENCE_YEAR_BEFORE) and 1900 <= year <= 2100:
            ordinal = ends_with(m.string[: m.start()], ("thứ",))  # lần thứ 2/2026, khóa 2/2026
            return f"{(read_ordinal if ordinal else read_int)(mo, dialect)} năm {read_int(year, dialect)}"
        if not (1 <= mo <= 12 and 1900 <= year <= 2100) or ends_with(m.string[: m.start()], ("số",)) or \
                (not m[1] and next_words_in(m.string[m.end():], COUNT_NOUNS)):
            return m.group(0)  # "1/2000 hộ" is a ratio
        return f"{m[1] or 'tháng'} {month_word(mo, dialect)} năm {read_int(year, dialect)}"

    text = _QUARTER.sub(quarter, text)
    text = _MONTH_YEAR_DASH.sub(month_year, text)
    return _MONTH_YEAR.sub(month_year, text)


# ---------------------------------------------------------------- d/m: date or ratio

_DAY_MONTH = re.compile(r"(?<![\d/.,])(\d{1,2})/(\d{1,2})(?![\d/]|[.,]\d)")
_CHAIN = re.compile(r"\s*(?:,|và|-|–|đến|tới|đến hết|hoặc)\s*(?:ngày\s+)?")
_AHEAD = re.compile(r"\s*(?:-|–|đến|tới|và|,)\s*(?:hết\s+)?(?:ngày\s+)?\d{1,2}/\d{1,2}(?!\d)"
                    r"|\s*(?:đến|tới)\s+(?:hết\s+)?ngày\s+[^\W\d_]")  # … đến ngày mười lăm tháng mười hai


def is_date(d: int, mo: int, before: str, after: str, *, chained: bool = False) -> bool:
    """The decision of the module docstring for ``d/mo`` between ``before`` and ``after``."""
    if not _valid(d, mo) or ends_with(before, ADDRESS_BEFORE):
        return False  # "số 12/3 đường Lê Lợi" is a house number
    if ends_with(before, _STRONG_BEFORE) or ends_with(before, NAME_BEFORE):
        return True  # "ngày 9/9" is a date whatever follows
    if d > mo and (d, mo) != (24, 7):
        return True  # a > b cannot be "a out of b" ("phục vụ 24/7" is round the clock)
    if next_words_in(after, COUNT_NOUNS) or next_words_in(after, PART_OF_WHOLE):
        return False  # "có tới 3/4 số hộ" is a part of a whole, whatever came before
    return chained or ends_with(before, _BEFORE_CUES) or next_words_in(after, DATE_AFTER) or \
        bool(_AHEAD.match(after))


def day_month(text: str, dialect: Dialect) -> str:
    last_end = -100

    def sub(m: re.Match[str]) -> str:
        nonlocal last_end
        d, mo = int(m[1]), int(m[2])
        before, after = m.string[: m.start()], m.string[m.end():]
        chained = m.start() - last_end < 16 and bool(_CHAIN.fullmatch(m.string[last_end: m.start()]))
        if not is_date(d, mo, before, after, chained=chained):
            return m.group(0)
        last_end = m.end()
        return _date(d, mo, None, before, dialect)

    return _DAY_MONTH.sub(sub, text)


def dates(text: str, dialect: Dialect) -> str:
    """All date rules in order (for callers that want one step)."""
    for rule in (date_ranges, shared_months, full_dates, month_years, day_month):
        text = rule(text, dialect)
    return text
