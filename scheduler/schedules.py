"""Schedules as the API sees them: bodies, checks with messages a ward officer can act on, CRUD.

A schedule airs a bulletin (``bulletin_id``) or relays a stream (``relay``: url, mode,
duration_s — e.g. VOV news every morning at 06:00 for 30 minutes); exactly one of the two.

Any controller may write schedules; the one that fires them picks the change up (at once when
it was made on the same controller). A change bumps ``version``; deleting is a soft delete so
the runs of a schedule stay readable.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from sqlmodel import Session, col, select

from controller.airing.rules import airing_refusal
from controller.bulletins.models import AudioAsset, Bulletin
from controller.core.errors import ServiceError
from controller.core.ids import DbId, Flag
from controller.fleet.targets import resolve_targets
from devices.protocol import now_ms
from scheduler.models import Schedule, ScheduleRun
from scheduler.reconcile import next_slots
from scheduler.service import TIMEZONE
from scheduler.triggers import Spec, build_trigger, first_slot_at_or_after

Priority = Literal["normal", "priority", "emergency"]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ScheduleTarget(Strict):
    all: Flag = Field(False, description="the whole ward")
    zones: list[str] = Field(default_factory=list, max_length=500)
    nodes: list[str] = Field(default_factory=list, max_length=5000)


class RelaySpec(Strict):
    """A stream relayed (tiếp sóng) by every slot of the schedule, for ``duration_s``."""

    url: str = Field(max_length=500, pattern=r"^https?://[^\s/]+[^\s]*$",
                     description="upstream stream: Icecast MP3/AAC or HLS (.m3u8), http:// or https://")
    mode: Literal["node_fetch", "republish"] = Field(
        "node_fetch", description="node_fetch: units fetch the URL; republish: the controller fetches it")
    duration_s: int = Field(ge=10, le=24 * 3600, description="how long each slot relays (seconds); the "
                                                             "relay ends at slot + duration_s")


class ScheduleCreate(Strict):
    name: str = Field("", max_length=200)
    bulletin_id: DbId | None = Field(None, description="the bulletin to air (a JSON integer); or give "
                                                       "`relay`")
    relay: RelaySpec | None = Field(None, description="a stream to relay instead of a bulletin")
    target: ScheduleTarget
    when: Spec
    priority: Priority | None = Field(None, description="default: the bulletin's class")
    repeat: int = Field(1, ge=1, le=10, description="airings per slot (1-10)")
    interval_s: int = Field(0, ge=0, le=86_400,
                            description="seconds from one repeat's start to the next; 0 = back to back")
    exceptions: list[date] = Field(default_factory=list, max_length=366,
                                   description="dates (ward time) on which the schedule does not air")
    valid_for_s: int | None = Field(None, ge=5, le=7 * 24 * 3600,
                                    description="after its play time, how long a unit may still play it")
    enabled: Flag = True

    @model_validator(mode="after")
    def _one_content(self) -> ScheduleCreate:
        if (self.bulletin_id is None) == (self.relay is None):
            raise ValueError("give either bulletin_id (a bulletin to air) or relay (a stream to relay)")
        return self


class ScheduleUpdate(Strict):
    name: str | None = Field(None, max_length=200)
    bulletin_id: DbId | None = None
    relay: RelaySpec | None = None
    target: ScheduleTarget | None = None
    when: Spec | None = None
    priority: Priority | None = None
    repeat: int | None = Field(None, ge=1, le=10)
    interval_s: int | None = Field(None, ge=0, le=86_400)
    exceptions: list[date] | None = Field(None, max_length=366)
    valid_for_s: int | None = Field(None, ge=5, le=7 * 24 * 3600)
    enabled: Flag | None = None


class SchedulePublic(BaseModel):
    id: int
    name: str
    bulletin_id: int | None
    bulletin_title: str | None
    relay: dict[str, Any] | None
    target: dict[str, Any]
    priority: str | None
    when: dict[str, Any]
    repeat: int
    interval_s: int
    exceptions: list[str]
    valid_for_s: int | None
    enabled: bool
    deleted: bool
    version: int
    created_by: str
    created_at: str | None
    updated_at: str | None
    last_slot_at: str | None
    next_slots: list[str]


class RunPublic(BaseModel):
    slot_at: str | None
    status: str
    late_ms: int | None
    reason: str
    broadcast_ids: list[str]
    fired_by: str
    version: int
    recorded_at: str | None


def iso(ms: int | None) -> str | None:
    if ms is None:
        return None
    return datetime.fromtimestamp(ms / 1000, tz=UTC).astimezone(TIMEZONE).isoformat(timespec="seconds")


def _check(s: Session, *, bulletin_id: int | None, relay: RelaySpec | None, target: ScheduleTarget,
           when: Spec, repeat: int, interval_s: int, check_future: bool, priority: str | None) -> None:
    if relay is not None:
        duration_ms = relay.duration_s * 1000
        if repeat != 1:
            raise ServiceError(422, "a relay schedule airs once per slot (repeat 1); add more times instead")
    else:
        assert bulletin_id is not None
        bulletin = s.get(Bulletin, bulletin_id)
        if bulletin is None:
            raise ServiceError(404, f"bulletin {bulletin_id} does not exist")
        if (why := airing_refusal(bulletin, priority)) is not None:
            raise ServiceError(409, why)
        asset = s.get(AudioAsset, bulletin.audio_sha256) if bulletin.audio_sha256 else None
        if asset is None:
            raise ServiceError(409, f"bulletin {bulletin_id} has no audio")
        duration_ms = asset.duration_ms
    resolve_targets(s, all_nodes=target.all, zones=target.zones, nodes=target.nodes)
    if repeat > 1 and 0 < interval_s * 1000 < duration_ms:
        raise ServiceError(422, f"repeats every {interval_s} s would overlap: the bulletin lasts "
                                f"{duration_ms / 1000:.1f} s (interval_s 0 plays them back to back)")
    if not check_future:
        return
    now = datetime.now(tz=TIMEZONE)
    if when.kind == "once":
        assert when.at is not None
        if when.at <= now:
            raise ServiceError(422, f"the time {when.at.isoformat()} is in the past "
                                    f"(now {now.isoformat(timespec='seconds')})")
    elif first_slot_at_or_after(build_trigger(when), now) is None:
        raise ServiceError(422, "this schedule would never air: no slot after now"
                                + (f" (its end_date {when.end_date} has passed)" if when.end_date else ""))


def create_schedule(s: Session, body: ScheduleCreate, *, created_by: str) -> Schedule:
    _check(s, bulletin_id=body.bulletin_id, relay=body.relay, target=body.target, when=body.when,
           repeat=body.repeat, interval_s=body.interval_s, check_future=True, priority=body.priority)
    now = now_ms()
    row = Schedule(
        name=body.name, bulletin_id=body.bulletin_id, targets=body.target.model_dump(),
        relay=body.relay.model_dump() if body.relay else None,
        priority=body.priority,
        kind=body.when.kind, spec=body.when.model_dump(mode="json"), repeat=body.repeat,
        interval_s=body.interval_s, exceptions=sorted({d.isoformat() for d in body.exceptions}),
        valid_for_s=body.valid_for_s, enabled=body.enabled, version=1, version_at=now,
        created_by=created_by, created_at=now, updated_at=now,
    )
    s.add(row)
    s.commit()
    s.refresh(row)
    return row


def get_schedule(s: Session, schedule_id: int, *, allow_deleted: bool = False) -> Schedule:
    row = s.get(Schedule, schedule_id)
    if row is None or (row.deleted and not allow_deleted):
        raise ServiceError(404, f"schedule {schedule_id} does not exist")
    return row


def airing_after(row: Schedule, body: ScheduleUpdate) -> tuple[int | None, str | None, bool]:
    """What the schedule airs once ``body`` is applied: (bulletin id or None for a relay, priority,
    whether the change touches what or how it airs) — for the caller's approval and ward checks."""
    given = body.model_fields_set
    if body.bulletin_id is not None:
        bulletin_id: int | None = body.bulletin_id
    elif body.relay is not None:
        bulletin_id = None
    else:
        bulletin_id = row.bulletin_id
    priority = body.priority if "priority" in given else row.priority
    touches = bool(given & {"bulletin_id", "relay", "priority"}) or (body.enabled is True and not row.enabled)
    return bulletin_id, priority, touches


