"""Air times of single broadcasts: a broadcast set for later airs at its instant.

The controller hands a broadcast id and an instant; at that instant the scheduler calls
the airing callback (the delivery service). Broadcasts are the durable record: at start
the controller re-adds every broadcast still ``scheduled`` from the database, so a restart
neither loses nor duplicates a slot (airing is idempotent per broadcast id).

Misfires are explicit: APScheduler drops a job more than ``misfire_grace_time`` late (1 s by
default), so we set our own grace; a broadcast whose slot passed beyond it is reported
missed through ``on_missed`` — never silently dropped.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime

from apscheduler.events import EVENT_JOB_MISSED, JobExecutionEvent
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.date import DateTrigger

from scheduler.clock import TIMEZONE
from scheduler.ports import AirCallback, MissedCallback

logger = logging.getLogger(__name__)


class AirScheduler:
    def __init__(self, air: AirCallback, *, on_missed: MissedCallback | None = None,
                 misfire_grace_s: int = 300) -> None:
        self._air = air
        self._on_missed = on_missed
        self.grace = misfire_grace_s
        self._sched = AsyncIOScheduler(timezone=TIMEZONE, job_defaults={
            "misfire_grace_time": misfire_grace_s, "coalesce": True, "max_instances": 1,
        })
        self._sched.add_listener(self._missed, EVENT_JOB_MISSED)
        self._now: dict[str, asyncio.Task[None]] = {}  # airing now, started without a job

    def start(self) -> None:
        self._sched.start()

    def stop(self) -> None:
        if self._sched.running:
            self._sched.shutdown(wait=False)

    def air_at(self, broadcast_id: str, at_ms: int) -> None:
        """Air ``broadcast_id`` at ``at_ms`` (epoch ms); now if that is in the past."""
        when = datetime.fromtimestamp(at_ms / 1000, tz=UTC).astimezone(TIMEZONE)
        late_s = (datetime.now(tz=UTC) - when).total_seconds()
        if late_s > self.grace:
            self._report_missed(broadcast_id, f"slot {when.isoformat()} passed {late_s:.0f} s ago")
            return
        if late_s >= 0 and self._sched.running and self._start_now(broadcast_id):
            return
        self._sched.add_job(
            self._run, DateTrigger(run_date=max(when, datetime.now(tz=TIMEZONE))),
            args=[broadcast_id], id=f"air:{broadcast_id}", replace_existing=True,
        )
        logger.info("broadcast %s will air at %s", broadcast_id, when.isoformat())

    def _start_now(self, broadcast_id: str) -> bool:
        """Due now (an emergency's POST): air it at once rather than at the scheduler's next job
        round; False when not called on the event loop (then it goes through a job)."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return False
        if broadcast_id not in self._now:  # airing is idempotent: once is enough
            task = loop.create_task(self._run(broadcast_id))
            self._now[broadcast_id] = task
            task.add_done_callback(lambda _t: self._now.pop(broadcast_id, None))
        return True

    def cancel(self, broadcast_id: str) -> bool:
        job = self._sched.get_job(f"air:{broadcast_id}")
        if job is None:
            return False
        job.remove()
        return True

    def waiting(self, broadcast_id: str) -> bool:
        """This timer holds ``broadcast_id`` (not yet handed to the airing callback)."""
        return self._sched.get_job(f"air:{broadcast_id}") is not None

    def pending(self) -> list[str]:
        return [*self._now, *(j.id.removeprefix("air:") for j in self._sched.get_jobs())]

    async def _run(self, broadcast_id: str) -> None:
        try:
            await self._air(broadcast_id)
        except Exception:
            logger.exception("airing broadcast %s failed", broadcast_id)
            self._report_missed(broadcast_id, "airing failed; see the controller log")

    def _missed(self, event: JobExecutionEvent) -> None:
        self._report_missed(event.job_id.removeprefix("air:"), "missed its slot (controller busy)")

    def _report_missed(self, broadcast_id: str, reason: str) -> None:
        logger.error("broadcast %s did not air: %s", broadcast_id, reason)
        if self._on_missed is not None:
            self._on_missed(broadcast_id, reason)
