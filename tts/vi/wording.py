"""Rules for words and symbols: line structure, web addresses, abbreviations, acronyms,
slashes between words, and punctuation turned into pauses."""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Mapping

from tts.vi.context import ends_with
from tts.vi.cues import SYNTAX_BEFORE
from tts.vi.doc_codes import DOC_CODES
from tts.vi.lexicon import ABBREVIATIONS, LETTERS, VOWELS, WEB_WORDS
from tts.vi.measures import PER_AFTER, PER_WORDS
from tts.vi.numbers import Dialect, read_number_string

__all__ = [
    "abbreviations",
    "acronyms",
    "apply_dictionary",
    "join_lines",
    "pauses",
    "slashes",
    "tidy",
    "web",
]

_BULLET = re.compile(r"^(?:[-–—+*]\s+|[•·●○■□▪►✓✔❖➢→]+\s*)")
_NUMBERED = re.compile(r"^(\d{1,2}|[a-zđ])[.)]\s+")  # "1. Thời gian" → "1, Thời gian"
_SENTENCE_END = ".!?:;,…"


def join_lines(text: str) -> str:
    """Drop bullet marks; end a line with a full stop when the next one starts a new sentence."""
    lines = [_NUMBERED.sub(r"\1, ", _BULLET.sub("", ln.strip()).strip()) for ln in text.split("\n")]
    lines = [ln for ln in lines if ln]
    out: list[str] = []
    for i, line in enumerate(lines):
        out.append(line)
        if i + 1 == len(lines) or line[-1] in _SENTENCE_END:
            continue
        nxt = lines[i + 1]
        heading = line.upper() == line and any(ch.isalpha() for ch in line)
        if heading or nxt[0].isupper() or nxt[0].isdigit():
            out[-1] = line + "."
    return " ".join(out)


# ---------------------------------------------------------------- dictionaries


@functools.lru_cache(maxsize=32)
def _dictionary_regex(terms: tuple[str, ...]) -> re.Pattern[str]:
    alternatives = "|".join(re.escape(t) for t in sorted(terms, key=len, reverse=True))
    return re.compile(rf"(?<!\w)(?:{alternatives})(?!\w)", re.IGNORECASE)


def apply_dictionary(text: str, entries: Mapping[str, str]) -> tuple[str, list[str]]:
    """Replace whole-word, case-insensitive ``entries`` (term → spoken form) in one pass.

    Returns the new text and the terms that were found (in order of first use).
    """
    usable = {unicodedata.normalize("NFC", k).strip().casefold(): v for k, v in entries.items() if k.strip()}
    if not usable:
        return text, []
    hits: list[str] = []
    by_key = {k: unicodedata.normalize("NFC", v) for k, v in usable.items()}
    original = {unicodedata.normalize("NFC", k).strip().casefold(): k.strip() for k in entries}

    def sub(m: re.Match[str]) -> str:
        key = m.group(0).casefold()
        term = original.get(key, m.group(0))
        if term not in hits:
            hits.append(term)
        return by_key.get(key, m.group(0))

    pattern = _dictionary_regex(tuple(sorted({unicodedata.normalize("NFC", k).strip()
                                               for k in entries if k.strip()})))
    return pattern.sub(sub, text), hits


_ABBR = re.compile(
    r"(?<![\w.])(?:"
    + "|".join(re.escape(k) + ("" if k.endswith(".") else r"(?![\w])")
               for k in sorted(ABBREVIATIONS, key=len, reverse=True))
    + ")"
)
_ABBR_DOT_NUMBER = re.compile(r"(?<![\w.])([A-ZĐ]{2,6})\.(?=\d)")  # "KP.2" is "khu phố hai", no pause
# P./Q. before a name is phường/quận, but not the initial of a person's name ("bà P.T.C.", "anh Q. H.")
_PLACE = re.compile(r"(?<![\w.])([PQ])\.\s?(?=[A-ZĐ\d])(?![A-ZĐ]\.)")
_PERSON_BEFORE = ("ông", "bà", "anh", "chị", "em", "cụ", "cháu", "đồng chí", "đ/c", "bị can", "bị cáo")
# ĐT has two senses: "đường tỉnh" before a road number, "điện thoại" before a phone number.
_DT_ROAD = re.compile(r"(?:(?i:đường tỉnh)\s+)?\bĐT\.?\s?(?=[1-9]\d{0,3}(?:[A-Z])?(?![\d.,]?\d))")


