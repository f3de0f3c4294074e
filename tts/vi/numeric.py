"""Rules for everything with digits: phones, plates, document numbers, dates, times,
ranges, fractions, ordinals, units and plain numbers.

Each rule is ``(text, dialect) -> text`` and runs in the order of :data:`NUMERIC_RULES`;
earlier rules turn their digits into words so later ones never see them.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from tts.vi.cues import (
    ADDRESS_BEFORE,
    COUNT_NOUNS,
    EMERGENCY,
    EMERGENCY_BEFORE,
    NOT_SERVICE_AFTER,
    PART_OF_WHOLE,
    RANK_ORDINALS,
    ROMAN_ORDINAL_CONTEXT,
    SCORE_BEFORE,
    SERVICE_BEFORE,
    WEEKDAY_WORDS,
)
from tts.vi.dates import (
    date_ranges,
    day_month,
    ends_with,
    full_dates,
    month_word,
    month_years,
    next_words_in,
    shared_months,
)
from tts.vi.lexicon import (
    ABBREVIATIONS,
    CURRENCY_PREFIX,
    DOC_CODES,
    DOC_CODES_PARTY,
    LETTERS,
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

__all__ = ["NUMBER", "NUMERIC_EARLY", "NUMERIC_RULES", "read_number_token", "spell"]

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


# ---------------------------------------------------------------- phones, plates, documents

_PHONE = re.compile(r"(?<![\w.,/+])(\+84|\(0\d{1,3}(?: \d{1,2})?\)|0)((?:[.\-]\s?|\s)?\d){6,10}(?![\w.,]?\d)")
_HOTLINE = re.compile(r"(?<![\w.,])1[89]00(?:[\s.]?\d{2,4}){1,3}(?![\w.,]?\d)")
_SERVICE = re.compile(rf"(?i:\b({_words('|'.join(SERVICE_BEFORE))}))(\s*:?\s*)"
                      r"(\d{3,8}(?:\s*(?:,|hoặc|và)\s*\d{3,5})*)(?![\w.,]?\d)")


def _digit_groups(raw: str) -> str:
    groups = [g for g in re.split(r"[\s.\-()]+", raw) if g]
    if len(groups) == 1 and len(groups[0]) >= 9:  # unseparated: 4-3-3 (or 4-3-4)
        d = groups[0]
        groups = [d[:4], d[4:7], d[7:]]
    return ", ".join("cộng " + read_digits(g) if g.startswith("+") else read_digits(g) for g in groups)


_EMERGENCY = re.compile(rf"(?i:\b({_words('|'.join(EMERGENCY_BEFORE))}))(\s*:?\s*)"
                        rf"({'|'.join(sorted(EMERGENCY))})(?![\w.,]?\d)")
_DATE_SHAPE = re.compile(r"\d{1,2}([-./])\d{1,2}\1\d{4}(?!\d)")


def phones(text: str, dialect: Dialect) -> str:
    def phone(m: re.Match[str]) -> str:
        if _DATE_SHAPE.match(m.group(0)):
            return m.group(0)  # 06-10-2022 09:51 is a date and a time
        digits = re.sub(r"\D", "", m.group(0))
        if not 9 <= len(digits) <= 12 or (len(digits) < 10 and not m.group(1).startswith("(")):
            return m.group(0)
        return _digit_groups(m.group(0).replace("+84", "+84 "))

    text = _PHONE.sub(phone, text)
    def hotline(m: re.Match[str]) -> str:
        plain = m.group(0).isdigit() and not ends_with(m.string[: m.start()], SERVICE_BEFORE)
        if plain and next_words_in(m.string[m.end():], NOT_SERVICE_AFTER):
            return m.group(0)  # "19000000 người" is a count
        return _digit_groups(m.group(0))

    text = _HOTLINE.sub(hotline, text)
    def service(m: re.Match[str]) -> str:
        after = m.string[m.end():]
        if next_words_in(after, NOT_SERVICE_AFTER) or after.lstrip().startswith("%"):
            return m.group(0)
        return m.group(1) + m.group(2) + re.sub(r"\d+", lambda d: read_digits(d.group(0)), m.group(3))

    text = _SERVICE.sub(service, text)
    return _EMERGENCY.sub(lambda m: m[1] + m[2] + read_digits(m[3]), text)


_PLATE = re.compile(r"\b(\d{2})([A-Z]{1,2}\d?)\s?-\s?(\d{3}\.\d{2}|\d{4,5})(?![\w.,]?\d)")


def plates(text: str, dialect: Dialect) -> str:
    def plate(m: re.Match[str]) -> str:
        series = " ".join(spell(p) if p.isalpha() else read_digits(p) for p in re.findall(r"[A-Z]+|\d", m[2]))
        return f"{read_int(int(m[1]), dialect)} {series}, {read_digits(m[3])}"

    return _PLATE.sub(plate, text)


_CODE = r"[A-ZĐ][A-Za-zĐđƯƠÂĂÊÔươâăêô&]*\d*"
_DOC = re.compile(rf"(?<![\w/.,])(\d+)((?:/\d{{4}})?)/({_CODE}(?:[-–]{_CODE})*)(?![\w/])")
# Party documents: 10-NQ/TU, 45-KL/HU, 15-QĐ/ĐU, 57-NQ/TW
_PARTY_DOC = re.compile(r"(?<![\w/.,\-])(\d+)[-–]([A-ZĐ][A-Za-zĐđ]*)/"
                        r"([A-ZĐ][A-Za-zĐđ]*(?:[-–][A-ZĐ][A-Za-zĐđ]*)*)(?![\w/])")
_PARTY_ISSUERS = frozenset({"TW", "TƯ", "TU", "HU", "ĐU", "QU", "TVTU", "BTVTU", "ĐUK", "TUQ", "BCS"})


def _segment(code: str) -> list[str] | None:
    """Split a run of known codes written together, longest first, or None."""
    if not code:
        return []
    for size in range(min(len(code), 12), 1, -1):
        head = code[:size]
        if head in DOC_CODES and (rest := _segment(code[size:])) is not None:
            return [head, *rest]
    return None


def _code(part: str, *, party: bool = False) -> str:
    """A code in a document number; some have a sense of their own in party documents (BTC)."""
    if party and part in DOC_CODES_PARTY:
        return DOC_CODES_PARTY[part]
    if (numbered := re.fullmatch(r"(\D+?)(\d+)", part)) is not None:  # QH13: quốc hội mười ba
        return f"{_code(numbered[1], party=party)} {read_number_string(numbered[2], 'north')}"
    if part in DOC_CODES:
        return DOC_CODES[part]
    if (pieces := _segment(part)) is not None:  # BCĐTƯVSATTP: ban chỉ đạo trung ương vệ sinh an toàn…
        return " ".join(DOC_CODES[p] for p in pieces)
    if not any(ch in VOWELS for ch in part.upper()):
        return spell(part)
    return part


_THANH_UY = re.compile(r"(?i:thành ủy|thành uỷ)")
_TINH_UY = re.compile(r"(?i:tỉnh ủy|tỉnh uỷ)")


def _issuer_sense(code: str, text: str) -> str | None:
    """TU is the provincial party committee, or the city's when the bulletin speaks of a Thành ủy."""
    if code == "TU" and _THANH_UY.search(text) and not _TINH_UY.search(text):
        return "thành ủy"
    return None


