"""Airing one slot of a schedule (blocking database work; the runner calls it in a thread).

Claim the slot by inserting its ``ScheduleRun`` (UNIQUE schedule_id + slot_at): if the row
already exists the slot was handled — by us before a crash or by another controller — and
nothing more happens. The claim commits together with the first broadcast; the run ends as
aired (late_ms says how late), missed, skipped (exception date) or failed (with the reason).

Every broadcast goes through ``create_broadcast``, which applies the airing rule
(controller/airing.py) to the bulletin as it is at fire time: a bulletin rejected after it was
scheduled fails the run (with the reason) and airs nothing; an emergency slot of an undecided
bulletin is audited as ``emergency_bypass``. That bypass holds only while the schedule's creator
still exists, is active, may change schedules and sees the bulletin's ward
(``airing.bypass_refusal``): otherwise the run fails with the reason, audited as
``emergency_bypass_refused``, and nothing airs. Approved bulletins air whoever made the schedule.

A relay schedule's slot makes one ``Relay`` row (id ``relay-s<schedule>-<slot ms>``, start_at =
the slot, owner = the firing controller) in the same transaction as the run; the controller's
relay hub then starts it at the slot and ends it at slot + duration_s. A relay slot found late
still airs while its window is open (late_ms recorded), and is missed only once it has passed.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from controller.accounts.models import AuditEntry
from controller.accounts.roles import CAN_AIR
from controller.airing.broadcasts import create_broadcast
from controller.airing.rules import bypass_refusal, is_bypass
from controller.bulletins.models import Bulletin
from controller.core.errors import ServiceError
from controller.fleet.targets import resolve_targets
from controller.relays.models import Relay
from devices.protocol import now_ms
from scheduler.models import RunStatus, Schedule, ScheduleRun
from scheduler.service import TIMEZONE

logger = logging.getLogger(__name__)


@dataclass
class FireConfig:
    grace_ms: int
    default_valid_s: int
    holder: str
    owner: str = ""  # the controller (MQTT client id) that runs the relays this one fires


@dataclass
class SlotResult:
    outcome: str  # a RunStatus value, or: duplicate | stale | gone | not-leader
    broadcasts: list[tuple[str, int]] = field(default_factory=list)  # (id, air_at ms)
    reason: str = ""
    relays: list[str] = field(default_factory=list)  # relay ids, for the relay hub


def local(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).astimezone(TIMEZONE)


def _verdict(sc: Schedule, slot_ms: int, now: int, grace_ms: int) -> tuple[RunStatus, str]:
    day = local(slot_ms).date().isoformat()
    if day in sc.exceptions:
        return RunStatus.SKIPPED, f"{day} is an exception date of this schedule"
    late = now - slot_ms
    if sc.relay:  # a relay joins late while its window is still open
        grace_ms = max(grace_ms, int(float(sc.relay.get("duration_s") or 0) * 1000) - 5_000)
    if late > grace_ms:
        return RunStatus.MISSED, (f"no controller fired the slot {local(slot_ms).isoformat()} in time: found "
                                  f"{late / 1000:.0f} s late, beyond the {grace_ms / 1000:.0f} s grace")
    return RunStatus.FIRING, ""


def record_run(engine: Engine, *, schedule_id: int, version: int, slot_ms: int, status: RunStatus,
               reason: str, holder: str) -> bool:
    """Record a slot that did not air (missed/skipped); False if the slot already has a run."""
    with Session(engine, expire_on_commit=False) as s:
        s.add(ScheduleRun(schedule_id=schedule_id, slot_at=slot_ms, version=version, status=status.value,
                          reason=reason[:500], fired_by=holder, late_ms=max(0, now_ms() - slot_ms)))
        try:
            s.flush()
        except IntegrityError:
            return False
        _advance(s, schedule_id, slot_ms)
        s.commit()
    logger.warning("schedule %d slot %s %s: %s", schedule_id, local(slot_ms).isoformat(), status.value,
                   reason)
    return True


def _advance(s: Session, schedule_id: int, slot_ms: int) -> None:
    s.execute(update(Schedule).where(col(Schedule.id) == schedule_id)
              .where((col(Schedule.last_slot_at).is_(None)) | (col(Schedule.last_slot_at) < slot_ms))
              .values(last_slot_at=slot_ms))


def air_slot(engine: Engine, cfg: FireConfig, *, schedule_id: int, version: int, slot_ms: int,
             may_fire: Callable[[], bool]) -> SlotResult:
    """Handle one slot; database errors propagate (the caller retries while within grace)."""
    with Session(engine, expire_on_commit=False) as s:
        sc = s.get(Schedule, schedule_id)
        if sc is None or sc.deleted or not sc.enabled:
            return SlotResult("gone")
        if sc.version != version:
            return SlotResult("stale")
        now = now_ms()
        status, reason = _verdict(sc, slot_ms, now, cfg.grace_ms)
        if not may_fire():
            return SlotResult("not-leader")
        run = ScheduleRun(schedule_id=schedule_id, slot_at=slot_ms, version=version, status=status.value,
                          reason=reason[:500], fired_by=cfg.holder, late_ms=max(0, now - slot_ms))
        s.add(run)
        try:
            s.flush()
        except IntegrityError:
            s.rollback()
            return SlotResult("duplicate")
        _advance(s, schedule_id, slot_ms)
        if status is not RunStatus.FIRING:
            s.commit()
            logger.warning("schedule %d slot %s %s: %s", schedule_id, local(slot_ms).isoformat(),
                           status.value, reason)
            return SlotResult(status.value, reason=reason)
        made = (_create_relay(s, sc, run, slot_ms, cfg) if sc.relay
                else _create_broadcasts(s, sc, run, slot_ms, now, cfg))
        s.commit()
    return made


def relay_id(schedule_id: int, slot_ms: int) -> str:
    return f"relay-s{schedule_id}-{slot_ms}"


def _create_relay(s: Session, sc: Schedule, run: ScheduleRun, slot_ms: int, cfg: FireConfig) -> SlotResult:
    assert sc.id is not None and sc.relay is not None
    t = sc.targets
    try:
        r = resolve_targets(s, all_nodes=bool(t.get("all")), zones=list(t.get("zones") or []),
                            nodes=list(t.get("nodes") or []))
        if not r.nodes:
            raise ServiceError(422, "the target has no units")
    except ServiceError as exc:
        run.status, run.reason, run.updated_at = RunStatus.FAILED.value, exc.message[:500], now_ms()
        s.add(run)
        logger.error("schedule %d relay slot %s failed: %s", sc.id, local(slot_ms).isoformat(), exc.message)
        return SlotResult(RunStatus.FAILED.value, reason=run.reason)
    rid = relay_id(sc.id, slot_ms)
    s.add(Relay(id=rid, url=str(sc.relay["url"]), mode=str(sc.relay.get("mode") or "node_fetch"),
                priority=sc.priority or "normal", nodes=r.nodes,
                scopes=[sc_.model_dump(mode="json") for sc_ in r.scopes], target=dict(t), start_at=slot_ms,
                duration_s=float(sc.relay["duration_s"]), owner=cfg.owner, owner_seen_at=now_ms(),
                created_by=f"schedule {sc.id} ({sc.created_by})"[:100], schedule_id=sc.id, slot_at=slot_ms))
    run.status, run.updated_at, run.broadcast_ids = RunStatus.AIRED.value, now_ms(), [rid]
    if run.late_ms and run.late_ms > 0 and slot_ms < now_ms():
        run.reason = f"relay joined {run.late_ms / 1000:.1f} s after its slot (its window was still open)"
    s.add(run)
    logger.info("schedule %d slot %s: relay %s of %s", sc.id, local(slot_ms).isoformat(), rid,
                sc.relay["url"])
    return SlotResult(RunStatus.AIRED.value, relays=[rid], reason=run.reason)


def _create_broadcasts(s: Session, sc: Schedule, run: ScheduleRun, slot_ms: int, now: int,
                       cfg: FireConfig) -> SlotResult:
    assert sc.id is not None and sc.bulletin_id is not None
    spaced = sc.interval_s > 0 and sc.repeat > 1
    plays = [slot_ms + k * sc.interval_s * 1000 for k in range(sc.repeat)] if spaced else [slot_ms]
    valid_for_s = sc.valid_for_s or cfg.default_valid_s
    made: list[tuple[str, int]] = []
    t = sc.targets
    if (why := _creator_refusal(s, sc)) is not None:
        return _fail(s, sc, run, slot_ms, why)
    try:
        for play in plays:
            play_at = play if play > now else None  # a late slot plays on arrival
            bc = create_broadcast(
                s, bulletin_id=sc.bulletin_id, all_nodes=bool(t.get("all")), zones=list(t.get("zones") or []),
                nodes=list(t.get("nodes") or []), priority=sc.priority, air_at=None, play_at=play_at,
                valid_s=math.ceil(max(0, play - now) / 1000) + valid_for_s,
                repeat=1 if spaced else sc.repeat, created_by=f"schedule {sc.id} ({sc.created_by})"[:100],
            )  # commits: the run claim is committed with the first broadcast
            made.append((bc.id, bc.air_at))
            run.broadcast_ids = [b for b, _ in made]
            s.add(run)
    except ServiceError as exc:
        run.status, run.reason = RunStatus.FAILED.value, f"{exc.message} ({len(made)} of {len(plays)} aired)"
        run.updated_at = now_ms()
        s.add(run)
        logger.error("schedule %d slot %s failed: %s", sc.id, local(slot_ms).isoformat(), run.reason)
        return SlotResult(RunStatus.FAILED.value, made, run.reason)
    run.status, run.updated_at = RunStatus.AIRED.value, now_ms()
    if run.late_ms:
        run.reason = f"aired {run.late_ms / 1000:.1f} s after its slot (within the grace period)"
    s.add(run)
    bulletin = s.get(Bulletin, sc.bulletin_id)
    if bulletin is not None and is_bypass(bulletin, sc.priority):  # each airing that skips approval
        ids = ",".join(x for x, _ in made)
        detail = (f"aired as an emergency while {bulletin.approval} (schedule:{sc.id}, slot "
                  f"{local(slot_ms).isoformat()}, broadcast:{ids})")
        s.add(AuditEntry(username=sc.created_by[:100], action="emergency_bypass",
                         target=f"bulletin:{bulletin.id}", detail=detail[:1000]))
    logger.info("schedule %d slot %s: %d broadcast(s) %s%s", sc.id, local(slot_ms).isoformat(), len(made),
                ",".join(b for b, _ in made), f" ({run.reason})" if run.late_ms else "")
    return SlotResult(RunStatus.AIRED.value, made, run.reason)


def _creator_refusal(s: Session, sc: Schedule) -> str | None:
    """Why the emergency bypass this schedule relies on no longer holds (its creator), else None;
    audited as ``emergency_bypass_refused``."""
    assert sc.bulletin_id is not None
    b = s.get(Bulletin, sc.bulletin_id)
    if b is None or not is_bypass(b, sc.priority):
        return None  # approved (or refused below by create_broadcast with its own reason)
    why = bypass_refusal(s, sc.created_by, b, CAN_AIR)
    if why is not None:
        s.add(AuditEntry(username=sc.created_by[:100], action="emergency_bypass_refused",
                         target=f"bulletin:{b.id}", detail=f"schedule:{sc.id}: {why}"[:1000]))
    return why


def _fail(s: Session, sc: Schedule, run: ScheduleRun, slot_ms: int, why: str) -> SlotResult:
    run.status, run.reason, run.updated_at = RunStatus.FAILED.value, why[:500], now_ms()
    s.add(run)
    logger.error("schedule %d slot %s failed: %s", sc.id, local(slot_ms).isoformat(), why)
    return SlotResult(RunStatus.FAILED.value, reason=run.reason)


def fail_stuck_runs(engine: Engine, older_than_ms: int) -> int:
    """Runs left 'firing' by a controller that died mid-slot become visible failures."""
    cutoff = now_ms() - older_than_ms
    with Session(engine, expire_on_commit=False) as s:
        stuck = s.exec(select(ScheduleRun).where(ScheduleRun.status == RunStatus.FIRING.value)
                       .where(col(ScheduleRun.updated_at) < cutoff)).all()
        for run in stuck:
            run.status = RunStatus.FAILED.value
            made = ", ".join(run.broadcast_ids) or "none"
            run.reason = (f"the controller stopped while creating the broadcasts "
                          f"({len(run.broadcast_ids)} created: {made})")[:500]
            run.updated_at = now_ms()
            s.add(run)
            logger.error("schedule %d slot %s: %s", run.schedule_id, local(run.slot_at).isoformat(),
                         run.reason)
        s.commit()
    return len(stuck)