# "Căn cước công dân (CCCD)": the abbreviation in brackets after its own words is not read twice.
_SPELLED_OUT = re.compile(r"((?:[^\W\d_]+ ){1,7}[^\W\d_]+)\s*\(([A-ZĐ][A-ZĐa-z&\-]{1,11})\)")


def _expands_to(abbr: str, words: str) -> bool:
    """Is ``abbr`` the abbreviation of the words just before it (its lexicon entry, or their initials)?"""
    spoken = ABBREVIATIONS.get(abbr) or DOC_CODES.get(abbr)
    if spoken is not None and words.lower().endswith(spoken.lower()):
        return True
    letters = [ch for ch in abbr.upper() if ch.isalpha()]
    initials = [w[0].upper() for w in words.split()][-len(letters):]
    return len(letters) >= 2 and initials == letters  # "hiến máu tình nguyện (HMTN)"


def abbreviations(text: str, dialect: Dialect) -> str:
    """UBND → ủy ban nhân dân, TP. → thành phố, P. Ngô Quyền → phường Ngô Quyền, ĐT 741 → đường tỉnh ..."""
    text = _DT_ROAD.sub("đường tỉnh ", text)
    def sub(m: re.Match[str]) -> str:
        key = m.group(0)
        if key == "v.v." and re.match(r"\s*(?:$|[A-ZĐ\n])", m.string[m.end():]):
            return ABBREVIATIONS[key] + "."  # "v.v." ends the sentence too
        return ABBREVIATIONS[key] + (" " if key.endswith(".") else "")

    text = _SPELLED_OUT.sub(lambda m: m[1] if _expands_to(m[2], m[1]) else m.group(0), text)
    text = _ABBR_DOT_NUMBER.sub(lambda m: f"{m[1]} " if m[1] in ABBREVIATIONS else m.group(0), text)  # KP.2
    text = _ABBR.sub(sub, text)
    return _PLACE.sub(lambda m: m.group(0) if ends_with(m.string[: m.start()], _PERSON_BEFORE)
                      else "phường " if m[1] == "P" else "quận ", text)


# ---------------------------------------------------------------- web addresses

_EMAIL = re.compile(r"(?<![\w.])[\w.+\-]+@[\w\-]+(?:\.[\w\-]+)+")
_URL = re.compile(
    r"(?i)(?<![\w@.])(?:https?://)?(?:[a-z0-9][a-z0-9\-]*\.)+(?:vn|com|net|org|gov|edu|info|io)\b"
    r"(?:/[^\s,;()]*)?"
)
_SEPARATORS = {".": "chấm", "@": "a còng", "/": "gạch chéo", "-": "gạch ngang", "_": "gạch dưới",
               ":": "hai chấm"}


def _speak_address(address: str, dialect: Dialect) -> str:
    address = re.sub(r"(?i)^https?://", "", address).rstrip("./")
    words: list[str] = []
    for token in re.split(r"([./@\-_:])", address):
        if not token:
            continue
        if token in _SEPARATORS:
            words.append(_SEPARATORS[token])
        elif token.isdigit():
            words.append(read_number_string(token, dialect))
        elif token.lower() in WEB_WORDS:
            words.append(WEB_WORDS[token.lower()])
        elif not any(ch in VOWELS for ch in token.upper()):
            words.append(" ".join(LETTERS.get(ch.upper(), ch) for ch in token))
        else:
            words.append(token.lower())
    return " ".join(w for w in words if w)


