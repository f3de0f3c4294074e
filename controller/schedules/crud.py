"""Schedules in the database: checks with messages a ward officer can act on, CRUD, and views.

A schedule airs a bulletin (``bulletin_id``) or relays a stream (``relay``: url, mode,
duration_s — e.g. VOV news every morning at 06:00 for 30 minutes); exactly one of the two.

Any controller may write schedules; the one that fires them picks the change up (at once when
it was made on the same controller). A change bumps ``version``; deleting is a soft delete so
the runs of a schedule stay readable. The request bodies are the API's (controller/api/schemas.py);
this module reads them through the small protocols below, so it does not depend on the API.

A once slot is refused as past only if it is not after the moment the request was received
(``received_ms``, measured once by the caller): the time spent checking it is not held against it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date, datetime
from typing import Any, Protocol

from sqlmodel import Session, col, select

from controller.airing.rules import airing_refusal
from controller.bulletins.models import AudioAsset, Bulletin
from controller.core.errors import ServiceError
from controller.fleet.targets import resolve_targets
from devices.protocol import now_ms
from scheduler.clock import TIMEZONE, local
from scheduler.models import Schedule, ScheduleRun
from scheduler.reconcile import next_slots
from scheduler.triggers import Spec, build_trigger, first_slot_at_or_after

ONE_OF = "give either bulletin_id (a bulletin to air) or relay (a stream to relay)"


class TargetIn(Protocol):
    """Where it airs (``controller.api.schemas.Target``)."""

    @property
    def all(self) -> bool: ...
    @property
    def zones(self) -> Sequence[str]: ...
    @property
    def nodes(self) -> Sequence[str]: ...


class RelayIn(Protocol):
    """The stream a relay schedule relays (``controller.api.schemas.RelaySpec``)."""

    @property
    def url(self) -> str: ...
    @property
    def mode(self) -> str: ...
    @property
    def duration_s(self) -> int: ...


class NewSchedule(Protocol):
    """A schedule to create (``controller.api.schemas.ScheduleCreate``)."""

    @property
    def name(self) -> str: ...
    @property
    def bulletin_id(self) -> int | None: ...
    @property
    def relay(self) -> RelayIn | None: ...
    @property
    def target(self) -> TargetIn: ...
    @property
    def when(self) -> Spec: ...
    @property
    def priority(self) -> str | None: ...
    @property
    def repeat(self) -> int: ...
    @property
    def interval_s(self) -> int: ...
    @property
    def exceptions(self) -> Sequence[date]: ...
    @property
    def valid_for_s(self) -> int | None: ...
    @property
    def enabled(self) -> bool: ...


class ScheduleChanges(Protocol):
    """A change to a schedule (``controller.api.schemas.ScheduleUpdate``): what was given is set."""

    @property
    def model_fields_set(self) -> set[str]: ...
    @property
    def name(self) -> str | None: ...
    @property
    def bulletin_id(self) -> int | None: ...
    @property
    def relay(self) -> RelayIn | None: ...
    @property
    def target(self) -> TargetIn | None: ...
    @property
    def when(self) -> Spec | None: ...
    @property
    def priority(self) -> str | None: ...
    @property
    def repeat(self) -> int | None: ...
    @property
    def interval_s(self) -> int | None: ...
    @property
    def exceptions(self) -> Sequence[date] | None: ...
    @property
    def valid_for_s(self) -> int | None: ...
    @property
    def enabled(self) -> bool | None: ...


def _target_row(t: TargetIn) -> dict[str, Any]:
    return {"all": bool(t.all), "zones": list(t.zones), "nodes": list(t.nodes)}


def _relay_row(r: RelayIn) -> dict[str, Any]:
    return {"url": r.url, "mode": r.mode, "duration_s": r.duration_s}


def _iso(ms: int | None) -> str | None:
    """Epoch ms → ISO 8601 in ward time, to the second (what the schedule views show)."""
    return None if ms is None else local(ms).isoformat(timespec="seconds")


def _check(s: Session, *, bulletin_id: int | None, relay: Mapping[str, Any] | None,
           targets: Mapping[str, Any], repeat: int, interval_s: int, priority: str | None) -> None:
    if relay is not None:
        duration_ms = int(relay["duration_s"]) * 1000
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
    resolve_targets(s, all_nodes=bool(targets.get("all")), zones=list(targets.get("zones") or []),
                    nodes=list(targets.get("nodes") or []))
    if repeat > 1 and 0 < interval_s * 1000 < duration_ms:
        raise ServiceError(422, f"repeats every {interval_s} s would overlap: the bulletin lasts "
                                f"{duration_ms / 1000:.1f} s (interval_s 0 plays them back to back)")


def _check_future(when: Spec, received_ms: int) -> None:
    """Refuse a schedule with no slot after the moment its request was received."""
    now = local(received_ms)
    if when.kind == "once":
        assert when.at is not None
        if when.at <= now:
            raise ServiceError(422, f"the time {when.at.isoformat()} is in the past "
                                    f"(now {now.isoformat(timespec='seconds')})")
    elif first_slot_at_or_after(build_trigger(when), now) is None:
        raise ServiceError(422, "this schedule would never air: no slot after now"
                                + (f" (its end_date {when.end_date} has passed)" if when.end_date else ""))


def create_schedule(s: Session, body: NewSchedule, *, created_by: str,
                    received_ms: int | None = None) -> Schedule:
    """Check and store a new schedule; ``received_ms``: when the request came in (default: now)."""
    received = now_ms() if received_ms is None else received_ms
    relay = _relay_row(body.relay) if body.relay is not None else None
    targets = _target_row(body.target)
    _check(s, bulletin_id=body.bulletin_id, relay=relay, targets=targets, repeat=body.repeat,
           interval_s=body.interval_s, priority=body.priority)
    _check_future(body.when, received)
    now = now_ms()
    row = Schedule(
        name=body.name, bulletin_id=body.bulletin_id, targets=targets, relay=relay, priority=body.priority,
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


def airing_after(row: Schedule, body: ScheduleChanges) -> tuple[int | None, str | None, bool]:
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


def update_schedule(s: Session, schedule_id: int, body: ScheduleChanges, *,
                    received_ms: int | None = None) -> Schedule:
    """Check and apply a change; ``received_ms``: when the request came in (default: now)."""
    received = now_ms() if received_ms is None else received_ms
    row = get_schedule(s, schedule_id)
    given = body.model_fields_set
    when = body.when if body.when is not None else Spec.model_validate(row.spec)
    targets = _target_row(body.target) if body.target is not None else dict(row.targets)
    if body.bulletin_id is not None and body.relay is not None:
        raise ServiceError(422, ONE_OF)
    bulletin_id, priority, _ = airing_after(row, body)
    relay = _relay_row(body.relay) if body.relay is not None else row.relay
    if body.bulletin_id is not None:
        relay = None  # now airs a bulletin
    repeat = body.repeat if body.repeat is not None else row.repeat
    interval_s = body.interval_s if body.interval_s is not None else row.interval_s
    enabling = body.enabled is True and not row.enabled
    if enabling or given & {"bulletin_id", "relay", "target", "when", "repeat", "interval_s", "priority"}:
        _check(s, bulletin_id=bulletin_id, relay=relay, targets=targets, repeat=repeat, interval_s=interval_s,
               priority=priority)
        if "when" in given or enabling:
            _check_future(when, received)
    _apply(row, body, bulletin_id=bulletin_id, relay=relay, targets=targets, when=when, priority=priority,
           repeat=repeat, interval_s=interval_s)
    s.add(row)
    s.commit()
    s.refresh(row)
    return row


def _apply(row: Schedule, body: ScheduleChanges, *, bulletin_id: int | None, relay: dict[str, Any] | None,
           targets: dict[str, Any], when: Spec, priority: str | None, repeat: int, interval_s: int) -> None:
    given = body.model_fields_set
    if "name" in given and body.name is not None:
        row.name = body.name
    row.bulletin_id, row.targets, row.relay, row.priority = bulletin_id, targets, relay, priority
    row.kind, row.spec = when.kind, when.model_dump(mode="json")
    row.repeat, row.interval_s = repeat, interval_s
    if body.exceptions is not None:
        row.exceptions = sorted({d.isoformat() for d in body.exceptions})
    if "valid_for_s" in given:
        row.valid_for_s = body.valid_for_s
    if body.enabled is not None:
        row.enabled = body.enabled
    now = now_ms()
    row.version, row.version_at, row.updated_at = row.version + 1, now, now


def delete_schedule(s: Session, schedule_id: int) -> Schedule:
    row = get_schedule(s, schedule_id)
    now = now_ms()
    row.deleted, row.enabled = True, False
    row.version, row.version_at, row.updated_at = row.version + 1, now, now
    s.add(row)
    s.commit()
    return row


def schedule_view(s: Session, row: Schedule, *, upcoming: int = 5) -> dict[str, Any]:
    """A schedule as the API shows it (``SchedulePublic``), with its next ``upcoming`` slots."""
    assert row.id is not None
    bulletin = s.get(Bulletin, row.bulletin_id) if row.bulletin_id is not None else None
    after = datetime.now(tz=TIMEZONE)
    nxt = [t for t in next_slots(row, upcoming + len(row.exceptions), after)
           if t.date().isoformat() not in row.exceptions][:upcoming]
    return {
        "id": row.id, "name": row.name, "bulletin_id": row.bulletin_id,
        "bulletin_title": bulletin.title if bulletin else None, "relay": row.relay, "target": row.targets,
        "priority": row.priority, "when": row.spec, "repeat": row.repeat, "interval_s": row.interval_s,
        "exceptions": row.exceptions, "valid_for_s": row.valid_for_s, "enabled": row.enabled,
        "deleted": row.deleted, "version": row.version, "created_by": row.created_by,
        "created_at": _iso(row.created_at), "updated_at": _iso(row.updated_at),
        "last_slot_at": _iso(row.last_slot_at), "next_slots": [t.isoformat() for t in nxt],
    }


def run_view(r: ScheduleRun) -> dict[str, Any]:
    """One slot's run as the API shows it (``RunPublic``)."""
    return {"slot_at": _iso(r.slot_at), "status": r.status, "late_ms": r.late_ms, "reason": r.reason,
            "broadcast_ids": r.broadcast_ids, "fired_by": r.fired_by, "version": r.version,
            "recorded_at": _iso(r.updated_at)}


def list_runs(s: Session, schedule_id: int | None, *, limit: int, statuses: list[str] | None = None,
              since_ms: int | None = None) -> list[ScheduleRun]:
    """Runs, newest slot first."""
    q = select(ScheduleRun)
    if schedule_id is not None:
        q = q.where(ScheduleRun.schedule_id == schedule_id)
    if statuses:
        q = q.where(col(ScheduleRun.status).in_(statuses))
    if since_ms is not None:
        q = q.where(col(ScheduleRun.slot_at) >= since_ms)
    q = q.order_by(col(ScheduleRun.slot_at).desc(), col(ScheduleRun.id).desc()).limit(limit)
    return list(s.exec(q).all())

