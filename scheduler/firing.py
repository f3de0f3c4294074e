"""Firing one slot of a schedule: the time logic (blocking database work; the runner calls it in a thread).

Claim the slot by inserting its ``ScheduleRun`` (UNIQUE schedule_id + slot_at): if the row
already exists the slot was handled — by us before a crash or by another controller — and
nothing more happens. A slot found too late is recorded missed, one on an exception date
skipped; otherwise what it airs is asked of the controller's ``SlotAirer`` (scheduler/ports.py)
inside the claiming transaction, so the claim commits together with the first broadcast. The
run ends as aired (late_ms says how late), missed, skipped or failed (with the airer's reason).

A relay slot found late still airs while its window (``duration_s``) is open, and is missed
only once it has passed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Row, bindparam, insert, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from devices.protocol import now_ms
from scheduler.clock import local
from scheduler.models import RunStatus, Schedule, ScheduleRun
from scheduler.ports import Aired, Slot, SlotAirer

logger = logging.getLogger(__name__)

RUNS = ScheduleRun.__table__  # type: ignore[attr-defined]
SCHEDULES = Schedule.__table__  # type: ignore[attr-defined]
#: what a burst reads of each schedule (not its spec: the trigger already applied it)
_SLOT_COLUMNS = [SCHEDULES.c[n] for n in ("id", "bulletin_id", "relay", "targets", "priority", "repeat",
                                           "interval_s", "valid_for_s", "created_by", "exceptions", "enabled",
                                           "deleted", "version")]
#: a burst's ``last_slot_at`` advance (never backwards), one executemany
_ADVANCE = (update(SCHEDULES).where(SCHEDULES.c.id == bindparam("b_id"))
            .where(SCHEDULES.c.last_slot_at.is_(None) | (SCHEDULES.c.last_slot_at < bindparam("b_slot")))
            .values(last_slot_at=bindparam("b_slot")))


@dataclass
class FireConfig:
    grace_ms: int
    holder: str
    clock: Callable[[], int] = now_ms  # epoch ms; tests hand in a fake clock


@dataclass
class SlotResult:
    outcome: str  # a RunStatus value, or: duplicate | stale | gone | not-leader
    broadcasts: list[tuple[str, int]] = field(default_factory=list)  # (id, air_at ms)
    reason: str = ""
    relays: list[str] = field(default_factory=list)  # relay ids, for the relay hub

    def aired(self) -> Aired:
        """What the slot made, for the airer's handoff."""
        return Aired(broadcasts=list(self.broadcasts), relays=list(self.relays))


def slot_verdict(sc: Schedule | Row[Any], slot_ms: int, now: int, grace_ms: int) -> tuple[RunStatus, str]:
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
    # no "evaluate" of the criteria over every Schedule in the session (O(n²) in a batch of n)
    s.execute(update(Schedule).where(col(Schedule.id) == schedule_id)
              .where((col(Schedule.last_slot_at).is_(None)) | (col(Schedule.last_slot_at) < slot_ms))
              .values(last_slot_at=slot_ms), execution_options={"synchronize_session": False})


def air_slot(engine: Engine, cfg: FireConfig, airer: SlotAirer, *, schedule_id: int, version: int,
             slot_ms: int, may_fire: Callable[[], bool]) -> SlotResult:
    """Handle one slot; database errors propagate (the caller retries while within grace)."""
    with Session(engine, expire_on_commit=False) as s:
        sc = s.get(Schedule, schedule_id)
        if sc is None or sc.deleted or not sc.enabled:
            return SlotResult("gone")
        if sc.version != version:
            return SlotResult("stale")
        now = cfg.clock()
        status, reason = slot_verdict(sc, slot_ms, now, cfg.grace_ms)
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
        result = _air(s, airer, slot_of(sc, slot_ms, now), run, cfg.clock)
        s.commit()
    return result


