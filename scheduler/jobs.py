"""The APScheduler 3 pieces: a job store in the project's database, a scheduler thread that
survives database errors, and an executor that hands each *slot* time to the runner.

APScheduler 3 does not tell a job its scheduled run time; the executor's extension point
``_do_submit_job(job, run_times)`` does get them, so ``SlotExecutor`` calls
``on_slots(schedule_id, version, [slot, ...])`` with slot = run time + the trigger's lead.
Every run time is passed on (``coalesce=False``) and APScheduler's own misfire check is off
(``misfire_grace_time=None``): the runner decides per slot whether it airs late or is
recorded missed, so no slot disappears without a row saying so.

A burst (a ward schedules on round times: 1,000 slots on one second) must not cost a commit per
job: :class:`BatchedJobStore` writes the job updates and removals of one scheduler round in one
transaction, before the store is next read (a crash before it hands the jobs out again, and the
unique run row refuses their slots), and :class:`SlotExecutor` hands the runner every slot
of one scheduler round (every job due at that instant) as one batch (``on_batch``), handed out as
soon as the round has submitted them all (while the round's job writes go on); the runner airs it
together.
"""

from __future__ import annotations

import logging
import pickle
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_futures
from datetime import datetime, timedelta
from typing import Any

from apscheduler.executors.base import BaseExecutor
from apscheduler.job import Job
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.util import datetime_to_utc_timestamp
from sqlalchemy import bindparam
from sqlalchemy.engine import Engine

from scheduler.clock import TIMEZONE
from scheduler.triggers import LeadTrigger

logger = logging.getLogger(__name__)

SlotBatch = list[tuple[int, int, list[datetime]]]  # (schedule id, version, slots) per due job
BatchHandler = Callable[[SlotBatch], None]
JOB_PREFIX = "schedule:"


def job_id(schedule_id: int) -> str:
    return f"{JOB_PREFIX}{schedule_id}"


def fire_job(schedule_id: int, version: int) -> None:
    """The job's target, by module path. ``SlotExecutor`` runs slots itself; this never runs."""
    logger.error("schedule %d v%d reached a plain executor; slots run only through SlotExecutor",
                 schedule_id, version)


class BatchedJobStore(SQLAlchemyJobStore):  # type: ignore[misc]
    """The job store whose updates and removals made by the scheduler thread in one round are
    written in one transaction, before the next read (see the module docstring)."""

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self._rounds: set[int] = set()  # the threads in a round (APScheduler's; the wheel's take)
        self._held: dict[str, tuple[float, bytes] | None] = {}  # id -> (next run, state) | removed
        self._held_lock = threading.Lock()
        self.flushes = 0
        #: called once a round has submitted its due jobs, before its writes (the executor's
        #: ``release``: the burst airs while the job removals are written, not after)
        self.on_round_submitted: Callable[[], None] | None = None

    def begin_round(self) -> None:
        """This thread's updates and removals are held back until :meth:`flush`."""
        self._rounds.add(threading.get_ident())

    def end_round(self) -> None:
        self._rounds.discard(threading.get_ident())

    def _buffering(self) -> bool:
        return threading.get_ident() in self._rounds

    def update_job(self, job: Job) -> None:
        if not self._buffering():
            self.flush()
            super().update_job(job)
            return
        state = pickle.dumps(job.__getstate__(), self.pickle_protocol)
        with self._held_lock:
            self._held[job.id] = (datetime_to_utc_timestamp(job.next_run_time), state)

    def remove_job(self, job_id: str) -> None:
        if not self._buffering():
            self.flush()
            super().remove_job(job_id)
            return
        with self._held_lock:
            self._held[job_id] = None

    def flush(self) -> None:
        """Write what the round held back, in one transaction (a job gone meanwhile is skipped)."""
        with self._held_lock:
            held, self._held = self._held, {}
        if not held:
            return
        updates = [{"jid": k, "nrt": v[0], "st": v[1]} for k, v in held.items() if v is not None]
        removed = [{"jid": k} for k, v in held.items() if v is None]
        t, c = self.jobs_t, self.jobs_t.c
        try:
            with self.engine.begin() as conn:
                if updates:
                    conn.execute(t.update().where(c.id == bindparam("jid"))
                                 .values(next_run_time=bindparam("nrt"), job_state=bindparam("st")), updates)
                if removed:
                    conn.execute(t.delete().where(c.id == bindparam("jid")), removed)
        except Exception:
            with self._held_lock:
                self._held = {**held, **self._held}  # kept for the next try
            raise
        self.flushes += 1

    def discard_held(self) -> None:
        """Forget the held writes (the wheel's take, whose write failed: it took nothing; under the
        scheduler's job-store lock, so they are its own — a read flushes everything before)."""
        with self._held_lock:
            self._held = {}

    def lookup_job(self, job_id: str) -> Job | None:
        self.flush()
        return super().lookup_job(job_id)

    def get_due_jobs(self, now: datetime) -> list[Job]:
        self.flush()
        return list(super().get_due_jobs(now))

    def get_next_run_time(self) -> datetime | None:
        if self._buffering() and self.on_round_submitted is not None:
            self.on_round_submitted()  # the round asks this last, after handing out its due jobs
        self.flush()
        return super().get_next_run_time()  # type: ignore[no-any-return]

    def get_all_jobs(self) -> list[Job]:
        self.flush()
        return list(super().get_all_jobs())

    def add_job(self, job: Job) -> None:
        self.flush()
        super().add_job(job)

    def remove_all_jobs(self) -> None:
        self.flush()
        super().remove_all_jobs()


