"""The firing wheel: slots taken from the job store ahead of their instant, fired at it from memory.

At 1,000 slots on one round second, APScheduler's round — every due job read and unpickled, its
next run computed and written — and building the slots' rows cost the burst most of its time at
the instant itself. The wheel does that work before: every ``tick_s`` (while this controller
fires) it *takes* the jobs due within ``horizon_s`` from the job store the way APScheduler's round
does — under the scheduler's job-store lock, each job's run times handed out and the job advanced
to its next run or removed, the writes in one transaction (``BatchedJobStore``) — so APScheduler
never sees them due and no slot is handed out twice. The slots are grouped by the instant their
job is due (slot − lead) and each group is *prepared* (``prepare``: schedules read, rows built)
at once. A second thread sleeps until the next instant and *fires* its group (``fire``): one
transaction, one hand-off.

A taken slot lives only in memory until it fires. If this controller stops firing meanwhile (the
lease lost, a crash), the wheel is cleared and the job store already points past the slot:
whoever takes the lease next reconciles every job with gap repair (scheduler/reconcile.py) and
moves it back to the slot, which has no run row, so it is handled then (late, or missed beyond the
grace). A slot found due when taken (a job added late, missed while down) is fired at once.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from scheduler.clock import TIMEZONE
from scheduler.jobs import BatchedJobStore, ResilientScheduler
from scheduler.triggers import LeadTrigger

logger = logging.getLogger(__name__)

Item = tuple[int, int, datetime]  # (schedule id, version, slot)
Prepare = Callable[[float, list[Item]], Any]  # (due instant epoch s, items) → prepared | None
Fire = Callable[[list[Item], Any], None]  # (items, prepared | None)
Quiet = Callable[[], None]  # work for between instants (a WAL checkpoint)


@dataclass
class _Entry:
    due: float  # epoch s: when the jobs are due (slot − lead)
    items: list[Item] = field(default_factory=list)
    prepared: Any = None


class Wheel:
    def __init__(self, sched: ResilientScheduler, store: BatchedJobStore, *, horizon_s: float, tick_s: float,
                 may_take: Callable[[], bool], prepare: Prepare, fire: Fire,
                 quiet: Quiet | None = None) -> None:
        self._sched, self._store = sched, store
        self.horizon_s, self.tick_s = horizon_s, tick_s
        self._may_take, self._prepare, self._fire, self._quiet = may_take, prepare, fire, quiet
        self._entries: dict[float, _Entry] = {}  # due → entry, ready to fire (prepared or not)
        self._cv = threading.Condition()
        self._epoch = 0  # + 1 at each clear: a take begun before it is dropped
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.fired = 0  # groups fired (diagnostics, tests)
        self._firing = False
        self._take_s = 0.05  # how long a take lasts, and building a group per slot (moving averages)
        self._slot_s = 0.0005

    def start(self) -> None:
        self._threads = [threading.Thread(target=self._take_loop, name="wheel-take", daemon=True),
                         threading.Thread(target=self._fire_loop, name="wheel-fire", daemon=True)]
        for t in self._threads:
            t.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self.clear()
        for t in self._threads:
            t.join(timeout)

    def clear(self) -> None:
        """Forget every slot taken and not fired (this controller stopped firing: see the docstring)."""
        with self._cv:
            self._epoch += 1
            dropped = sum(len(e.items) for e in self._entries.values())
            self._entries.clear()
            self._cv.notify_all()
        if dropped:
            logger.warning("%d slot(s) taken ahead were not fired here; whoever fires next handles them "
                           "(gap repair)", dropped)

    def _next_due(self) -> float:
        with self._cv:
            return min(self._entries, default=float("inf"))

    def pending(self) -> int:
        with self._cv:
            return sum(len(e.items) for e in self._entries.values())

    # ------------------------------------------------------------------ taking (its own thread)

    def _take_loop(self) -> None:
        failing = ""  # the database error last reported (once per outage)
        while not self._stop.is_set():
            try:
                if self._may_take():
                    self.take_once()
                    if self._quiet is not None and self._next_due() > time.time() + 0.5:
                        self._quiet()
                failing = ""
            except SQLAlchemyError as exc:  # the database away: nothing taken, APScheduler's round fires
                if str(exc) != failing:
                    logger.warning("taking due slots ahead: %s; trying again", str(exc).splitlines()[0])
                failing = str(exc)
            except Exception:
                logger.exception("taking due slots ahead failed; trying again")
            self._stop.wait(self.tick_s)

    def take_once(self) -> int:
        """Take the slots due within the horizon, prepare each instant's group; how many were taken."""
        with self._cv:
            epoch = self._epoch
        self._clear_of_instants(self._take_s, time.time() + self.tick_s)
        began = time.monotonic()
        groups = self._take(time.time() + self.horizon_s)
        self._take_s = 0.7 * self._take_s + 0.3 * (time.monotonic() - began)
        for due in sorted(groups):
            entry = _Entry(due, sorted(groups[due], key=lambda it: (it[2], it[0])))
            cost = 0.02 + self._slot_s * len(entry.items)  # what building it is expected to take
            self._clear_of_instants(cost, due - cost)
            if due > time.time() + 0.05:  # build it now (else it fires as it is, at once)
                began = time.monotonic()
                try:
                    entry.prepared = self._prepare(due, entry.items)
                except Exception:  # the usual path airs it at its instant
                    logger.exception("preparing %d slot(s) due at %.3f failed", len(entry.items), due)
                if len(entry.items) >= 50:  # a small group's time is mostly the fixed part
                    took = (time.monotonic() - began) / len(entry.items)
                    self._slot_s = 0.7 * self._slot_s + 0.3 * took
            with self._cv:
                if epoch != self._epoch:
                    return 0
                while due in self._entries:  # the same instant taken twice (a job added meanwhile)
                    due += 1e-6
                self._entries[due] = entry
                self._cv.notify_all()
        return sum(len(g) for g in groups.values())

    def _take(self, until_s: float) -> dict[float, list[Item]]:
        until = datetime.fromtimestamp(until_s, TIMEZONE)
        groups: dict[float, list[Item]] = {}
        with self._sched._jobstores_lock:  # APScheduler's round holds it too: a job goes to one of us
            self._store.begin_round()
            try:
                for job in self._store.get_due_jobs(until):
                    run_times = job._get_run_times(until)
                    if not run_times:
                        continue
                    lead = job.trigger.lead if isinstance(job.trigger, LeadTrigger) else timedelta(0)
                    sid, version = job.args
                    for rt in run_times:
                        groups.setdefault(rt.timestamp(), []).append((sid, version, rt + lead))
                    nxt = job.trigger.get_next_fire_time(run_times[-1], until)
                    if nxt is not None:
                        job._modify(next_run_time=nxt)
                        self._store.update_job(job)
                    else:
                        self._store.remove_job(job.id)
            finally:
                self._store.end_round()
            try:
                self._store.flush()  # before any of them fires
            except SQLAlchemyError as exc:  # nothing taken: the store still points at the slots
                self._store.discard_held()
                logger.warning("the job store is unreachable (%s); nothing taken ahead",
                               str(exc).splitlines()[0])
                return {}
        if groups:
            self._sched.wakeup()  # APScheduler's round waits for what was due first: let it look again
        return groups

    # ------------------------------------------------------------------ firing (its own thread)

    def _clear_of_instants(self, busy_s: float, until: float) -> None:
        """Wait (at most until ``until``) while a group fires or one is due within ``busy_s``: the
        take and the building are CPU work in this process, and would slow the firing down."""
        with self._cv:
            while not self._stop.is_set() and (now := time.time()) < until:
                nxt = min(self._entries, default=float("inf"))
                if not self._firing and nxt > now + busy_s:
                    return
                self._cv.wait(max(0.005, min(until - now, nxt - now + 0.01)))

    def _fire_loop(self) -> None:
        while not self._stop.is_set():
            with self._cv:
                due = min(self._entries, default=None)
                wait = self.tick_s if due is None else due - time.time()
                if wait > 0:
                    self._cv.wait(min(wait, self.tick_s))
                    continue
                entry = self._entries.pop(due)  # type: ignore[arg-type]
                self._firing = True
            try:
                self._fire(entry.items, entry.prepared)
                self.fired += 1
            except Exception:
                logger.exception("firing %d slot(s) due at %.3f failed", len(entry.items), entry.due)
            finally:
                with self._cv:
                    self._firing = False
                    self._cv.notify_all()
