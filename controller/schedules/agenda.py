"""The agenda: what airs in each zone over the next days, with overlaps flagged.

Computed from the ``Schedule`` rows (the source of truth), not from the job store. An item
lasts the bulletin's audio duration (a relay: its ``duration_s``); repeats played back to back
make one item of duration × repeats, spaced repeats are one item each. Two items in a zone conflict when they
overlap in time and reach at least one common unit. Exception dates appear as ``skipped``
items (never conflicting); recent missed and failed slots are listed under ``problems``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any

from sqlmodel import Session, col, select

from controller.bulletins.models import AudioAsset, Bulletin
from controller.fleet.models import RETIRED, Node, NodeZone, Zone
from controller.schedules.crud import list_runs, run_view
from devices.protocol import now_ms
from scheduler.clock import TIMEZONE
from scheduler.models import RunStatus, Schedule
from scheduler.triggers import Spec, build_trigger, slots

NO_ZONE = "-"
MAX_SLOTS_PER_SCHEDULE = 2000
RELAY_TITLE = "Tiếp sóng / relay: "  # + the stream URL: a relay slot's title
MAX_RANGE_DAYS = 62  # a month view with its leading and trailing weeks fits


def day_range(first: date, last: date) -> tuple[datetime, datetime]:
    """[first 00:00, the day after last 00:00) in ward time; ValueError for a reversed or too long range."""
    if last < first:
        raise ValueError(f"the agenda's end date {last} is before its start date {first}")
    if (last - first).days + 1 > MAX_RANGE_DAYS:
        raise ValueError(f"the agenda covers at most {MAX_RANGE_DAYS} days at a time")
    start = datetime.combine(first, time(0), TIMEZONE)
    return start, datetime.combine(last + timedelta(days=1), time(0), TIMEZONE)


@dataclass
class Item:
    schedule_id: int
    bulletin_id: int | None
    title: str
    priority: str
    start: datetime
    duration_ms: int
    repeat_index: int
    status: str  # planned | skipped
    nodes: frozenset[str]
    conflicts: list[dict[str, Any]] = field(default_factory=list)

    @property
    def end(self) -> datetime:
        return self.start + timedelta(milliseconds=self.duration_ms)

    def public(self) -> dict[str, Any]:
        return {
            "schedule_id": self.schedule_id, "bulletin_id": self.bulletin_id, "title": self.title,
            "kind": "bulletin" if self.bulletin_id is not None else "relay",
            "priority": self.priority, "at": self.start.isoformat(), "end": self.end.isoformat(),
            "duration_ms": self.duration_ms, "repeat_index": self.repeat_index, "status": self.status,
            "conflicts": self.conflicts,
        }


def _zone_nodes(targets: dict[str, Any], members: dict[str, set[str]],
                node_zones: dict[str, list[str]]) -> dict[str, set[str]]:
    """zone id → the units of that zone a schedule reaches."""
    if targets.get("all"):
        out: dict[str, set[str]] = {z: set(n) for z, n in members.items() if n}
        lone = {n for n, zs in node_zones.items() if not zs}
        if lone:
            out[NO_ZONE] = lone
        return out
    out = {}
    for z in targets.get("zones") or []:
        if members.get(z):
            out.setdefault(z, set()).update(members[z])
    for n in targets.get("nodes") or []:
        for z in node_zones.get(n) or [NO_ZONE]:
            out.setdefault(z, set()).add(n)
    return out


def build_agenda(s: Session, *, days: int = 7, start: datetime | None = None,
                 end: datetime | None = None) -> dict[str, Any]:
    """The agenda of [start, end) (default: from now for ``days`` days); the calendar asks for a
    week or a month (controller/ui/calendar.py), the schedule screen for the next 7 days."""
    start = start or datetime.now(tz=TIMEZONE).replace(microsecond=0)
    end = end or start + timedelta(days=days)
    zones = {z.id: z.name for z in s.exec(select(Zone)).all()}
    members: dict[str, set[str]] = {z: set() for z in zones}
    in_service = select(Node.id).where(col(Node.status) != RETIRED)
    node_zones: dict[str, list[str]] = {n: [] for n in s.exec(in_service).all()}
    for nz in s.exec(select(NodeZone)).all():
        members.setdefault(nz.zone_id, set()).add(nz.node_id)
        node_zones.setdefault(nz.node_id, []).append(nz.zone_id)
    per_zone: dict[str, list[Item]] = {}
    truncated: list[int] = []
    rows = s.exec(select(Schedule).where(col(Schedule.enabled)).where(~col(Schedule.deleted))).all()
    for row in rows:
        assert row.id is not None
        title, priority, duration = _what(s, row)
        spaced = row.interval_s > 0 and row.repeat > 1
        reach = _zone_nodes(row.targets, members, node_zones)
        found = list(slots(build_trigger(Spec.model_validate(row.spec)), start, end, MAX_SLOTS_PER_SCHEDULE))
        if len(found) == MAX_SLOTS_PER_SCHEDULE:
            truncated.append(row.id)
        for slot in found:
            status = "skipped" if slot.date().isoformat() in row.exceptions else "planned"
            plays = ([(k, slot + timedelta(seconds=k * row.interval_s), duration) for k in range(row.repeat)]
                     if spaced else [(0, slot, duration * row.repeat)])
            for k, at, dur in plays:
                for zone, nodes in reach.items():
                    per_zone.setdefault(zone, []).append(Item(
                        schedule_id=row.id, bulletin_id=row.bulletin_id,
                        title=title, priority=priority, start=at,
                        duration_ms=dur, repeat_index=k, status=status, nodes=frozenset(nodes)))
    conflicts = sum(_flag_conflicts(items) for items in per_zone.values())
    since = now_ms() - int((end - start).total_seconds() * 1000)
    problems = [{"schedule_id": r.schedule_id, **run_view(r)} for r in list_runs(
        s, None, limit=200, statuses=[RunStatus.MISSED.value, RunStatus.FAILED.value], since_ms=since)]
    return {
        "from": start.isoformat(), "to": end.isoformat(), "timezone": "Asia/Ho_Chi_Minh",
        "zones": [{"zone": z, "name": zones.get(z, "units in no zone"),
                   "items": [i.public() for i in sorted(per_zone[z], key=lambda i: (i.start, i.schedule_id))]}
                  for z in sorted(per_zone)],
        "conflicts": conflicts, "problems": problems, "truncated_schedules": truncated,
    }


def _what(s: Session, row: Schedule) -> tuple[str, str, int]:
    """(title, priority, duration ms) of what a schedule airs."""
    if row.relay:
        url = str(row.relay.get("url", ""))
        return (f"{RELAY_TITLE}{url}", row.priority or "normal",
                int(float(row.relay.get("duration_s") or 0) * 1000))
    bulletin = s.get(Bulletin, row.bulletin_id) if row.bulletin_id is not None else None
    asset = s.get(AudioAsset, bulletin.audio_sha256) if bulletin and bulletin.audio_sha256 else None
    return (bulletin.title if bulletin else f"(bulletin {row.bulletin_id} is gone)",
            row.priority or (bulletin.priority if bulletin else "normal"), asset.duration_ms if asset else 0)


def _flag_conflicts(items: list[Item]) -> int:
    """Mark overlapping items (same zone, common units); returns the number of overlapping pairs."""
    live = sorted((i for i in items if i.status == "planned"), key=lambda i: i.start)
    pairs = 0
    for a_idx, a in enumerate(live):
        for b in live[a_idx + 1:]:
            if b.start >= a.end:
                break
            if (a.schedule_id == b.schedule_id and a.start == b.start) or not a.nodes & b.nodes:
                continue
            pairs += 1
            a.conflicts.append({"schedule_id": b.schedule_id, "at": b.start.isoformat()})
            b.conflicts.append({"schedule_id": a.schedule_id, "at": a.start.isoformat()})
    return pairs
