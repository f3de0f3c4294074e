"""Why a relay ended and what its station last did wrong, in the page's language (issue 14: no
English on a Vietnamese screen). The relay rows keep the controller's English (``reason``,
``last_error``: the API's); the relay screen shows them through :func:`reason` and :func:`error`.
A sentence not known here is said generally on the Vietnamese screen and shown as it is in English."""

from __future__ import annotations

import re

# (pattern, Vietnamese, English); {n}: the pattern's group "n"
REASONS: tuple[tuple[re.Pattern[str], str, str], ...] = tuple((re.compile(p), vi, en) for p, vi, en in (
    (r"^finished: the stream ended", "Đài phát đã ngừng phát", "The station's stream ended"),
    (r"^refused", "Địa chỉ này không được phép hoặc không truy cập được",
     "Refused: the station is not allowed"),
    (r"^not aired: the zones were busy", "Không phát: các khu vực bận suốt thời gian đã đặt",
     "Not aired: the zones were busy for its whole window"),
    (r"^missed", "Bị lỡ: máy chủ không chạy vào giờ đã đặt", "Missed: the controller was not running"),
))
ERRORS: tuple[tuple[re.Pattern[str], str, str], ...] = tuple((re.compile(p), vi, en) for p, vi, en in (
    (r"^the station could not be reached", "Không kết nối được tới đài phát",
     "The station could not be reached"),
    (r"^the stream ended", "Luồng phát bị ngắt", "The stream ended"),
    (r"HTTP (?P<n>\d{3})", "Đài phát trả lời lỗi HTTP {n}", "The station answered HTTP {n}"),
    (r"HLS playlist stopped advancing", "Danh sách phát HLS ngừng cập nhật",
     "The HLS playlist stopped advancing"),
    (r"HLS|playlist", "Danh sách phát HLS không đọc được", "The HLS playlist cannot be read"),
))


def _said(rules: tuple[tuple[re.Pattern[str], str, str], ...], lang: str, text: str, other: str) -> str:
    for pat, vi, en in rules:
        if m := pat.search(text):
            return (vi if lang == "vi" else en).format(**m.groupdict())
    return other if lang == "vi" else text


def reason(t: dict[str, str], lang: str, text: str) -> str:
    """A relay's end ``reason`` in words ("" for none)."""
    if not text:
        return ""
    return t.get("end_" + text) or _said(REASONS, lang, text, "Đã kết thúc")


def error(lang: str, text: str) -> str:
    """The station's last error in words ("" for none)."""
    return _said(ERRORS, lang, text, "Đài phát gặp lỗi") if text else ""
