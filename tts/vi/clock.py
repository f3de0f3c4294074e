"""Weekdays (T2-T6, CN), a day or month number after its keyword (ngày 05, tháng 4), round-the-clock
ratios (24/24h) and times of day (7h30, 17g30, 08:15:30)."""

from __future__ import annotations

import re

from tts.vi.context import next_words_in
from tts.vi.cues import COUNT_NOUNS, WEEKDAY_WORDS
from tts.vi.dates import month_word
from tts.vi.numbers import Dialect, read_int, read_ordinal

__all__ = ["hour_ratio", "keyword_numbers", "times", "weekdays"]

_KEYWORD_NUMBER = re.compile(r"(?i:\b(ngày|mùng|mồng|tháng))(\s+)(\d{1,2})\b(?![.,/:\-]\d)")
_MINUTES = r"([0-5]\d)(?:\s?(?:phút|ph|p)(?!\w)|['’′])?"
# 7h, 7h30, 7H30', 17g30 (a bare "7g" is seven grams)
_TIME_H = re.compile(rf"(?<![\w.,])([01]?\d|2[0-4])(?:\s?[hH](?:{_MINUTES})?|g{_MINUTES})(?!\w)")
_TIME_COLON = re.compile(r"(?<![\w.,:])([01]?\d|2[0-4]):([0-5]\d)(?::([0-5]\d))?(?![\w:])")
_WEEKDAY_ABBR = r"(T[2-7]|CN)"
_WEEKDAY_RANGE = re.compile(rf"\b{_WEEKDAY_ABBR}\s*(?:[-–]|đến|tới)\s*{_WEEKDAY_ABBR}\b")
_WEEKDAY = re.compile(rf"\b{_WEEKDAY_ABBR}\b(?=\s*[,(]?\s*(?:ngày\s+)?\d{{1,2}}/\d{{1,2}})")
_WEEKDAY_AFTER = re.compile(rf"(?i:\b(từ|đến|tới|vào|các ngày|ngày|sáng|chiều|tối))(\s+)"
                            rf"(?-i:{_WEEKDAY_ABBR})\b")
_WEEKDAY_LIST = re.compile(rf"\b{_WEEKDAY_ABBR}((?:\s*(?:,|và|hoặc)\s*(?:T[2-7]|CN)\b)+)")
_CN = re.compile(r"\bCN\b")
_WEEKDAY_WORD = "|".join(re.escape(w) for w in WEEKDAY_WORDS)
_WEEKDAY_WORD_RANGE = re.compile(rf"(?i:\b({_WEEKDAY_WORD}))\s*[-–]\s*(?i:({_WEEKDAY_WORD}))\b")


def _weekday(token: str, dialect: Dialect) -> str:
    return "chủ nhật" if token == "CN" else f"thứ {read_ordinal(int(token[1]), dialect)}"


def weekdays(text: str, dialect: Dialect) -> str:
    """T2-T6 → thứ hai đến thứ sáu; "CN 22/11" → chủ nhật 22/11; "từ T2 đến CN"; thứ Hai - thứ Sáu."""
    text = _WEEKDAY_RANGE.sub(lambda m: f"{_weekday(m[1], dialect)} đến {_weekday(m[2], dialect)}", text)
    text = _WEEKDAY.sub(lambda m: _weekday(m[1], dialect), text)
    text = _WEEKDAY_LIST.sub(lambda m: _weekday(m[1], dialect) + re.sub(
        r"T[2-7]|CN", lambda w: _weekday(w.group(0), dialect), m[2]), text)  # before "tối T3": T3 và T5
    text = _WEEKDAY_AFTER.sub(lambda m: f"{m[1]}{m[2]}{_weekday(m[3], dialect)}", text)
    return _WEEKDAY_WORD_RANGE.sub(r"\1 đến \2", _CN.sub(_sunday_after_weekday, text))


def _sunday_after_weekday(m: re.Match[str]) -> str:
    """ "CN" alone is a Sunday when a weekday came before it in the sentence ("từ T2 đến T7; CN nghỉ")."""
    sentence = re.split(r"[.!?\n]", m.string[max(0, m.start() - 80): m.start()])[-1].lower()
    return "chủ nhật" if any(w in sentence for w in WEEKDAY_WORDS[:6]) else m.group(0)


