"""Numbers that name something and are read digit by digit or code by code: phone, hotline, service and
emergency numbers, vehicle plates, document numbers (125/KH-UBND, 10-NQ/TU), and letters spelled out."""

from __future__ import annotations

import re

from tts.vi.context import ends_with, next_words_in, word_alternation
from tts.vi.cues import EMERGENCY, EMERGENCY_BEFORE, NOT_SERVICE_AFTER, NOT_SERVICE_BEFORE, SERVICE_BEFORE
from tts.vi.doc_codes import DOC_CODES, DOC_CODES_PARTY, DOC_KIND_NAMED
from tts.vi.lexicon import LETTERS, VOWELS
from tts.vi.numbers import Dialect, read_digits, read_int, read_number_string

__all__ = ["documents", "phones", "plates", "spell"]


def spell(letters: str) -> str:
    """Vietnamese letter names: ``VNPT`` → ``vê en pê tê``."""
    return " ".join(LETTERS.get(ch.upper(), ch) for ch in letters)


_PHONE = re.compile(r"(?<![\w.,/+])(\+84|\(0\d{1,3}(?: \d{1,2})?\)|0)((?:[.\-]\s?|\s)?\d){6,10}(?![\w.,]?\d)")
_HOTLINE = re.compile(r"(?<![\w.,])1[89]00(?:[\s.]?\d{2,4}){1,3}(?![\w.,]?\d)")
_SERVICE = re.compile(rf"(?i:\b({word_alternation(SERVICE_BEFORE)}))(\s*:?\s*)"
                      r"(0\d{2,3}[.\s]\d{3,4}(?:[.\s]\d{3,4})?|\d{3,8}(?:\s*(?:,|hoặc|và)\s*\d{3,5})*)"
                      r"(?![\w.,]?\d)")  # 0236.1022: a short landline written in groups
# An emergency number later in a clause that names a hotline: "Tổng đài bảo vệ trẻ em quốc gia 111"
_EMERGENCY_IN_CLAUSE = re.compile(rf"(?i:\b(tổng đài|đường dây nóng|đường dây|gọi))([^\d.,;:!?\n]{{1,40}}?\s)"
                                  rf"({'|'.join(sorted(EMERGENCY))})(?![\w.,]?\d)")


def _digit_groups(raw: str) -> str:
    raw = re.sub(r"(?<=[\s)])(\d)\.(?=\d)", r"\1", raw)  # (0236) 3.821.115: "3" is no group of its own
    groups = [g for g in re.split(r"[\s.\-()]+", raw) if g]
    if len(groups) == 1 and len(groups[0]) >= 9:  # unseparated: 4-3-3 (or 4-3-4)
        d = groups[0]
        groups = [d[:4], d[4:7], d[7:]]
    return ", ".join("cộng " + read_digits(g) if g.startswith("+") else read_digits(g) for g in groups)


