"""Availability: the share of time units were online over a period, per zone.

Computed from the presence events (online / offline / shutdown) that controller/fleet/presence.py
records for every change; a unit's state at the start of the period is its last event
before it (no event at all: not online). A unit counts only from when it was added (its
``created_at``): a unit added yesterday is not "offline" for the weeks before it existed.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlmodel import Session, col, select

from controller.fleet.models import Node, NodeEvent

_STATES = ("online", "offline", "shutdown")


def online_ms(events: Iterable[tuple[int, str]], start_ms: int, end_ms: int) -> int:
    """Milliseconds online within [start, end) from (time, kind) events sorted by time."""
    total, since = 0, None
    for at, kind in events:
        if kind not in _STATES:
            continue
        t = min(max(at, start_ms), end_ms)
        if since is not None and kind != "online":
            total += t - since
            since = None
        elif since is None and kind == "online":
            since = t
    if since is not None:
        total += end_ms - since
    return total


def zone_availability(s: Session, unit_zones: dict[str, list[str]], start_ms: int,
                      end_ms: int) -> dict[str, float]:
    """Zone → percent of unit-time online in [start, end), each unit's time counted from when it
    was added (units of several zones count in each; a zone whose units were all added after
    ``end_ms`` is left out)."""
    if end_ms <= start_ms or not unit_zones:
        return {}
    rows = s.exec(select(NodeEvent.node_id, NodeEvent.at, NodeEvent.kind)
                  .where(col(NodeEvent.node_id).in_(list(unit_zones)), col(NodeEvent.at) < end_ms,
                         col(NodeEvent.kind).in_(_STATES))
                  .order_by(col(NodeEvent.node_id), col(NodeEvent.at))).all()
    added = dict(s.exec(select(Node.id, Node.created_at).where(col(Node.id).in_(list(unit_zones)))).all())
    per_unit: dict[str, list[tuple[int, str]]] = {}
    for node_id, at, kind in rows:
        per_unit.setdefault(node_id, []).append((at, kind))
    sums: dict[str, list[int]] = {}  # zone → [online ms, unit ms]
    for unit, zones in unit_zones.items():
        since = max(start_ms, added.get(unit, start_ms))
        if since >= end_ms:
            continue
        online = online_ms(per_unit.get(unit, []), since, end_ms)
        for z in zones:
            acc = sums.setdefault(z, [0, 0])
            acc[0] += online
            acc[1] += end_ms - since
    return {z: round(100 * on / span, 1) for z, (on, span) in sums.items()}
