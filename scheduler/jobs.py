"""The APScheduler 3 pieces: a job store in the project's database, a scheduler thread that
survives database errors, and an executor that hands each *slot* time to the runner.

APScheduler 3 does not tell a job its scheduled run time; the executor's extension point
``_do_submit_job(job, run_times)`` does get them, so ``SlotExecutor`` calls
``on_slots(schedule_id, version, [slot, ...])`` with slot = run time + the trigger's lead.
Every run time is passed on (``coalesce=False``) and APScheduler's own misfire check is off
(``misfire_grace_time=None``): the runner decides per slot whether it airs late or is
recorded missed, so no slot disappears without a row saying so.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_futures
from datetime import datetime, timedelta
from typing import Any

from apscheduler.executors.base import BaseExecutor
from apscheduler.job import Job
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from sqlalchemy.engine import Engine

from scheduler.clock import TIMEZONE
from scheduler.triggers import LeadTrigger

logger = logging.getLogger(__name__)

SlotHandler = Callable[[int, int, list[datetime]], None]
JOB_PREFIX = "schedule:"


def job_id(schedule_id: int) -> str:
    return f"{JOB_PREFIX}{schedule_id}"


def fire_job(schedule_id: int, version: int) -> None:
    """The job's target, by module path. ``SlotExecutor`` runs slots itself; this never runs."""
    logger.error("schedule %d v%d reached a plain executor; slots run only through SlotExecutor",
                 schedule_id, version)


class SlotExecutor(BaseExecutor):
    """Runs ``on_slots`` for each due job in a small thread pool (database work, off the event loop)."""

    def __init__(self, on_slots: SlotHandler, workers: int) -> None:
        super().__init__()
        self._on_slots = on_slots
        self._workers = workers
        self._pool: ThreadPoolExecutor | None = None
        self._pending: set[Future[None]] = set()

    def start(self, scheduler: Any, alias: str) -> None:
        super().start(scheduler, alias)
        self._pool = ThreadPoolExecutor(self._workers, thread_name_prefix="slot")

    def wait_idle(self, timeout: float) -> None:
        """Block until the slots being aired now are done (at most ``timeout`` seconds)."""
        pending = list(self._pending)
        if pending:
            wait_futures(pending, timeout=timeout)

    def shutdown(self, wait: bool = True) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=wait, cancel_futures=not wait)

    def _do_submit_job(self, job: Job, run_times: list[datetime]) -> None:
        assert self._pool is not None
        lead = job.trigger.lead if isinstance(job.trigger, LeadTrigger) else timedelta(0)
        schedule_id, version = job.args
        slots = [rt + lead for rt in run_times]
        fut = self._pool.submit(self._on_slots, schedule_id, version, slots)
        self._pending.add(fut)
        jid = job.id

        def done(f: Future[None]) -> None:
            self._pending.discard(f)
            exc = f.exception() if not f.cancelled() else None
            if exc is not None:
                self._run_job_error(jid, exc, exc.__traceback__)
            else:
                self._run_job_success(jid, [])

        fut.add_done_callback(done)


class ResilientScheduler(BackgroundScheduler):
    """A BackgroundScheduler whose thread survives job-store errors.

    APScheduler 3 retries a failing ``get_due_jobs`` but an error in ``update_job`` (the
    database going away mid-round) escapes ``_process_jobs`` and ends the scheduler thread.
    Here it is logged and the round retried; a job whose update was lost is handed out
    again and its slot is then refused by the unique run row.
    """

    def _process_jobs(self) -> float | None:
        try:
            wait: float | None = super()._process_jobs()
        except Exception as exc:  # noqa: BLE001 - keep the thread alive whatever the store does
            self._logger.warning("job store error (%s); retrying in %.1f s", exc,
                                 self.jobstore_retry_interval)
            return float(self.jobstore_retry_interval)
        return wait


def make_scheduler(engine: Engine, on_slots: SlotHandler, *, workers: int,
                   retry_s: float) -> tuple[ResilientScheduler, SlotExecutor]:
    executor = SlotExecutor(on_slots, workers)
    sched = ResilientScheduler(
        timezone=TIMEZONE,
        jobstores={"default": SQLAlchemyJobStore(engine=engine, tablename="apscheduler_jobs")},
        executors={"default": executor},
        job_defaults={"coalesce": False, "misfire_grace_time": None, "max_instances": 1000},
        jobstore_retry_interval=retry_s,
    )
    return sched, executor