class SlotExecutor(BaseExecutor):
    """Hands due slots to ``on_batch`` in a small thread pool (database work, off the event loop):
    the slots a scheduler round submits are held until the round ends and go out as one batch (a
    burst of 1,000 on one second is one batch, not 1,000 tasks); a worker takes every slot queued
    by then."""

    def __init__(self, on_batch: BatchHandler, workers: int) -> None:
        super().__init__()
        self._on_batch = on_batch
        self._workers = workers
        self._pool: ThreadPoolExecutor | None = None
        self._pending: set[Future[None]] = set()
        self._queue: list[tuple[str, int, int, list[datetime]]] = []
        self._queue_lock = threading.Lock()
        # one batch at a time: SQLite has one writer, and the slots queued while a batch airs make
        # the next batch (PostgreSQL would allow more; one keeps the order of a burst anyway)
        self._batch_lock = threading.Lock()
        self._round: int | None = None  # the scheduler thread while its round submits (held back)

    def hold(self) -> None:
        """The scheduler thread starts a round: its submissions are queued, not yet handed out."""
        self._round = threading.get_ident()

    def release(self) -> None:
        """The round is over: every slot it queued goes to one worker as one batch."""
        self._round = None
        with self._queue_lock:
            queued = bool(self._queue)
        if queued:
            self._submit()

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
        lead = job.trigger.lead if isinstance(job.trigger, LeadTrigger) else timedelta(0)
        schedule_id, version = job.args
        with self._queue_lock:
            self._queue.append((job.id, schedule_id, version, [rt + lead for rt in run_times]))
        if self._round != threading.get_ident():
            self._submit()

    def _submit(self) -> None:
        assert self._pool is not None
        fut = self._pool.submit(self._run_queued)
        self._pending.add(fut)
        fut.add_done_callback(self._pending.discard)

    def _run_queued(self) -> None:
        with self._batch_lock:
            self._run_batch()

    def _run_batch(self) -> None:
        with self._queue_lock:
            batch, self._queue = self._queue, []
        if not batch:
            return  # an earlier worker took these slots along with its own
        try:
            self._on_batch([(sid, version, slots) for _, sid, version, slots in batch])
        except Exception as exc:  # noqa: BLE001 - reported per job, as APScheduler would
            for jid, *_ in batch:
                self._run_job_error(jid, exc, exc.__traceback__)
            return
        for jid, *_ in batch:
            self._run_job_success(jid, [])


class ResilientScheduler(BackgroundScheduler):
    """A BackgroundScheduler whose thread survives job-store errors.

    APScheduler 3 retries a failing ``get_due_jobs`` but an error in ``update_job`` (the
    database going away mid-round) escapes ``_process_jobs`` and ends the scheduler thread.
    Here it is logged and the round retried; a job whose update was lost is handed out
    again and its slot is then refused by the unique run row.
    """

    def _process_jobs(self) -> float | None:
        stores = [s for s in self._jobstores.values() if isinstance(s, BatchedJobStore)]
        executors = [e for e in self._executors.values() if isinstance(e, SlotExecutor)]
        for store in stores:
            store.begin_round()
        for executor in executors:
            executor.hold()
        try:
            wait: float | None = super()._process_jobs()
            for store in stores:
                store.end_round()
                store.flush()
        except Exception as exc:  # noqa: BLE001 - keep the thread alive whatever the store does
            self._logger.warning("job store error (%s); retrying in %.1f s", exc,
                                 self.jobstore_retry_interval)
            return float(self.jobstore_retry_interval)
        finally:
            for store in stores:
                store.end_round()
            for executor in executors:
                executor.release()  # the round's slots as one batch (the unique run row refuses repeats)
        return wait


def make_scheduler(engine: Engine, on_batch: BatchHandler, *, workers: int,
                   retry_s: float) -> tuple[ResilientScheduler, SlotExecutor]:
    executor = SlotExecutor(on_batch, workers)
    store = BatchedJobStore(engine=engine, tablename="apscheduler_jobs")
    store.on_round_submitted = executor.release
    sched = ResilientScheduler(
        timezone=TIMEZONE,
        jobstores={"default": store},
        executors={"default": executor},
        job_defaults={"coalesce": False, "misfire_grace_time": None, "max_instances": 1000},
        jobstore_retry_interval=retry_s,
    )
    return sched, executor
