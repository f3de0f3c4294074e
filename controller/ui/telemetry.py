"""A unit's telemetry in words (issue 14): the unit page's *Thông số* shows each field of
docs/protocol.md §telemetry under a Vietnamese (or English) name with its value in the units an
officer reads — the measuring time in ward time, not epoch ms; "Bật" / "Tắt", not True / False;
"3 giờ 5 phút", not 11100 — instead of the raw keys. A field the protocol does not know (a
vendor's own) is shown last, under its own key."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from typing import Any

from scheduler import TIMEZONE

# key → (Vietnamese, English): the names of the fields, in the order they are shown
NAMES: dict[str, tuple[str, str]] = {
    "power": ("Tăng âm", "Amplifier"),
    "volume": ("Âm lượng", "Volume"),
    "source": ("Đang phát gì", "Playing"),
    "playing": ("Mã nội dung đang phát", "Id of what plays"),
    "relay": ("Luồng tiếp sóng", "Relay stream"),
    "faults": ("Lỗi thiết bị", "Faults"),
    "rssi_dbm": ("Cường độ sóng", "Signal strength"),
    "temp_c": ("Nhiệt độ", "Temperature"),
    "storage_free_kb": ("Bộ nhớ còn trống", "Free storage"),
    "uptime_s": ("Chạy liên tục", "Up for"),
    "clock_offset_ms": ("Lệch đồng hồ", "Clock offset"),
    "ip": ("Địa chỉ IP", "IP address"),
    "fw": ("Phiên bản phần mềm", "Firmware"),
    "serial": ("Cổng nối tiếp", "Serial port"),
    "ts": ("Đo lúc", "Measured at"),
}
SKIP = {"v", "node_id", "session", "seq"}  # the envelope, not a reading
WORDS: dict[str, tuple[str, str]] = {
    "on": ("Bật", "On"), "off": ("Tắt", "Off"), "none": ("Không có", "None"),
    "unmeasured": ("chưa đo", "not measured"), "idle": ("Không phát", "Nothing"),
    "bulletin": ("Bản tin", "A bulletin"), "live": ("Phát trực tiếp", "Live"),
    "connecting": ("đang kết nối", "connecting"), "interrupted": ("mất tín hiệu nguồn, đang thử lại",
                                                                  "upstream lost, retrying"),
    "amplifier": ("tăng âm", "amplifier"), "speaker_line": ("đường dây loa", "speaker line"),
    "storage": ("bộ nhớ", "storage"), "power_backup": ("nguồn dự phòng", "backup power"),
    "serial_port": ("cổng nối tiếp", "serial port"),
    "day": ("ngày", "d"), "hour": ("giờ", "h"), "minute": ("phút", "min"), "second": ("giây", "s"),
}
WORDS["relay"] = ("Tiếp sóng", "A relay")
WORDS["playing"] = ("đang phát", "playing")


def _w(lang: str, key: str) -> str:
    return WORDS[key][0 if lang == "vi" else 1]


def _num(lang: str, x: float, digits: int = 0) -> str:
    s = f"{x:,.{digits}f}"
    return s.replace(",", "\0").replace(".", ",").replace("\0", ".") if lang == "vi" else s


def _span(lang: str, seconds: float) -> str:
    s = int(seconds)
    d, h, m = s // 86400, s % 86400 // 3600, s % 3600 // 60
    parts = [(d, "day"), (h, "hour"), (m, "minute")] if s >= 60 else [(s, "second")]
    shown = [f"{n} {_w(lang, unit)}" for n, unit in parts if n][:2]
    return " ".join(shown) or f"0 {_w(lang, 'minute')}"


def _faults(lang: str, v: Any) -> str:
    if not v:
        return _w(lang, "none")
    return ", ".join(_w(lang, f) if f in WORDS else str(f) for f in (v if isinstance(v, list) else [v]))


def _when(_lang: str, v: Any) -> str:
    return f"{datetime.fromtimestamp(v / 1000, TIMEZONE):%d/%m/%Y %H:%M:%S}"


FORMATS: dict[str, Callable[[str, Any], str]] = {
    "power": lambda lang, v: _w(lang, "on" if v else "off"),
    "volume": lambda lang, v: f"{v}",
    "source": lambda lang, v: _w(lang, v) if v in ("idle", "bulletin", "relay", "live") else str(v),
    "relay": lambda lang, v: _w(lang, v) if v in ("connecting", "playing", "interrupted") else str(v),
    "faults": _faults,
    "rssi_dbm": lambda lang, v: f"{_num(lang, v)} dBm",
    "temp_c": lambda lang, v: f"{_num(lang, v, 1)} °C",
    "storage_free_kb": lambda lang, v: (f"{_num(lang, v / 1024, 1)} MB" if v >= 1024
                                        else f"{_num(lang, v)} KB"),
    "uptime_s": _span,
    "clock_offset_ms": lambda lang, v: f"{_num(lang, v)} ms",
    "serial": lambda lang, v: json.dumps(v, ensure_ascii=False) if isinstance(v, dict | list) else str(v),
    "ts": _when,
}


def readable(lang: str, telemetry: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(key, name, value) rows of ``telemetry`` in ``lang``: the known fields in order, then the others
    under their key; an empty or missing reading is "—" (a measurement never taken: "chưa đo")."""
    i = 0 if lang == "vi" else 1
    rows = []
    for key, names in NAMES.items():
        if key not in telemetry:
            continue
        v = telemetry[key]
        if v is None:
            value = _w(lang, "unmeasured")
        elif v == "" or (key == "playing" and telemetry.get("source") == "idle"):
            value = "—"
        else:
            try:
                value = FORMATS[key](lang, v) if key in FORMATS else str(v)
            except (TypeError, ValueError, OverflowError, OSError):  # a unit sent something odd: as sent
                value = str(v)
        rows.append((key, names[i], value))
    rows += [(k, k, str(v)) for k, v in telemetry.items() if k not in NAMES and k not in SKIP]
    return rows