_EMERGENCY = re.compile(rf"(?i:\b({word_alternation(EMERGENCY_BEFORE)}))(\s*:?\s*)"
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
        if ends_with(m.string[: m.start()], NOT_SERVICE_BEFORE):
            return m.group(0)  # "kêu gọi 215 tàu thuyền" is an appeal, not a call
        if next_words_in(after, NOT_SERVICE_AFTER) or after.lstrip().startswith("%"):
            return m.group(0)
        if m.group(3).startswith("0") and re.search(r"[.\s]", m.group(3)):
            return m.group(1) + m.group(2) + _digit_groups(m.group(3))
        return m.group(1) + m.group(2) + re.sub(r"\d+", lambda d: read_digits(d.group(0)), m.group(3))

    text = _SERVICE.sub(service, text)
    text = _EMERGENCY_IN_CLAUSE.sub(
        lambda m: m.group(0) if next_words_in(m.string[m.end():], NOT_SERVICE_AFTER)
        else m[1] + m[2] + read_digits(m[3]), text)
    return _EMERGENCY.sub(lambda m: m[1] + m[2] + read_digits(m[3]), text)


_PLATE = re.compile(r"\b(\d{2})([A-Z]{1,2}\d?)\s?-\s?(\d{3}\.\d{2}|\d{4,5})(?![\w.,]?\d)")


def plates(text: str, dialect: Dialect) -> str:
    def plate(m: re.Match[str]) -> str:
        series = " ".join(spell(p) if p.isalpha() else read_digits(p) for p in re.findall(r"[A-Z]+|\d", m[2]))
        return f"{read_int(int(m[1]), dialect)} {series}, {read_digits(m[3])}"

    return _PLATE.sub(plate, text)


_CODE = r"[A-ZĐ][A-Za-zĐđƯƠÂĂÊÔươâăêô&]*\d*"
# 125/KH-UBND, 39/2020/TT-BTTTT, 168a/QĐ-UBND, 04/2021/TT- TTCP
_DOC = re.compile(rf"(?<![\w/.,])(\d+[a-z]?)((?:/\d{{4}})?)/({_CODE}(?:[-–] ?{_CODE})*)(?![\w/])")
# Party documents: 10-NQ/TU, 45-KL/HU, 15-QĐ/ĐU, 57-NQ/TW
_PARTY_DOC = re.compile(r"(?<![\w/.,\-])(\d+)[-–]([A-ZĐ][A-Za-zĐđ]*)/"
                        r"([A-ZĐ][A-Za-zĐđ]*(?:[-–][A-ZĐ][A-Za-zĐđ]*)*)(?![\w/])")
_PARTY_ISSUERS = frozenset({"TW", "TƯ", "TU", "HU", "ĐU", "QU", "TVTU", "BTVTU", "ĐUK", "TUQ", "BCS"})


def _segment(code: str, *, party: bool = False) -> list[str] | None:
    """Split a run of known codes written together, longest first, or None (BTGTU: BTG, TU)."""
    if not code:
        return []
    for size in range(min(len(code), 12), 1, -1):
        head = code[:size]
        known = head in DOC_CODES or (party and head in DOC_CODES_PARTY)
        if known and (rest := _segment(code[size:], party=party)) is not None:
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
    if (pieces := _segment(part, party=party)) is not None:  # BCĐTƯVSATTP: ban chỉ đạo trung ương…
        return " ".join(_code(p, party=party) for p in pieces)
    if not any(ch in VOWELS for ch in part.upper()):
        return spell(part)
    return part


_THANH_UY = re.compile(r"(?i:thành ủy|thành uỷ)")
_TINH_UY = re.compile(r"(?i:tỉnh ủy|tỉnh uỷ)")


def _named_kind(code: str, before: str) -> str | None:
    """The kind named before the number ("Quy định số 144-QĐ/TW" → quy định), if the code allows it."""
    named = re.sub(r"\s+số\s*$", "", before[-30:].rstrip()).lower()
    return next((k for k in DOC_KIND_NAMED.get(code, ()) if named.endswith(k)), None)


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
        parts = re.split(r"[-–] ?", m[3])
        party = any(p in _PARTY_ISSUERS for p in parts)
        year = f" trên {read_int(int(m[2][1:]), dialect)}" if m[2] else ""
        codes = " ".join(_issuer_sense(p, m.string) or _code(p, party=party) for p in parts)
        number = read_number_string(m[1].rstrip("abcdefghijklmnopqrstuvwxyz"), dialect)
        suffix = f" {spell(m[1][-1])}" if m[1][-1].isalpha() else ""
        return f"{number}{suffix}{year} trên {codes}"

    def party_doc(m: re.Match[str]) -> str:
        issuers = re.split(r"[-–]", m[3])
        kind = _named_kind(m[2], m.string[: m.start()]) or _code(m[2], party=True)
        return (f"{read_number_string(m[1], dialect)} {kind} trên "
                + " ".join(_issuer_sense(p, m.string) or _code(p, party=True) for p in issuers))

    text = _PARTY_DOC.sub(party_doc, text)
    return _DOC.sub(doc, text)
