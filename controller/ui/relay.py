"""The relay screen (tiếp sóng): start a relay now, at a time or every day, and follow the current
and recent relays. Actions go through the JSON API (``/api/relays``, ``/api/schedules``) with
CSRF; the list is refreshed by the page from ``GET /relay/items`` (any logged-in user of the
ward may look; only operators and admins may relay)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from fastapi import APIRouter
from fastapi.responses import HTMLResponse, JSONResponse, Response
from sqlmodel import col, select

from controller.accounts.roles import CAN_AIR
from controller.api.guards import schedule_visible
from controller.api.live import all_visible, visible_node_ids
from controller.api.presets import visible_presets
from controller.fleet.models import Zone
from controller.relays import store
from controller.relays.models import Relay
from controller.ui import relay_words
from controller.ui.i18n import T
from controller.ui.render import Page, PageDep, zones
from scheduler import TIMEZONE
from scheduler.models import Schedule

router = APIRouter(include_in_schema=False)

ITEMS = 20  # current and recent relays on the screen
URLS = 10  # stream addresses offered again (<datalist>)


def used_urls(p: Page) -> list[str]:
    """Stream URLs used before (relays and relay schedules the user may see), newest first."""
    assert p.user is not None
    seen = visible_node_ids(p.s, p.user)
    dated: dict[str, int] = {}
    for r in p.s.exec(select(Relay).order_by(col(Relay.created_at).desc()).limit(200)).all():
        if r.url not in dated and all_visible(r.nodes, seen):
            dated[r.url] = r.created_at
    q = select(Schedule).where(col(Schedule.relay).is_not(None)).where(col(Schedule.deleted).is_(False))
    for sc in p.s.exec(q.order_by(col(Schedule.updated_at).desc()).limit(200)).all():
        url = str((sc.relay or {}).get("url") or "")
        if url and dated.get(url, 0) < sc.updated_at and schedule_visible(p.s, p.user, sc):
            dated[url] = sc.updated_at
    return [u for u, _ in sorted(dated.items(), key=lambda kv: -kv[1])][:URLS]


def _local(iso: str | None) -> str:
    if not iso:
        return ""
    return datetime.fromisoformat(iso).astimezone(TIMEZONE).strftime("%d/%m %H:%M")


def _clock(ms: int | None) -> str:
    """An instant (epoch ms) as the ward's time of day, HH:MM:SS."""
    return datetime.fromtimestamp(ms / 1000, tz=TIMEZONE).strftime("%H:%M:%S") if ms else ""


def _ends(d: dict[str, Any]) -> str:
    if not d.get("duration_s"):
        return ""
    base = d.get("start_at") or d.get("started_at")
    if not base:
        return ""
    return _local((datetime.fromisoformat(base) + timedelta(seconds=float(d["duration_s"]))).isoformat())


def relay_items(p: Page) -> list[dict[str, Any]]:
    """The current and recent relays as the screen shows them: texts in the page's language."""
    assert p.user is not None
    t = T[p.lang]
    hub = p.sv.relays
    seen = visible_node_ids(p.s, p.user)
    names = {z.id: z.name for z in p.s.exec(select(Zone)).all()}
    out = []
    for row in store.recent(p.s, limit=200 if seen is not None else ITEMS):
        if not all_visible(row.nodes, seen):
            continue
        sess = hub.session(row.id)
        d = hub.describe(sess) if sess is not None else store.public_row(row)
        state = str(d["state"])
        if d["mode"] == "republish":
            playing = len(d.get("units_live") or []) if state == "playing" else 0
        else:
            playing = len(d.get("units_playing") or [])
        target = row.target or {}
        where = (t["whole_ward"] if target.get("all") else
                 ", ".join(names.get(z, z) for z in target.get("zones") or []) or
                 ", ".join(target.get("nodes") or []))
        reason = str(d.get("reason") or "")
        out.append({
            "id": d["id"], "url": d["url"], "mode": d["mode"], "state": state,
            "state_text": t.get(state, state), "priority": d["priority"],
            "priority_text": t.get(d["priority"], d["priority"]),
            "mode_text": t["relay_" + d["mode"]] if "relay_" + d["mode"] in t else d["mode"],
            "where": where, "units": len(d.get("nodes") or []), "playing": playing,
            "started": _local(d.get("started_at")),
            "planned": "" if d.get("started_at") else _local(d.get("start_at")),
            "ends": _local(d.get("ended_at")) or _ends(d),
            "reason": relay_words.reason(t, p.lang, reason),
            "last_error": relay_words.error(p.lang, str(d.get("last_error") or "")),
            "retries": int(d.get("retries") or 0), "user": d.get("user") or "",
            "units_interrupted": len(d.get("units_interrupted") or []),
            "active": state in store.ACTIVE, "schedule_id": d.get("schedule_id"),
            # who runs it and when it last renewed its lease (a takeover shows as a new owner)
            "owner": row.owner if state in store.ACTIVE else "",
            "owner_seen": _clock(row.owner_seen_at) if state in store.ACTIVE else ""})
        if len(out) >= ITEMS:
            break
    return out


@router.get("/relay", response_class=HTMLResponse)
async def relay_page(p: PageDep) -> Response:
    if not isinstance(p, Page):
        return p
    assert p.user is not None
    t = T[p.lang]
    strings = {k: t[k] for k in ("relay_stop_confirm", "relay_interrupted", "relay_units_retrying",
                                 "relay_units_playing", "relay_started", "relay_planned", "relay_ends",
                                 "relay_retries", "relay_owner", "relay_seen", "stop", "nothing",
                                 "relay_need_url", "relay_need_zone", "relay_need_time",
                                 "relay_need_duration", "relay_saved_daily", "relay_created", "units_count",
                                 "reason")}
    presets = [{"name": x.name, "url": x.url, "mode": x.mode} for x in visible_presets(p.s, p.user)]
    return p.render("relay.html", "relays", zones=zones(p), urls=used_urls(p), items=relay_items(p),
                    presets=presets,
                    can_air=p.user.role in CAN_AIR, relay_strings=strings)


@router.get("/relay/items")
async def relay_list(p: PageDep) -> Response:
    """The list the screen refreshes every few seconds (no page reload). Async, like the API:
    the relay hub's sessions are read on the event loop that changes them."""
    if not isinstance(p, Page):
        return JSONResponse({"detail": "not logged in"}, status_code=401)
    return JSONResponse(relay_items(p), headers={"Cache-Control": "no-store"})
