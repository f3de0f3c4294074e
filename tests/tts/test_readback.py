"""Property: every number, decimal, date, time and ratio the normaliser reads can be heard back
as the value that was written (hypothesis, bounded; northern and southern readings)."""

from __future__ import annotations

import datetime as dt

from hypothesis import given, settings
from hypothesis import strategies as st

from tts.vi import normalize

DIGIT = {"không": 0, "một": 1, "mốt": 1, "hai": 2, "ba": 3, "bốn": 4, "tư": 4, "năm": 5, "lăm": 5,
         "sáu": 6, "bảy": 7, "tám": 8, "chín": 9}
DIALECTS = st.sampled_from(["north", "south"])
BOUNDED = settings(max_examples=150, deadline=None, database=None)


def _below_thousand(words: list[str]) -> int:
    value, i = 0, 0
    if len(words) > 1 and words[1] == "trăm":
        value, i = DIGIT[words[0]] * 100, 2
    rest = words[i:]
    if not rest:
        return value
    if rest[0] in ("linh", "lẻ"):
        assert len(rest) == 2
        return value + DIGIT[rest[1]]
    if rest[0] == "mười":
        assert len(rest) <= 2
        return value + 10 + (DIGIT[rest[1]] if len(rest) == 2 else 0)
    if len(rest) >= 2 and rest[1] == "mươi":
        assert len(rest) <= 3
        return value + DIGIT[rest[0]] * 10 + (DIGIT[rest[2]] if len(rest) == 3 else 0)
    assert len(rest) == 1, words
    return value + DIGIT[rest[0]]


def heard(spoken: str) -> int:
    """The integer a listener hears in ``spoken`` (Vietnamese number words only)."""
    words = spoken.split()
    if "tỷ" in words:
        cut = len(words) - 1 - words[::-1].index("tỷ")
        tail = words[cut + 1:]
        return heard(" ".join(words[:cut])) * 10**9 + (heard(" ".join(tail)) if tail else 0)
    for scale, value in (("triệu", 10**6), ("nghìn", 1000), ("ngàn", 1000)):
        if scale in words:
            cut = words.index(scale)
            tail = words[cut + 1:]
            return heard(" ".join(words[:cut])) * value + (heard(" ".join(tail)) if tail else 0)
    return _below_thousand(words)


def _grouped(n: int) -> str:
    return f"{n:,}".replace(",", ".")


def _inside(spoken: str, before: str, after: str) -> str:
    assert spoken.startswith(before) and spoken.endswith(after), spoken
    return spoken[len(before): len(spoken) - len(after)].strip()


@BOUNDED
@given(st.integers(0, 10**15), DIALECTS, st.booleans())
def test_integers_read_back(n: int, dialect: str, grouped: bool) -> None:
    written = _grouped(n) if grouped or n >= 10**9 else str(n)
    spoken = normalize(f"có {written} người", dialect=dialect).text  # type: ignore[arg-type]
    assert heard(_inside(spoken, "có", "người")) == n


@BOUNDED
@given(st.integers(0, 10**6), st.text("0123456789", min_size=1, max_size=3), DIALECTS)
def test_decimals_read_back(whole: int, fraction: str, dialect: str) -> None:
    spoken = normalize(f"đạt {_grouped(whole)},{fraction}%", dialect=dialect).text  # type: ignore[arg-type]
    head, _, tail = _inside(spoken, "đạt", "phần trăm").partition(" phẩy ")
    assert heard(head) == whole
    words = tail.split()
    zeros = len(words) if set(words) == {"không"} else next(i for i, w in enumerate(words) if w != "không")
    rest = words[zeros:]
    assert "0" * zeros + (str(heard(" ".join(rest))) if rest else "") == fraction


@BOUNDED
@given(st.dates(dt.date(1900, 1, 1), dt.date(2100, 12, 31)), st.booleans(), st.sampled_from(["/", "-", "."]),
       DIALECTS)
def test_full_dates_read_back(day: dt.date, padded: bool, sep: str, dialect: str) -> None:
    d, m = (f"{day.day:02}", f"{day.month:02}") if padded else (str(day.day), str(day.month))
    spoken = normalize(f"Ngày {d}{sep}{m}{sep}{day.year}, họp tổ dân phố", dialect=dialect).text  # type: ignore[arg-type]
    body = _inside(spoken, "Ngày", ", họp tổ dân phố")
    day_words, _, rest = body.partition(" tháng ")
    month_words, _, year_words = rest.partition(" năm ")
    assert (heard(day_words), heard(month_words), heard(year_words)) == (day.day, day.month, day.year)


@BOUNDED
@given(st.dates(dt.date(2024, 1, 1), dt.date(2024, 12, 31)),
       st.sampled_from(["ngày", "sáng mai", "chậm nhất", "từ", "hôm nay"]))
def test_day_month_with_a_date_word_is_a_date(day: dt.date, cue: str) -> None:
    spoken = normalize(f"{cue} {day.day}/{day.month}, phường họp").text
    body = _inside(spoken, cue, ", phường họp").removeprefix("ngày ")
    day_words, _, month_words = body.partition(" tháng ")
    assert (heard(day_words), heard(month_words)) == (day.day, day.month)


@BOUNDED
@given(st.integers(1, 9999), st.integers(1, 9999), st.sampled_from(["xã", "hộ", "tiêu chí", "tổ dân phố"]))
def test_a_count_after_a_over_b_is_a_ratio(a: int, b: int, noun: str) -> None:
    spoken = normalize(f"hoàn thành {a}/{b} {noun} được giao").text
    if a > b and b <= 12 and a <= 31 and (a, b) != (24, 7):
        assert "tháng" in spoken  # a > b cannot be "a out of b": a date
        return
    first, _, second = _inside(spoken, "hoàn thành", f"{noun} được giao").partition(" trên ")
    assert (heard(first), heard(second)) == (a, b)


@BOUNDED
@given(st.integers(0, 23), st.integers(0, 59), DIALECTS)
def test_times_read_back(hour: int, minute: int, dialect: str) -> None:
    spoken = normalize(f"họp lúc {hour}h{minute:02}", dialect=dialect).text  # type: ignore[arg-type]
    body = _inside(spoken, "họp lúc", "")
    hours, _, minutes = body.partition(" giờ")
    assert heard(hours) == hour
    assert (heard(minutes.removesuffix(" phút")) if minutes.strip() else 0) == minute


@BOUNDED
@given(st.text("0123456789", min_size=3, max_size=5), st.sampled_from(["gọi", "bấm số", "soạn tin UH gửi",
                                                                         "đường dây nóng", "tổng đài"]))
def test_service_numbers_read_digit_by_digit(number: str, trigger: str) -> None:
    spoken = normalize(f"{trigger} {number} để được hỗ trợ").text
    digits = _inside(spoken, spoken.split(" ")[0], "để được hỗ trợ").split()[-len(number):]
    assert "".join(str(DIGIT[w]) for w in digits) == number