def air_slots(engine: Engine, cfg: FireConfig, airer: SlotAirer, items: list[tuple[int, int, int]], *,
              may_fire: Callable[[], bool]) -> list[SlotResult] | None:
    """Air several slots due together, (schedule id, version, slot ms) each, in one transaction:
    the schedules read in one query, every slot's broadcasts made by the airer's ``air_many`` (one
    INSERT per table), every run written with its outcome in one INSERT — the claim, UNIQUE
    schedule + slot — and the schedules' ``last_slot_at`` in one UPDATE, one commit. None (nothing
    written) when any of them is not a plain "air now" — gone, changed, late beyond grace, an
    exception date, already claimed — or we may not fire: the caller then takes each through
    :func:`air_slot`."""
    with Session(engine, expire_on_commit=False) as s:
        found = read_schedules(s, sorted({sid for sid, _, _ in items}))
        now = cfg.clock()
        slots: list[Slot] = []
        for sid, version, slot_ms in items:
            sc = found.get(sid)
            if sc is None or sc.deleted or not sc.enabled or sc.version != version:
                return None
            if slot_verdict(sc, slot_ms, now, cfg.grace_ms)[0] is not RunStatus.FIRING:
                return None
            slots.append(slot_of(sc, slot_ms, now))
        if not may_fire():
            return None
        results = [slot_outcome(slot, a) for slot, a in zip(slots, airer.air_many(s, slots), strict=True)]
        at, made = cfg.clock(), now_ms()
        runs = [{"schedule_id": sid, "slot_at": slot_ms, "version": version, "status": res.outcome,
                 "late_ms": max(0, now - slot_ms), "reason": res.reason, "broadcast_ids": res.aired().ids,
                 "fired_by": cfg.holder, "created_at": made, "updated_at": at}
                for (sid, version, slot_ms), res in zip(items, results, strict=True)]
        try:
            s.execute(insert(RUNS), runs)
        except IntegrityError:
            s.rollback()
            return None
        s.execute(_ADVANCE, [{"b_id": sl.schedule_id, "b_slot": sl.slot_ms} for sl in slots])
        s.commit()
    log_batch(slots, results)
    return results


def read_schedules(s: Session, ids: list[int]) -> dict[int, Row[Any]]:
    """The schedule rows ``ids`` (plain rows: no ORM objects to build for a burst)."""
    out: dict[int, Row[Any]] = {}
    for i in range(0, len(ids), 900):  # SQLite's bound-parameter limit
        part = ids[i:i + 900]
        out.update((r.id, r) for r in s.execute(select(*_SLOT_COLUMNS).where(SCHEDULES.c.id.in_(part))))
    return out


def slot_outcome(slot: Slot, aired: Aired) -> SlotResult:
    if aired.failure:
        return SlotResult(RunStatus.FAILED.value, aired.broadcasts, aired.failure[:500], aired.relays)
    return SlotResult(RunStatus.AIRED.value, aired.broadcasts, _late_note(slot), aired.relays)


def log_batch(slots: list[Slot], results: list[SlotResult]) -> None:
    each = logger.isEnabledFor(logging.DEBUG)  # one line per slot only when asked (1,000 on a second)
    for slot, res in zip(slots, results, strict=True):
        if res.outcome == RunStatus.FAILED.value:
            logger.error("schedule %d slot %s failed: %s", slot.schedule_id, local(slot.slot_ms).isoformat(),
                         res.reason)
        elif each:
            logger.debug("schedule %d slot %s aired: %s", slot.schedule_id, local(slot.slot_ms).isoformat(),
                         ",".join(res.aired().ids))
    aired = sum(1 for r in results if r.outcome == RunStatus.AIRED.value)
    logger.info("%d slot(s) due together fired in one transaction: %d aired, %d failed", len(results), aired,
                len(results) - aired)


def slot_of(sc: Schedule | Row[Any], slot_ms: int, now: int) -> Slot:
    """The slot ``slot_ms`` of schedule ``sc``, handled at ``now``, as the airer sees it."""
    assert sc.id is not None
    return Slot(schedule_id=sc.id, slot_ms=slot_ms, now_ms=now, bulletin_id=sc.bulletin_id,
                relay=dict(sc.relay) if sc.relay else None, targets=dict(sc.targets), priority=sc.priority,
                repeat=sc.repeat, interval_s=sc.interval_s, valid_for_s=sc.valid_for_s,
                created_by=sc.created_by)


def _air(s: Session, airer: SlotAirer, slot: Slot, run: ScheduleRun, clock: Callable[[], int]) -> SlotResult:
    def progress(ids: list[str]) -> None:  # committed with the next broadcast: a crash shows what was made
        run.broadcast_ids = list(ids)
        s.add(run)

    aired = airer.air(s, slot, progress)
    run.broadcast_ids, run.updated_at = aired.ids, clock()
    when = local(slot.slot_ms).isoformat()
    if aired.failure:
        run.status, run.reason = RunStatus.FAILED.value, aired.failure[:500]
        logger.error("schedule %d slot %s failed: %s", slot.schedule_id, when, run.reason)
    else:
        run.status, run.reason = RunStatus.AIRED.value, _late_note(slot)
        logger.info("schedule %d slot %s aired: %s%s", slot.schedule_id, when, ",".join(aired.ids),
                    f" ({run.reason})" if run.reason else "")
    s.add(run)
    return SlotResult(run.status, aired.broadcasts, run.reason, aired.relays)


def _late_note(slot: Slot) -> str:
    if not slot.late_ms:
        return ""
    if slot.relay is not None:
        return f"relay joined {slot.late_ms / 1000:.1f} s after its slot (its window was still open)"
    return f"aired {slot.late_ms / 1000:.1f} s after its slot (within the grace period)"


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
