"""Airing one slot of a schedule (blocking database work; the runner calls it in a thread).

Claim the slot by inserting its ``ScheduleRun`` (UNIQUE schedule_id + slot_at): if the row
already exists the slot was handled — by us before a crash or by another controller — and
nothing more happens. The claim commits together with the first broadcast; the run ends as
aired (late_ms says how late), missed, skipped (exception date) or failed (with the reason).
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

from controller.service import ServiceError, create_broadcast
from devices.protocol import now_ms
from scheduler.models import RunStatus, Schedule, ScheduleRun
from scheduler.service import TIMEZONE

logger = logging.getLogger(__name__)


@dataclass
class FireConfig:
    grace_ms: int
    default_valid_s: int
    holder: str


@dataclass
class SlotResult:
    outcome: str  # a RunStatus value, or: duplicate | stale | gone | not-leader
    broadcasts: list[tuple[str, int]] = field(default_factory=list)  # (id, air_at ms)
    reason: str = ""


def local(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).astimezone(TIMEZONE)


def _verdict(sc: Schedule, slot_ms: int, now: int, grace_ms: int) -> tuple[RunStatus, str]:
    day = local(slot_ms).date().isoformat()
    if day in sc.exceptions:
        return RunStatus.SKIPPED, f"{day} is an exception date of this schedule"
    late = now - slot_ms
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
        made = _create_broadcasts(s, sc, run, slot_ms, now, cfg)
        s.commit()
    return made


def _create_broadcasts(s: Session, sc: Schedule, run: ScheduleRun, slot_ms: int, now: int,
                       cfg: FireConfig) -> SlotResult:
    assert sc.id is not None
    spaced = sc.interval_s > 0 and sc.repeat > 1
    plays = [slot_ms + k * sc.interval_s * 1000 for k in range(sc.repeat)] if spaced else [slot_ms]
    valid_for_s = sc.valid_for_s or cfg.default_valid_s
    made: list[tuple[str, int]] = []
    t = sc.targets
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
    logger.info("schedule %d slot %s: %d broadcast(s) %s%s", sc.id, local(slot_ms).isoformat(), len(made),
                ",".join(b for b, _ in made), f" ({run.reason})" if run.late_ms else "")
    return SlotResult(RunStatus.AIRED.value, made, run.reason)


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
