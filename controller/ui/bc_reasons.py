"""Why a broadcast ended, in the page's language (issue 14: no English reason on a Vietnamese
screen). ``Broadcast.reason`` is the controller's English sentence (the API keeps it as it is);
the delivery view shows it through :func:`said`: each sentence the controller writes has its
Vietnamese here, one with a value (a slot time, a lateness, an error) by its pattern. A sentence
not known here is left out on the Vietnamese screen (the status, in words, stays) and shown as it
is in English."""

from __future__ import annotations

import re

FIXED: dict[str, tuple[str, str]] = {
    "cancelled before airing": ("trước giờ phát", "before airing"),
    "cancelled by staff": ("cán bộ đã dừng phát", "stopped by staff"),
    "air time passed its validity": ("quá thời hạn phát", "air time passed its validity"),
    "airing failed; see the controller log": ("lỗi khi phát (xem nhật ký máy chủ)",
                                              "airing failed; see the controller log"),
    "its bulletin was rejected": ("bản tin đã bị từ chối", "its bulletin was rejected"),
    "it was edited after approval; it needs approval again": (
        "bản tin đã được sửa sau khi duyệt, cần duyệt lại",
        "edited after approval; it needs approval again"),
    "its audio changed after approval; it needs approval again": (
        "âm thanh đã thay đổi sau khi duyệt, cần duyệt lại",
        "its audio changed after approval; it needs approval again"),
}
PATTERNS: list[tuple[re.Pattern[str], tuple[str, str]]] = [
    (re.compile(r"^slot \S+ passed (?P<s>\d+) s ago"),
     ("lỡ giờ phát (trễ {s} giây)", "missed its slot ({s} s late)")),
    (re.compile(r"^cannot load its audio"), ("không đọc được âm thanh của bản tin", "cannot load its audio")),
]


def said(lang: str, reason: str) -> str:
    """``reason`` in ``lang`` ("vi" or "en"); "" when there is none or Vietnamese does not know it."""
    i = 0 if lang == "vi" else 1
    if not reason:
        return ""
    if reason in FIXED:
        return FIXED[reason][i]
    for pat, words in PATTERNS:
        if m := pat.match(reason):
            return words[i].format(**m.groupdict())
    return "" if lang == "vi" else reason
