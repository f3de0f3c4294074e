"""The airing events of the audit log in words (issue 14): a bulletin aired from the phone or the
API (``broadcast_air``, with its title), a schedule's slot fired (``schedule_fired``: aired or
failed, and why), a live session or a relay on air and ended (``live_start`` / ``live_end``,
``relay_start`` / ``relay_end``: who, which zones by name, how long, why it ended). Their detail
is the JSON written by ``controller.accounts.audit.details``; anything else is left to
controller/ui/audit_names.py."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from controller.api.run_reasons import run_reason
from controller.ui.i18n import T
from scheduler import TIMEZONE

EVENTS = ("broadcast_air", "schedule_fired", "live_start", "live_end", "relay_start", "relay_end")
#: an end reason's first words → its sentence (the exact reasons have ``end_<reason>`` in i18n.py)
_ENDS = {"finished: the stream ended": "au_end_stream", "refused": "au_end_refused",
         "missed": "au_end_missed", "not aired": "au_end_not_aired", "unreachable": "au_end_unreachable",
         "controller lost": "au_end_lost"}


def event(action: str, detail: str, lang: str, zones: Mapping[str, str]) -> tuple[str, str] | None:
    """(object, result) of an airing event, or None when ``action`` is not one (or its detail is
    not the JSON it should be: an entry from before these words)."""
    if action not in EVENTS or not detail.startswith("{"):
        return None
    try:
        d = json.loads(detail)
    except ValueError:
        return None
    if not isinstance(d, dict):
        return None
    t = T[lang]
    where = _where(d, t, zones)
    prio = t[d["priority"]] if d.get("priority") in ("priority", "emergency") else ""
    if action == "broadcast_air":
        at = t["au_ev_at"].format(t=_when(d["at"])) if isinstance(d.get("at"), int) else ""
        return _what(d, t), _join(where, prio, at)
    if action == "schedule_fired":
        obj = _join(t["au_ev_schedule"].format(n=d.get("schedule", "")) if "schedule" in d else "",
                    _what(d, t))
        return obj, _join(_outcome(d, t), where, prio)
    if action in ("live_start", "relay_start"):
        units = t["au_ev_units"].format(n=d["units"]) if isinstance(d.get("units"), int) else ""
        by = t["au_ev_by_schedule"].format(n=d["schedule"]) if d.get("schedule") else ""
        return (str(d.get("url") or where), _join(where if d.get("url") else "", units, prio, by))
    reason = _end_reason(str(d.get("reason") or ""), t)
    secs = d.get("seconds")
    lasted = t["au_ev_lasted"].format(d=_duration(secs, t)) if isinstance(secs, int) and secs > 0 else \
        t["au_ev_never_on_air"] if d.get("on_air") is False else ""
    return (str(d.get("url") or where), _join(where if d.get("url") else "", reason, lasted))


def _join(*parts: str) -> str:
    return " · ".join(p for p in parts if p)


def _what(d: dict[str, Any], t: dict[str, str]) -> str:
    if d.get("title"):
        return t["au_ev_bulletin"].format(t=d["title"])
    if d.get("url"):
        return t["au_ev_relay_of"].format(u=d["url"])
    return t["au_ev_bulletin_n"].format(n=d["bulletin"]) if d.get("bulletin") else ""


def _where(d: dict[str, Any], t: dict[str, str], zones: Mapping[str, str]) -> str:
    if d.get("all"):
        return t["whole_ward"]
    parts = []
    if d.get("zones"):
        parts.append(t["au_ev_zones"].format(z=", ".join(zones.get(str(z), str(z)) for z in d["zones"])))
    if d.get("nodes"):
        parts.append(t["au_ev_nodes"].format(z=", ".join(str(n) for n in d["nodes"])))
    return _join(*parts)


def _outcome(d: dict[str, Any], t: dict[str, str]) -> str:
    if d.get("outcome") == "failed":
        code, args = run_reason(str(d.get("reason") or ""))
        sentence = t.get(f"runr_{code}") or t.get(str(code)) or t["runr_other"]
        filled = {**args, "reason": str(d.get("reason") or "")}
        for k, v in filled.items():
            sentence = sentence.replace("{" + k + "}", str(v))
        return t["au_ev_failed"].format(r=sentence.rstrip("."))
    if d.get("url"):
        return t["au_ev_relay_set"]
    n = d.get("broadcasts")
    return t["au_ev_aired_n"].format(n=n) if isinstance(n, int) and n > 1 else t["au_ev_aired"]


def _end_reason(reason: str, t: dict[str, str]) -> str:
    if f"end_{reason}" in t:
        return t[f"end_{reason}"]
    for start, key in _ENDS.items():
        if reason.startswith(start):
            return t[key]
    return t["au_end_other"] if reason else ""


def _duration(secs: int, t: dict[str, str]) -> str:
    m, s = divmod(secs, 60)
    return t["au_ev_min_s"].format(m=m, s=s) if m else t["au_ev_s"].format(s=s)


def _when(ms: int) -> str:
    return f"{datetime.fromtimestamp(ms / 1000, TIMEZONE):%H:%M %d/%m/%Y}"