def web(text: str, dialect: Dialect) -> str:
    """phuong@vinhyen.gov.vn → phuong a còng vinhyen chấm gốp chấm vê en."""
    text = _EMAIL.sub(lambda m: _speak_address(m.group(0), dialect), text)
    return _URL.sub(lambda m: _speak_address(m.group(0), dialect), text)


# ---------------------------------------------------------------- after the numbers

_SLASH = re.compile(r"([^\W\d_]+)\s*/\s*([^\W\d_]+(?: [^\W\d_]+)?)")
_ACRONYM = re.compile(r"(?<![\w])[A-ZĐ]{2,6}(?![\w])")


def slashes(text: str, dialect: Dialect) -> str:
    """đồng/kg → đồng một ki lô gam; anh/chị → anh chị."""

    def sub(m: re.Match[str]) -> str:
        before, word, rest = m.group(1), m.group(2), ""
        if not (PER_WORDS.get(word) or PER_WORDS.get(word.lower())):  # "tháng/học sinh": two words, or one
            word, _, rest = word.partition(" ")
            rest = f" {rest}" if rest else ""
        per = PER_WORDS.get(word) or PER_WORDS.get(word.lower())
        if per or before in PER_AFTER:
            return f"{before} một {per or word}{rest}"
        return f"{before} {word}{rest}"

    for _ in range(5):  # "đồng/người/tháng": each pass resolves one slash of a chain
        text, count = _SLASH.subn(sub, text)
        if not count:
            break
    return text


def acronyms(text: str, dialect: Dialect) -> str:
    """Unknown capitals without a vowel are spelled: VNPT → vê en pê tê."""

    def sub(m: re.Match[str]) -> str:
        token = m.group(0)
        if any(ch in VOWELS for ch in token) and not ends_with(m.string[: m.start()], SYNTAX_BEFORE):
            return token
        return " ".join(LETTERS.get(ch, ch) for ch in token)

    return _ACRONYM.sub(sub, text)


_QUOTES = re.compile(r"[\"“”„«»`´′″]|(?<!\w)['‘’]|['‘’](?!\w)")
_OPEN_CLOSE = re.compile(r"\s*[()\[\]{}]\s*")
_DASH = re.compile(r"\s+[-–—]+\s*|\s*[–—]+\s+|\s*—\s*")


def pauses(text: str, dialect: Dialect) -> str:
    """Quotes go, brackets and dashes become commas, ellipses full stops; symbols go or are spoken."""
    text = _QUOTES.sub("", text)
    text = re.sub(r"…|\.{2,}", ".", text)
    text = _OPEN_CLOSE.sub(", ", text)
    text = _DASH.sub(", ", text)
    text = re.sub(r"(?<=\w)[-–](?=\w)|(?<=\w)-(?=\s)|(?<=\s)-(?=\w)", " ", text)  # Sởi- Rubella
    text = text.replace("&", " và ").replace("@", " a còng ").replace("|", ", ")
    text = re.sub(r"[/\\*#~^_=+<>]", " ", text)
    return "".join(" " if unicodedata.category(ch) in ("So", "Sk", "Sm", "Co", "Cs") or ch == "\ufffd"
                   else ch for ch in text)


_STRENGTH = {",": 0, ":": 1, ";": 2, ".": 3, "!": 3, "?": 3}


def tidy(text: str) -> str:
    """One space between words, none before punctuation, one mark where several meet."""
    text = re.sub(r"\s+", " ", text)
    text = re.sub(r"\s+([,.;:!?])", r"\1", text)

    def strongest(m: re.Match[str]) -> str:
        marks = [ch for ch in m.group(0) if ch in _STRENGTH]
        return max(marks, key=lambda ch: _STRENGTH[ch]) + " "

    text = re.sub(r"[,.;:!?](?:\s*[,.;:!?])+\s*", strongest, text)
    text = re.sub(r"([,.;:!?])(?=[^\s\d])", r"\1 ", text)
    text = re.sub(r"\s+", " ", text).strip()
    text = re.sub(r"^[,.;:!?\s-]+", "", text)
    return re.sub(r"[,;:\s]+$", "", text)