_DAY_BEFORE_MONTH = re.compile(r"(?i:\b(?:ngày|mùng|mồng))\s+\d{1,2}\s*$")  # ngày 29 tháng 4: a date


def keyword_numbers(text: str, dialect: Dialect) -> str:
    """``ngày 05`` → ``ngày năm``; ``tháng 4`` → ``tháng tư`` (not after a count: "3 tháng 4 ngày")."""

    def sub(m: re.Match[str]) -> str:
        n, word = int(m[3]), m[1].lower()
        before = m.string[: m.start()]
        counted = re.search(r"\d\s*$", before) and not _DAY_BEFORE_MONTH.search(before)
        if counted or n == 0 or n > (12 if word == "tháng" else 31):
            return m.group(0)
        return f"{m[1]}{m[2]}{month_word(n, dialect) if word == 'tháng' else read_int(n, dialect)}"

    return _KEYWORD_NUMBER.sub(sub, text)


def _clock(h: int, mi: int, s: int, dialect: Dialect) -> str:
    out = f"{read_int(h, dialect)} giờ"
    if mi:
        out += f" {read_int(mi, dialect)} phút"
    if s:
        out += f" {read_int(s, dialect)} giây"
    return out


_HOUR_RATIO = re.compile(r"(?<![\w.,/])(\d{1,2})/(\d{1,2})\s?[hH](?!\w)")


def hour_ratio(text: str, dialect: Dialect) -> str:
    """24/24h → hai mươi tư trên hai mươi tư giờ (round the clock, not a date)."""
    def sub(m: re.Match[str]) -> str:
        return f"{read_int(int(m[1]), dialect)} trên {read_int(int(m[2]), dialect)} giờ"

    return _HOUR_RATIO.sub(sub, text)


_NOT_HOUR_AFTER = COUNT_NOUNS | frozenset({"tuổi", "giờ", "tiếng", "phút", "ngày", "tháng", "năm", "độ", "km",
                                             "mét", "người", "phần", "triệu", "nghìn", "đồng", "ki"})
_STUCK_UNIT = re.compile(r"(\d)(giờ|phút|giây|ngày|tháng|năm|tuổi|người|hộ|đồng|lượt|suất|lần)(?!\w)")
_ZERO_MINUTES = re.compile(r"(\d\s?giờ)\s?00(?:\s?phút)?(?!\w)")


# "21g ngày 7/9", "lúc 7g": a bare g is an hour next to a day word or after lúc/tới/đến (else 7g is gram)
_HOUR_G = re.compile(r"(?i:\b(lúc|tới|đến|từ|trước|sau|vào)\s+)?(?<![\w.,])([01]?\d|2[0-4])g(?!\w)"
                     r"(?=(\s+(?:ngày|sáng|trưa|chiều|tối|đêm|hôm|hằng|hàng)\b)?)")
# "từ 7h đến 12": the hour word of a time range is written once
_BARE_RANGE_END = re.compile(r"(\b(?i:từ)\s+(?:[01]?\d|2[0-4])h\d{0,2}\s+(?:đến|tới)\s+)([01]?\d|2[0-4])"
                             r"(?![\w:/]|[.,]\d|\s*[-–])")


def _hour_g(m: re.Match[str]) -> str:
    if not (m[1] or m[3]):
        return m.group(0)
    return f"{m[1] + ' ' if m[1] else ''}{m[2]} giờ"


def times(text: str, dialect: Dialect) -> str:
    text = _HOUR_G.sub(_hour_g, text)
    text = _BARE_RANGE_END.sub(lambda m: m.group(0) if next_words_in(m.string[m.end():], _NOT_HOUR_AFTER)
                               else f"{m[1]}{m[2]}h", text)
    text = _STUCK_UNIT.sub(r"\1 \2", text)  # 22giờ → 22 giờ
    text = _ZERO_MINUTES.sub(r"\1", text)  # 08 giờ 00 phút → tám giờ
    text = _TIME_H.sub(lambda m: _clock(int(m[1]), int(m[2] or m[3] or 0), 0, dialect), text)
    return _TIME_COLON.sub(lambda m: _clock(int(m[1]), int(m[2]), int(m[3] or 0), dialect), text)
