"""Keep the APScheduler jobs in step with the ``Schedule`` rows (blocking; run in a thread).

* A job ``schedule:<id>`` carries ``(id, version)``. It is replaced only when the row's version
  (or the lead setting) changed: replacing recomputes the next run time, which would silently
  drop slots missed while no controller was firing.
* Its next slot is the first slot after ``max(last_slot_at, version_at)`` — the last slot
  handled (aired, missed, skipped or failed) or the moment this version was written. A slot in
  the past is handed out at once and then aired late or recorded missed.
* On taking over (``full``) every job is also checked for a *gap*: a job whose stored next
  run lies beyond a slot that has no run row (a controller lost its lease mid-slot) is moved
  back so that slot is handled too. Runs left half-done by a dead controller become failures.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime, timedelta

from apscheduler.job import Job
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session, col, select

from devices.protocol import now_ms
from scheduler.clock import local
from scheduler.firing import fail_stuck_runs, record_run
from scheduler.jobs import JOB_PREFIX, ResilientScheduler, fire_job, job_id
from scheduler.models import RunStatus, Schedule
from scheduler.triggers import LeadTrigger, Spec, build_trigger, first_slot_at_or_after, slots

logger = logging.getLogger(__name__)

STUCK_AFTER_MS = 120_000


class Reconciler:
    def __init__(self, engine: Engine, sched: ResilientScheduler, lead: timedelta, holder: str) -> None:
        self.engine = engine
        self.sched = sched
        self.lead = lead
        self.holder = holder
        self._known: dict[int, int | None] = {}  # schedule id → version applied (None: no job wanted)
        self._dirty: set[int] = set()
        self._lock = threading.Lock()

    def mark(self, schedule_id: int) -> None:
        """Look at this schedule at the next ``changes()`` (thread-safe)."""
        with self._lock:
            self._dirty.add(schedule_id)

    def count(self) -> int:
        """How many schedules the last reconcile looked at."""
        return len(self._known)

    @property
    def has_dirty(self) -> bool:
        return bool(self._dirty)

    def _take_dirty(self) -> set[int]:
        with self._lock:
            out, self._dirty = self._dirty, set()
        return out

    def full(self, still_leading: Callable[[], bool] = lambda: True) -> bool:
        """Everything, with gap repair: run when this controller takes the lease.

        Returns False (and stops) if the lease is lost meanwhile: another controller may be
        reconciling the same job store by then.
        """
        fail_stuck_runs(self.engine, STUCK_AFTER_MS)
        with Session(self.engine, expire_on_commit=False) as s:
            rows = s.exec(select(Schedule)).all()
        jobs = {j.id: j for j in self.sched.get_jobs()}
        self._known.clear()
        self._take_dirty()
        for i, row in enumerate(rows):
            assert row.id is not None
            if i % 200 == 0 and not still_leading():
                logger.warning("lease lost while taking over; stopping the reconcile")
                return False
            self._apply_safely(row, jobs.pop(job_id(row.id), None), gap_repair=True)
        for jid in jobs:
            if jid.startswith(JOB_PREFIX):
                logger.warning("removing job %s: its schedule no longer exists", jid)
                self.sched.remove_job(jid)
        return True

    def changes(self) -> None:
        """Rows whose version differs from what we applied, plus the ones flagged dirty."""
        fail_stuck_runs(self.engine, STUCK_AFTER_MS)
        with Session(self.engine, expire_on_commit=False) as s:
            state = s.exec(select(Schedule.id, Schedule.version, Schedule.enabled, Schedule.deleted)).all()
            todo = self._take_dirty()
            for sid, version, enabled, deleted in state:
                assert sid is not None
                want = version if enabled and not deleted else None
                if sid not in self._known or self._known[sid] != want:
                    todo.add(sid)
            rows = s.exec(select(Schedule).where(col(Schedule.id).in_(todo))).all() if todo else []
        for row in rows:
            assert row.id is not None
            self._apply_safely(row, self.sched.get_job(job_id(row.id)), gap_repair=False)

    def _apply_safely(self, row: Schedule, job: Job | None, *, gap_repair: bool) -> None:
        """One bad row (say, a spec edited by hand in the database) must not stop the others."""
        try:
            self._apply(row, job, gap_repair=gap_repair)
        except SQLAlchemyError:
            raise
        except Exception:
            logger.exception("schedule %s cannot be scheduled; left without a job", row.id)
            if row.id is not None:
                self._known[row.id] = row.version

    def _apply(self, row: Schedule, job: Job | None, *, gap_repair: bool) -> None:
        assert row.id is not None
        jid = job_id(row.id)
        if row.deleted or not row.enabled:
            if job is not None:
                self.sched.remove_job(jid)
            self._known[row.id] = None
            return
        inner = build_trigger(Spec.model_validate(row.spec))
        anchor = max(row.version_at, (row.last_slot_at or 0) + 1)
        expected = first_slot_at_or_after(inner, local(anchor))
        same = (job is not None and job.args[1] == row.version and isinstance(job.trigger, LeadTrigger)
                and job.trigger.lead == self.lead)
        if job is not None and same:
            if gap_repair and expected is not None and job.next_run_time is not None:
                stored_slot = job.next_run_time + self.lead
                if expected < stored_slot - timedelta(milliseconds=1):
                    logger.warning("schedule %d: slot %s has no run; handling it now", row.id,
                                   expected.isoformat())
                    self.sched.modify_job(jid, next_run_time=expected - self.lead)
            self._known[row.id] = row.version
            return
        if job is not None and job.args[1] != row.version and isinstance(job.trigger, LeadTrigger):
            self._report_unfired(row, job)
        self._known[row.id] = row.version
        if expected is None:
            if job is not None:
                self.sched.remove_job(jid)
            return  # nothing left to air (a once slot handled, an end date passed)
        self.sched.add_job(
            fire_job, trigger=LeadTrigger(inner, self.lead), args=[row.id, row.version], id=jid,
            name=f"schedule {row.id} v{row.version}", replace_existing=True,
            next_run_time=expected - self.lead,
        )
        logger.info("schedule %d v%d: next slot %s", row.id, row.version, expected.isoformat())

    def _report_unfired(self, row: Schedule, job: Job) -> None:
        """Slots of the replaced version that nobody fired before the change: recorded missed."""
        assert row.id is not None and isinstance(job.trigger, LeadTrigger)
        if job.next_run_time is None:
            return
        start = job.next_run_time + job.trigger.lead
        until = min(local(row.version_at), local(now_ms()))
        for slot in slots(job.trigger.inner, start, until, limit=1000):
            record_run(self.engine, schedule_id=row.id, version=int(job.args[1]),
                       slot_ms=int(slot.timestamp() * 1000), status=RunStatus.MISSED, holder=self.holder,
                       reason="no controller was firing at that time; the schedule was changed since")


def next_slots(row: Schedule, count: int, after: datetime) -> list[datetime]:
    """The next ``count`` slots of a schedule from ``after`` (for the API)."""
    if row.deleted or not row.enabled:
        return []
    inner = build_trigger(Spec.model_validate(row.spec))
    return list(slots(inner, after, after + timedelta(days=3660), limit=count))
