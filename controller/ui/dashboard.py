"""What the dashboard (``/``) shows under "Đang phát" and "Cảnh báo", apart from the page itself.

"Đang phát" is what really sounds now: broadcasts with a unit playing (the caller filters them
with their summary), relays on air (:meth:`controller.relays.hub.RelayHub.on_air`) and live sessions
on air (:meth:`controller.live.hub.LiveHub.on_air`), each with its zones by name, also those
another controller on the same database runs (their rows, the units' telemetry). "Cảnh báo" lists
the units offline (longest first, with since when), the units with an alarm, and the broadcasts of
the last 24 h that failed on some units (failed or expired deliveries), each linking to its
delivery view. Only what the user's ward may see is listed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import func
from sqlmodel import col, select

from controller.airing.models import Broadcast, BroadcastStatus, Delivery, DeliveryState
from controller.api.scope import visible_bulletin_ids
from controller.bulletins.models import Bulletin
from controller.live.models import LiveLog
from controller.relays.models import Relay, RelayOwner
from controller.ui.i18n import T
from controller.ui.render import Page, UnitRow, when, zones
from devices.protocol import now_ms

DAY_MS = 24 * 3600 * 1000
FAILED_SHOWN = 10  # failed broadcasts listed at most
_NOT_PLAYED = (DeliveryState.FAILED.value, DeliveryState.EXPIRED.value)


@dataclass
class OnAir:
    kind: str  # relay | live
    title: str
    zones: str
    priority: str
    href: str
    tally: str  # how many of its units play it now


@dataclass
class Failed:
    id: str
    title: str
    when: str
    failed: int  # units it failed on (0: it could not be sent at all)
    total: int


def zone_names(p: Page) -> dict[str, str]:
    return {z.id: z.name or z.id for z in zones(p)}


def where_text(p: Page, target: dict[str, Any], nodes: list[str], names: dict[str, str]) -> str:
    """The zones of a target by name ("Toàn phường" for all; else the unit count)."""
    t = T[p.lang]
    if target.get("all"):
        return t["dash_whole_ward"]
    zs = [names.get(z, z) for z in target.get("zones") or []]
    return ", ".join(zs) if zs else t["dash_units_n"].format(n=len(nodes))


def on_air(p: Page, unit_ids: set[str]) -> list[OnAir]:
    """Relays and live sessions on air now that reach some of the user's units (``unit_ids``)."""
    names = zone_names(p)
    out: list[OnAir] = []
    t = T[p.lang]
    for r in p.sv.relays.on_air():
        if unit_ids.intersection(r.nodes):
            out.append(OnAir("relay", f'{t["dash_relay"]}: {r.url[:80]}',
                             where_text(p, r.target, r.nodes, names), r.priority.value, "/relay",
                             t["dash_units_playing"].format(n=len(p.sv.relays.units(r)), total=len(r.nodes))))
    for s in p.sv.live_hub.on_air():
        if unit_ids.intersection(s.nodes):
            out.append(OnAir("live", f'{t["dash_live"]}: {s.user}',
                             where_text(p, s.target, s.nodes, names), s.priority.value, "/live.html",
                             t["dash_units_playing"].format(n=len(p.sv.live_hub.units(s)),
                                                            total=len(s.nodes))))
    return out + _elsewhere(p, unit_ids, names)


def _elsewhere(p: Page, unit_ids: set[str], names: dict[str, str]) -> list[OnAir]:
    """Relays and live sessions another controller (on this database) has on air: from their rows,
    the tally from the units' telemetry (which every controller receives). A relay counts while
    its owner's lease is live (``relay_owner``); a live session while a unit plays it."""
    t, tel = T[p.lang], p.sv.presence.telemetry_of
    mine = {r.id for r in p.sv.relays.on_air()} | {s.id for s in p.sv.live_hub.on_air()}
    out: list[OnAir] = []
    leased = select(Relay).join(RelayOwner, col(RelayOwner.relay_id) == Relay.id).where(
        Relay.state == "playing", col(RelayOwner.expires_at) >= now_ms())
    for r in p.s.exec(leased).all():
        if r.id not in mine and unit_ids.intersection(r.nodes):
            n = sum(1 for u in r.nodes if tel(u).get("relay") == "playing")
            out.append(OnAir("relay", f'{t["dash_relay"]}: {r.url[:80]}',
                             where_text(p, r.target, r.nodes, names), r.priority, "/relay",
                             t["dash_units_playing"].format(n=n, total=len(r.nodes))))
    for s in p.s.exec(select(LiveLog).where(LiveLog.state == "live")).all():
        n = sum(1 for u in s.nodes if tel(u).get("source") == "live" and tel(u).get("playing") == s.id)
        if s.id not in mine and n and unit_ids.intersection(s.nodes):
            out.append(OnAir("live", f'{t["dash_live"]}: {s.user}',
                             where_text(p, s.target, s.nodes, names), s.priority, "/live.html",
                             t["dash_units_playing"].format(n=n, total=len(s.nodes))))
    return out


def offline_units(p: Page, us: list[UnitRow]) -> list[dict[str, str]]:
    """Units offline, the longest offline first, each with since when."""
    off = sorted((u for u in us if u.status == "offline"), key=lambda u: u.last_seen or 0)
    return [{"id": u.id, "name": u.name or u.id,
             "since": T[p.lang]["dash_offline_since"].format(at=when(u.last_seen)) if u.last_seen
             else T[p.lang]["dash_offline_never"]} for u in off]


def failed_broadcasts(p: Page) -> list[Failed]:
    """Broadcasts aired in the last 24 h that did not play on some units, newest first."""
    assert p.user is not None
    since = now_ms() - DAY_MS
    q = select(Broadcast).where(col(Broadcast.air_at) >= since).where(
        col(Broadcast.status) != BroadcastStatus.SCHEDULED.value)
    ids = visible_bulletin_ids(p.s, p.user)
    if ids is not None:
        q = q.where(col(Broadcast.bulletin_id).in_(ids))
    rows = {bc.id: bc for bc in p.s.exec(q).all()}
    if not rows:
        return []
    tally: dict[str, list[int]] = {}
    cq = (select(Delivery.broadcast_id, Delivery.state, func.count())
          .where(col(Delivery.broadcast_id).in_(list(rows))).group_by(Delivery.broadcast_id, Delivery.state))
    for bid, state, n in p.s.exec(cq).all():
        t = tally.setdefault(bid, [0, 0])
        t[1] += n
        if state in _NOT_PLAYED:
            t[0] += n
    bad = [bc for bc in rows.values()
           if tally.get(bc.id, [0, 0])[0] or bc.status == BroadcastStatus.FAILED.value]
    bad.sort(key=lambda bc: -bc.air_at)
    bad = bad[:FAILED_SHOWN]
    titles = {b.id: b.title for b in p.s.exec(
        select(Bulletin).where(col(Bulletin.id).in_({bc.bulletin_id for bc in bad}))).all()}
    return [Failed(bc.id, titles.get(bc.bulletin_id) or bc.id, when(bc.air_at), *tally.get(bc.id, [0, 0]))
            for bc in bad]