def update_schedule(s: Session, schedule_id: int, body: ScheduleUpdate) -> Schedule:
    row = get_schedule(s, schedule_id)
    given = body.model_fields_set
    when = body.when if body.when is not None else Spec.model_validate(row.spec)
    target = body.target if body.target is not None else ScheduleTarget.model_validate(row.targets)
    if body.bulletin_id is not None and body.relay is not None:
        raise ServiceError(422, "give either bulletin_id (a bulletin to air) or relay (a stream to relay)")
    bulletin_id, priority, _ = airing_after(row, body)
    relay = body.relay if body.relay is not None else (
        RelaySpec.model_validate(row.relay) if row.relay else None)
    if body.bulletin_id is not None:
        relay = None  # now airs a bulletin
    repeat = body.repeat if body.repeat is not None else row.repeat
    interval_s = body.interval_s if body.interval_s is not None else row.interval_s
    enabling = body.enabled is True and not row.enabled
    if enabling or given & {"bulletin_id", "relay", "target", "when", "repeat", "interval_s", "priority"}:
        _check(s, bulletin_id=bulletin_id, relay=relay, target=target, when=when, repeat=repeat,
               interval_s=interval_s, check_future="when" in given or enabling, priority=priority)
    if "name" in given and body.name is not None:
        row.name = body.name
    row.bulletin_id, row.targets, row.kind, row.spec = bulletin_id, target.model_dump(), when.kind, \
        when.model_dump(mode="json")
    row.relay = relay.model_dump() if relay else None
    row.priority = priority
    row.repeat, row.interval_s = repeat, interval_s
    if body.exceptions is not None:
        row.exceptions = sorted({d.isoformat() for d in body.exceptions})
    if "valid_for_s" in given:
        row.valid_for_s = body.valid_for_s
    if body.enabled is not None:
        row.enabled = body.enabled
    now = now_ms()
    row.version, row.version_at, row.updated_at = row.version + 1, now, now
    s.add(row)
    s.commit()
    s.refresh(row)
    return row


