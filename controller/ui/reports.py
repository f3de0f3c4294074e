"""Schedule (agenda + new schedule), history with filters and an SVG chart; the rows the exports
(controller/ui/exports.py) write.

The history holds the broadcasts, the live sessions from a phone (``livelog``) and the relays
(``relay``); the period and zone filters apply to all three, the status filter to broadcasts.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Query
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import func
from sqlmodel import col, select

from controller.accounts.models import User
from controller.airing.models import Broadcast, Delivery
from controller.airing.summary import DeliveryRow, online_from, summarize
from controller.api.live import all_visible, session_rows, visible_node_ids
from controller.api.scope import visible_bulletin_ids
from controller.bulletins.models import AudioAsset, Bulletin
from controller.fleet.availability import zone_availability
from controller.fleet.models import Node, Zone
from controller.relays.models import Relay
from controller.schedules.agenda import build_agenda
from controller.ui.calendar import slot_title
from controller.ui.i18n import T
from controller.ui.render import Page, PageDep, units, when, zones
from devices.protocol import now_ms as p_now_ms
from scheduler import TIMEZONE

router = APIRouter(include_in_schema=False)

WEEKDAYS = {"vi": ["T2", "T3", "T4", "T5", "T6", "T7", "CN"],
           "en": ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]}


def _ms(d: date | None, end: bool = False) -> int | None:
    if d is None:
        return None
    at = datetime.combine(d + timedelta(days=1) if end else d, time(0), tzinfo=TIMEZONE)
    return int(at.timestamp() * 1000)


@dataclass(frozen=True)
class Names:
    """Zone and unit names for the rows (reports show names, never ids), in one language."""

    zones: dict[str, str]
    units: dict[str, str]
    lang: str = "vi"

    @classmethod
    def load(cls, s: Any, lang: str = "vi") -> Names:
        return cls({z.id: z.name for z in s.exec(select(Zone)).all()},
                   {n.id: n.name or n.id for n in s.exec(select(Node)).all()}, lang)

    def where(self, target: dict[str, Any], nodes: Sequence[str] = ()) -> str:
        """The zones of ``target`` by name ("Toàn phường" for the whole ward), else its units."""
        if target.get("all"):
            return T[self.lang]["whole_ward"]
        named = [self.zones.get(z, z) for z in target.get("zones") or []]
        return ", ".join(named) or self.of_units(list(target.get("nodes") or nodes)[:20])

    def of_units(self, ids: list[str]) -> str:
        return ", ".join(self.units.get(n, n) for n in ids)


def history_rows(s: Any, user: User, status: str | None, zone: str | None, since: date | None,
                 until: date | None, limit: int = 1000,
                 online: Callable[[str], bool] = lambda _: True, lang: str = "vi") -> list[dict[str, Any]]:
    """The broadcast log; ``_outcome_vi``/``_outcome_en`` say what happened (controller/airing/summary.py;
    ``online`` is presence's answer for the broadcasts still on air); ``zones`` by name."""
    q = select(Broadcast).order_by(col(Broadcast.air_at).desc())
    if status:
        q = q.where(Broadcast.status == status)
    if (lo := _ms(since)) is not None:
        q = q.where(col(Broadcast.air_at) >= lo)
    if (hi := _ms(until, end=True)) is not None:
        q = q.where(col(Broadcast.air_at) < hi)
    ids = visible_bulletin_ids(s, user)
    if ids is not None:
        q = q.where(col(Broadcast.bulletin_id).in_(ids))
    names = Names.load(s, lang)
    out = []
    for bc in s.exec(q.limit(limit)).all():
        bzones = list(bc.targets.get("zones") or [])
        if zone and zone not in bzones and not bc.targets.get("all"):
            continue
        b = s.get(Bulletin, bc.bulletin_id)
        asset = s.get(AudioAsset, bc.audio_sha256)
        tally: dict[str, int] = {}
        deliveries = s.exec(select(Delivery).where(Delivery.broadcast_id == bc.id)).all()
        for d in deliveries:
            tally[d.state] = tally.get(d.state, 0) + 1
        sm = summarize(bc, [DeliveryRow(d.node_id, d.state, d.reason) for d in deliveries], online,
                       p_now_ms())
        n = sum(tally.values())
        played, failed, offline = tally.get("played", 0), tally.get("failed", 0), tally.get("offline", 0)
        out.append({"broadcast": bc.id, "bulletin": bc.bulletin_id, "title": b.title if b else "",
                    "text": b.text if b else "", "class": bc.priority, "status": bc.status,
                    "air_at": when(bc.play_at or bc.air_at), "_at": bc.play_at or bc.air_at,
                    "zones": names.where(bc.targets, [d.node_id for d in deliveries]), "units": n,
                    "played": played, "failed": failed, "offline": offline,
                    "other": n - played - failed - offline, "created_by": bc.created_by,
                    "_zones": bzones, "_minutes": (asset.duration_ms if asset else 0) * bc.repeat / 60000,
                    "_outcome_vi": sm.text_vi, "_outcome_en": sm.text_en})
    return out


def _in_zone(target: dict[str, Any], zone: str | None) -> bool:
    return not zone or zone in (target.get("zones") or []) or bool(target.get("all"))


def _secs(start: int | None, end: int | None) -> int | str:
    return round((end - start) / 1000) if start and end else ""


def live_rows(s: Any, user: User, zone: str | None, since: date | None, until: date | None,
              limit: int = 1000, lang: str = "vi") -> list[dict[str, Any]]:
    """Live sessions from a phone (the ward's own for a ward user), newest first."""
    names = Names.load(s, lang)
    out = []
    for r in session_rows(s, user, since, until, None, limit):
        if not _in_zone(r.target, zone):
            continue
        out.append({"session": r.id, "user": r.user, "class": r.priority,
                    "zones": names.where(r.target, r.nodes), "units": len(r.nodes),
                    "units_heard": names.of_units(r.units_heard), "refused": len(r.units_refused),
                    "state": r.state, "reason": r.reason, "opened_at": when(r.opened_at),
                    "started_at": when(r.started_at), "ended_at": when(r.ended_at),
                    "_opened": r.opened_at, "_started": r.started_at, "_ended": r.ended_at,
                    "duration_s": _secs(r.started_at, r.ended_at), "frames": r.frames,
                    "audio": f"/api/live/sessions/{r.id}/audio" if r.archive else "",
                    "audio_s": round(r.archive_duration_ms / 1000) if r.archive_duration_ms else "",
                    "archive_note": r.archive_note, "_heard": len(r.units_heard)})
    return out


def relay_rows(s: Any, user: User, zone: str | None, since: date | None, until: date | None,
               limit: int = 1000, lang: str = "vi") -> list[dict[str, Any]]:
    """Relays (tiếp sóng) by the time they started (or were due, or were made), newest first."""
    at = func.coalesce(Relay.started_at, Relay.start_at, Relay.created_at)
    q = select(Relay).order_by(at.desc())
    if (lo := _ms(since)) is not None:
        q = q.where(at >= lo)
    if (hi := _ms(until, end=True)) is not None:
        q = q.where(at < hi)
    seen = visible_node_ids(s, user)
    names = Names.load(s, lang)
    out = []
    for r in s.exec(q.limit(limit if seen is None else 100_000)).all():
        if not all_visible(r.nodes, seen) or not _in_zone(r.target, zone):
            continue
        out.append({"relay": r.id, "url": r.url, "mode": r.mode, "class": r.priority,
                    "zones": names.where(r.target, r.nodes), "units": len(r.nodes), "state": r.state,
                    "reason": r.reason, "started_at": when(r.started_at or r.start_at),
                    "ended_at": when(r.ended_at), "_started": r.started_at or r.start_at,
                    "_ended": r.ended_at,
                    "duration_s": _secs(r.started_at, r.ended_at), "created_by": r.created_by})
        if len(out) >= limit:
            break
    return out


def chart(p: Page, rows: list[dict[str, Any]], start_ms: int, end_ms: int) -> dict[str, Any]:
    """Airtime per zone (minutes, from the rows) and availability per zone over the same period
    (share of unit-time online, from the presence events)."""
    airtime: dict[str, float] = {z.id: 0.0 for z in zones(p)}
    for r in rows:
        for z in r["_zones"] or list(airtime):
            if z in airtime:
                airtime[z] += r["_minutes"]
    unit_zones = {u.id: [z for z in u.zones if z in airtime] for u in units(p)}
    avail = zone_availability(p.s, unit_zones, start_ms, end_ms)
    top = max(airtime.values(), default=0) or 1
    names = {z.id: z.name or z.id for z in zones(p)}  # by name, not id
    minutes = (lambda m: f"{m:.1f}".replace(".", ",")) if p.lang == "vi" else (lambda m: f"{m:.1f}")
    bars = [{"zone": z, "name": names.get(z, z), "w": round(100 * m / top, 1), "v": minutes(m),
             "a": round(avail.get(z, 0.0))}
            for z, m in sorted(airtime.items(), key=lambda zm: names.get(zm[0], zm[0]))]
    return {"bars": bars}


def period_ms(since: date | None, until: date | None) -> tuple[int, int]:
    """The report period: [from 00:00, to 24:00) in Asia/Ho_Chi_Minh; default the last 7 days."""
    now = p_now_ms()
    end = now if until is None else min(now, _local_midnight_ms(until) + 86_400_000)
    start = end - 7 * 86_400_000 if since is None else _local_midnight_ms(since)
    return start, max(start, end)


def _local_midnight_ms(d: date) -> int:
    return int(datetime(d.year, d.month, d.day, tzinfo=TIMEZONE).timestamp() * 1000)


@router.get("/history", response_class=HTMLResponse)
def history_page(p: PageDep, status: str | None = None, zone: str | None = None,
                 since: date | None = Query(None, alias="from"), until: date | None = Query(None, alias="to"),
                 ) -> Response:
    if not isinstance(p, Page):
        return p
    assert p.user is not None
    rows = history_rows(p.s, p.user, status or None, zone or None, since, until,
                        online=online_from(p.sv.presence.status), lang=p.lang)
    filters = (("status", status), ("zone", zone), ("from", since), ("to", until))
    q = urlencode({k: v for k, v in filters if v})
    return p.render("history.html", "history", rows=rows[:200], zones=zones(p), status=status or "",
                    zone=zone or "", since=since or "", until=until or "", query=q,
                    chart=chart(p, rows, *period_ms(since, until)),
                    live=live_rows(p.s, p.user, zone or None, since, until, limit=50, lang=p.lang),
                    relays=relay_rows(p.s, p.user, zone or None, since, until, limit=50, lang=p.lang))


@router.get("/schedule", response_class=HTMLResponse)
def schedule_page(p: PageDep) -> Response:
    if not isinstance(p, Page):
        return p
    assert p.user is not None
    mine = {z.id for z in zones(p)}
    agenda = build_agenda(p.s, days=7)
    per_zone = [z for z in agenda["zones"] if z["zone"] in mine][:20]  # ≤ 20 zones × 30 items a screen
    for z in per_zone:
        z["items"] = z["items"][:30]
        for it in z["items"]:
            at = datetime.fromisoformat(it["at"])
            it["when"] = f"{WEEKDAYS[p.lang][at.weekday()]} {at:%d/%m %H:%M}"
            it["title"] = slot_title(it, p.lang)
    ids = visible_bulletin_ids(p.s, p.user)
    q = select(Bulletin).where(Bulletin.approval == "approved").order_by(col(Bulletin.id).desc()).limit(50)
    approved = [b for b in p.s.exec(q).all() if ids is None or b.id in ids]
    return p.render("schedule.html", "schedule", agenda=per_zone, weekdays=WEEKDAYS[p.lang],
                    conflicts=agenda["conflicts"], problems=agenda["problems"], bulletins=approved,
                    zones=zones(p), zone_names={z.id: z.name for z in zones(p)},
                    extra={k: v for k, v in T[p.lang].items() if k.startswith(("sch_", "run_", "runr_"))
                           or k in ("whole_ward", "nothing", "new_schedule")})