def documents(text: str, dialect: Dialect) -> str:
    """125/KH-UBND → một trăm hai mươi lăm trên kế hoạch ủy ban nhân dân; 10-NQ/TU → mười nghị quyết
    trên tỉnh ủy."""

    def doc(m: re.Match[str]) -> str:
        if len(m[3]) < 2:
            return m.group(0)
        parts = re.split(r"[-–]", m[3])
        party = any(p in _PARTY_ISSUERS for p in parts)
        year = f" trên {read_int(int(m[2][1:]), dialect)}" if m[2] else ""
        codes = " ".join(_issuer_sense(p, m.string) or _code(p, party=party) for p in parts)
        return f"{read_number_string(m[1], dialect)}{year} trên {codes}"

    def party_doc(m: re.Match[str]) -> str:
        issuers = re.split(r"[-–]", m[3])
        kind = _code(m[2], party=True)
        return (f"{read_number_string(m[1], dialect)} {kind} trên "
                + " ".join(_issuer_sense(p, m.string) or _code(p, party=True) for p in issuers))

    text = _PARTY_DOC.sub(party_doc, text)
    return _DOC.sub(doc, text)


# ---------------------------------------------------------------- weekdays, scores, times, ranges

_KEYWORD_NUMBER = re.compile(r"(?i:\b(ngày|mùng|mồng|tháng))(\s+)(\d{1,2})\b(?![.,/:\-]\d)")
_RANGE = re.compile(r"(\d(?:[hH]\d{0,2}|g\d\d|%|')?)\s*[-–—]\s*(?=\d)")
# between two measures or times: "5 km – 10 km", "7 giờ - 9 giờ"
_MEASURE_WORDS = "|".join(re.escape(u) for u in sorted({*UNITS, "giờ", "phút", "ngày", "tháng", "năm", "tuổi",
                                                        "độ", "tấn", "tạ", "lít", "mét", "người", "hộ"},
                                                       key=len, reverse=True))
_KM_RANGE = re.compile(r"(\d)\s*[-–—]\s*(?=K[Mm]\s?\d)")  # Km 5+200 - Km 7+500
_MEASURE_RANGE = re.compile(rf"(\d\s?(?:{_MEASURE_WORDS}))\s*[-–—]\s*(?=\d)")
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
_WEEKDAY_WORD = "|".join(re.escape(w) for w in WEEKDAY_WORDS)
_WEEKDAY_WORD_RANGE = re.compile(rf"(?i:\b({_WEEKDAY_WORD}))\s*[-–]\s*(?i:({_WEEKDAY_WORD}))\b")
_SCORE = re.compile(rf"(?i:\b({_words('|'.join(SCORE_BEFORE))}))(\s+)"
                    r"(\d{1,2})\s*[-–:]\s*(\d{1,2})(?![\d/])")