def delete_schedule(s: Session, schedule_id: int) -> Schedule:
    row = get_schedule(s, schedule_id)
    now = now_ms()
    row.deleted, row.enabled = True, False
    row.version, row.version_at, row.updated_at = row.version + 1, now, now
    s.add(row)
    s.commit()
    return row


def public(s: Session, row: Schedule, *, upcoming: int = 5) -> SchedulePublic:
    assert row.id is not None
    bulletin = s.get(Bulletin, row.bulletin_id) if row.bulletin_id is not None else None
    after = datetime.now(tz=TIMEZONE)
    nxt = [t for t in next_slots(row, upcoming + len(row.exceptions), after)
           if t.date().isoformat() not in row.exceptions][:upcoming]
    return SchedulePublic(
        id=row.id, name=row.name, bulletin_id=row.bulletin_id,
        bulletin_title=bulletin.title if bulletin else None, relay=row.relay, target=row.targets,
        priority=row.priority,
        when=row.spec, repeat=row.repeat, interval_s=row.interval_s,
        exceptions=row.exceptions, valid_for_s=row.valid_for_s, enabled=row.enabled, deleted=row.deleted,
        version=row.version, created_by=row.created_by, created_at=iso(row.created_at),
        updated_at=iso(row.updated_at), last_slot_at=iso(row.last_slot_at),
        next_slots=[t.isoformat() for t in nxt],
    )


def list_runs(s: Session, schedule_id: int | None, *, limit: int, statuses: list[str] | None = None,
              since_ms: int | None = None) -> list[tuple[int, RunPublic]]:
    q = select(ScheduleRun)
    if schedule_id is not None:
        q = q.where(ScheduleRun.schedule_id == schedule_id)
    if statuses:
        q = q.where(col(ScheduleRun.status).in_(statuses))
    if since_ms is not None:
        q = q.where(col(ScheduleRun.slot_at) >= since_ms)
    rows = s.exec(q.order_by(col(ScheduleRun.slot_at).desc(), col(ScheduleRun.id).desc()).limit(limit)).all()
    return [(r.schedule_id, RunPublic(
        slot_at=iso(r.slot_at), status=r.status, late_ms=r.late_ms, reason=r.reason,
        broadcast_ids=r.broadcast_ids, fired_by=r.fired_by, version=r.version, recorded_at=iso(r.updated_at),
    )) for r in rows]
