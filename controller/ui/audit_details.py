"""The details of the audit log's named entries in words (issue 14): what the code writes for
logs and scripts in English (``zones=tdp1``, ``org=None``, ``enabled=True``, ``from bulletin:5``,
a unit's or a preset's changes as JSON, why a bulletin went back to approval) shown as a
Vietnamese (or English) phrase, zones by name; never the raw text on a Vietnamese screen. Also
why a bulletin needs approval again, for the bulletins screen."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping

from controller.ui.i18n import T

Zones = Mapping[str, str]

_FIELDS = {"text": ("nội dung", "text"), "title": ("tiêu đề", "title"), "voice": ("giọng đọc", "voice"),
           "speed": ("tốc độ đọc", "speed"), "priority": ("mức ưu tiên", "priority"),
           "dialect": ("giọng vùng", "dialect"), "name": ("tên", "name"), "zones": ("khu vực", "zones"),
           "lat": ("vị trí", "position"), "lon": ("vị trí", "position"), "url": ("địa chỉ", "address"),
           "enabled": ("bật / tắt", "on / off"), "volume": ("âm lượng", "volume")}
_WD = {"vi": ["T2", "T3", "T4", "T5", "T6", "T7", "CN"],
       "en": ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]}


def _zones(raw: str, zones: Zones) -> str:
    return ", ".join(zones.get(z, z) for z in raw.split(",") if z)


def _fields(names: list[str], lang: str) -> str:
    i = 0 if lang == "vi" else 1
    return ", ".join(dict.fromkeys(_FIELDS[n][i] if n in _FIELDS else n.replace("_", " ") for n in names))


def _changes(detail: str, lang: str, zones: Zones) -> str:
    """A JSON body of changes: the fields changed (a unit's zones by name, on / off in words)."""
    try:
        got = json.loads(detail)
    except ValueError:
        return detail
    if not isinstance(got, dict):
        return detail
    t = T[lang]
    out = [_fields([k for k in got if k not in ("zones", "enabled")], lang)]
    if isinstance(got.get("zones"), list):
        out.append(t["au_ev_zones"].format(z=", ".join(zones.get(str(z), str(z)) for z in got["zones"])))
    if isinstance(got.get("enabled"), bool):
        out.append(t["au_dt_on"] if got["enabled"] else t["au_dt_off"])
    return " · ".join(x for x in out if x)


def _node(detail: str, lang: str, zones: Zones) -> str:
    t = T[lang]
    m = re.match(r"zones=([^;]*)(; broker credentials revoked)?", detail)
    if m is None:
        return detail
    out = [t["au_ev_zones"].format(z=_zones(m[1], zones))] if m[1] else []
    if m[2]:
        out.append(t["au_dt_revoked"])
    return " · ".join(out)


def _window(detail: str, lang: str, zones: Zones) -> str:
    t = T[lang]
    if (m := re.fullmatch(r"(\d\d:\d\d)-(\d\d:\d\d) days=\[([\d, ]*)\]", detail)) is not None:
        days = [int(x) for x in m[3].replace(" ", "").split(",") if x]
        names = ", ".join(_WD[lang][d] for d in days if 0 <= d < 7)
        return t["au_dt_window"].format(a=m[1], b=m[2], d=names)
    if (m := re.fullmatch(r"enabled=(True|False)", detail)) is not None:
        return t["au_dt_on"] if m[1] == "True" else t["au_dt_off"]
    if (m := re.fullmatch(r"zone=(\S+)", detail)) is not None:
        return t["au_ev_zones"].format(z=zones.get(m[1], m[1]))
    return detail


def _org(detail: str, lang: str, zones: Zones) -> str:
    org = detail.removeprefix("org=")
    return "" if org in ("", "None") else f"{T[lang]['au_org']}: {org}"


def _bypass(detail: str, lang: str, zones: Zones) -> str:
    t = T[lang]
    if (m := re.match(r"aired as an emergency while (\w+)", detail)) is not None:
        sched = re.search(r"schedule:(\d+)", detail)
        return t["au_dt_bypass"].format(a=t.get(f"st_{m[1]}", t.get(m[1], m[1]))) + (
            " · " + t["au_ev_by_schedule"].format(n=sched[1]) if sched else "")
    if (m := re.match(r"schedule:(\d+): ", detail)) is not None:
        return t["au_ev_by_schedule"].format(n=m[1]) + " · " + t["au_dt_bypass_lapsed"]
    return detail


def _units(detail: str, lang: str, zones: Zones) -> str:
    m = re.match(r"(\d+) unit\(s\)(?:: (.*))?", detail)
    return detail if m is None else T[lang]["au_ev_units"].format(n=m[1]) + (f" ({m[2]})" if m[2] else "")


def _library(detail: str, lang: str, zones: Zones) -> str:
    if (m := re.fullmatch(r"(\w+) (\d+) ms", detail)) is not None:
        secs = round(int(m[2]) / 1000)
        return f"{m[1].upper()} · " + T[lang]["au_ev_s"].format(s=secs)
    if (m := re.fullmatch(r"audio:(\d+)", detail)) is not None:
        return T[lang]["au_dt_audio"].format(n=m[1])
    return detail


def _duplicate(detail: str, lang: str, zones: Zones) -> str:
    m = re.fullmatch(r"from bulletin:(\d+)", detail)
    return detail if m is None else T[lang]["au_dt_copy_of"].format(n=m[1])


def _reapproval(detail: str, lang: str, zones: Zones) -> str:
    return reapproval_reason(detail, lang)


def _alarm(detail: str, lang: str, zones: Zones) -> str:
    t = T[lang]
    return t.get(f"alarm_{detail}", t["au_dt_alarm"]) if detail else ""


_DETAILS: dict[str, Callable[[str, str, Zones], str]] = {
    "node_add": _node, "node_retire": _node, "node_update": _changes, "relay_preset_update": _changes,
    "zone_window_add": _window, "zone_window_update": _window, "zone_window_delete": _window,
    "zone_add": _org, "emergency_bypass": _bypass, "emergency_bypass_refused": _bypass,
    "broadcast_end_waiting": _units, "library_add": _library, "library_use": _library,
    "bulletin_duplicate": _duplicate, "bulletin_reapproval": _reapproval, "alarm_clear": _alarm,
}


def named_detail(action: str, detail: str, lang: str, zones: Zones) -> str | None:
    """The words of a named entry's detail, or None when this module does not know the action."""
    fn = _DETAILS.get(action)
    return None if fn is None else fn(detail, lang, zones)


def reapproval_reason(reason: str, lang: str) -> str:
    """Why a bulletin went back to the approval queue (controller/bulletins/binding.py ``reopen``
    callers), in words; the English page shows the reason itself."""
    t = T[lang]
    if lang != "vi" or not reason:
        return reason
    if (m := re.fullmatch(r"edited by (\S+) \((.*)\) after approval", reason)) is not None:
        return t["au_dt_edited"].format(u=m[1], f=_fields(m[2].split(", "), lang))
    if (m := re.match(r"the pronunciation entry '(.*?)' (?:→ '(.*?)'|now read '(.*?)')", reason)) is not None:
        said = t["au_dt_dictionary"].format(w=m[1], s=m[2] or m[3])
    elif (m := re.match(r"removing the pronunciation entry '(.*?)'", reason)) is not None:
        said = t["au_dt_dictionary_gone"].format(w=m[1])
    else:
        return t["runr_other"]
    if "could not be rendered again" in reason:
        return said + " " + t["au_dt_kept"]
    if (m := re.search(r"changed its spoken text to: (.*)$", reason, re.S)) is not None:
        return said + " " + t["au_dt_reads_now"].format(s=m[1][:200])
    return said