def _weekday(token: str, dialect: Dialect) -> str:
    return "chủ nhật" if token == "CN" else f"thứ {read_ordinal(int(token[1]), dialect)}"


def weekdays(text: str, dialect: Dialect) -> str:
    """T2-T6 → thứ hai đến thứ sáu; "CN 22/11" → chủ nhật 22/11; "từ T2 đến CN"; thứ Hai - thứ Sáu."""
    text = _WEEKDAY_RANGE.sub(lambda m: f"{_weekday(m[1], dialect)} đến {_weekday(m[2], dialect)}", text)
    text = _WEEKDAY.sub(lambda m: _weekday(m[1], dialect), text)
    text = _WEEKDAY_AFTER.sub(lambda m: f"{m[1]}{m[2]}{_weekday(m[3], dialect)}", text)
    text = _WEEKDAY_LIST.sub(lambda m: _weekday(m[1], dialect) + re.sub(
        r"T[2-7]|CN", lambda w: _weekday(w.group(0), dialect), m[2]), text)
    return _WEEKDAY_WORD_RANGE.sub(r"\1 đến \2", text)


def scores(text: str, dialect: Dialect) -> str:
    """A score is two numbers, not a range: "tỷ số 3-2" → tỷ số ba hai."""
    return _SCORE.sub(lambda m: f"{m[1]}{m[2]}{read_int(int(m[3]), dialect)} {read_int(int(m[4]), dialect)}",
                      text)


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


_STUCK_UNIT = re.compile(r"(\d)(giờ|phút|giây|ngày|tháng|năm|tuổi|người|hộ)(?!\w)")
_ZERO_MINUTES = re.compile(r"(\d\s?giờ)\s?00(?:\s?phút)?(?!\w)")


def times(text: str, dialect: Dialect) -> str:
    text = _STUCK_UNIT.sub(r"\1 \2", text)  # 22giờ → 22 giờ
    text = _ZERO_MINUTES.sub(r"\1", text)  # 08 giờ 00 phút → tám giờ
    text = _TIME_H.sub(lambda m: _clock(int(m[1]), int(m[2] or m[3] or 0), 0, dialect), text)
    return _TIME_COLON.sub(lambda m: _clock(int(m[1]), int(m[2]), int(m[3] or 0), dialect), text)


def operators(text: str, dialect: Dialect) -> str:
    """Ranges (2021-2025 → đến), + x = ~ > <, and negative numbers."""
    text = _RANGE.sub(r"\1 đến ", text)
    text = _MEASURE_RANGE.sub(r"\1 đến ", text)
    text = _KM_RANGE.sub(r"\1 đến ", text)
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

    return _ROMAN.sub(sub, text)


def fractions(text: str, dialect: Dialect) -> str:
    """18/18 xã → mười tám trên mười tám xã; 2/3 số hộ → hai phần ba số hộ; thứ 12/63 → thứ mười hai…"""

    def sub(m: re.Match[str]) -> str:
        a, b = m[1], m[2]
        after = m.string[m.end():]
        if ends_with(m.string[: m.start()], ("thứ",)) and a.isdigit():
            return f"{read_ordinal(int(a), dialect)} trên {read_number_token(b, dialect)}"
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
_DEGREE_LETTER = re.compile(r"\b(độ)\s+([CF])\b")


_HEIGHT = re.compile(r"(?i:\b(cao|dưới|trên|chiều cao|thấp hơn|cao hơn))(\s+)(\d)m(\d{1,2})(?!\w)")


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
    text = _UNIT.sub(lambda m: f"{read_number_token(m[1], dialect)} {UNITS[m[2]]}", text)
    text = _ATTACHED.sub(lambda m: f"{read_number_token(m[1], dialect)} {UNITS_ATTACHED[m[2]]}", text)
    text = _PER_UNIT.sub(lambda m: f" một {UNITS[m[1]]}", text)
    text = _DONG_AFTER_WORD.sub(r"\1 đồng", text)
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
        if len(token) == 2 and token[0] == "0" and token[1] != "0" and (
                _COUNTED_NEXT.match(m.string, m.end()) or next_words_in(m.string[m.end():], COUNT_NOUNS) or (
                    ends_with(m.string[: m.start()], ("số",)) and _NAME_NEXT.match(m.string, m.end()))):
            return read_int(int(token), dialect)  # "02 khẩu trang", "số 04 Phạm Ngọc Thạch": a count, a house
        return read_number_token(token, dialect)

    return _PLAIN.sub(sub, text)


# (name, rule): the name is what ``loaphuong normalize --explain`` shows for a span.
NUMERIC_EARLY: tuple[tuple[str, Rule], ...] = (("document number", documents),)
NUMERIC_RULES: tuple[tuple[str, Rule], ...] = (
    ("phone or service number", phones),
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
