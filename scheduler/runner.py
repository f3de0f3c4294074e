"""ScheduleService: fires the schedules of the ward, on exactly one controller at a time.

Every controller runs one; the one holding the lease (scheduler/lease.py) runs the APScheduler
instance over the shared job store, the others wait to take over. On taking over, the jobs are
reconciled with the ``Schedule`` rows (scheduler/reconcile.py); while leading, changes made on
any controller are picked up every ``reconcile_s`` (at once when made here). Each slot is aired
by scheduler/firing.py, which asks the controller's ``SlotAirer`` (scheduler/ports.py) what it
airs; database errors are retried while we still hold the lease. The runner builds its own
engine from the factory it is given (short timeouts: a scheduler call must fail, not hang) and
disposes of it when it stops.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import time
from collections import deque
from collections.abc import Callable
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from devices.protocol import now_ms
from scheduler.clock import local
from scheduler.firing import FireConfig, SlotResult, air_slot, air_slots
from scheduler.jobs import BatchedJobStore, SlotBatch, make_scheduler
from scheduler.lease import Lease, default_holder
from scheduler.models import RunStatus
from scheduler.ports import Aired, SlotAirer
from scheduler.prepared import PreparedSlots, checkpoint, defer_checkpoints, fire_prepared, prepare_slots
from scheduler.reconcile import Reconciler
from scheduler.settings import ScheduleSettings
from scheduler.wheel import Item, Wheel

logger = logging.getLogger(__name__)

#: Slots aired in one transaction at most (bounds how long a burst holds SQLite's write lock:
#: the lease must still renew meanwhile; 1,000 slots hold it ~0.1 s here).
BATCH_MAX = 1000
#: Attempts at a batch's transaction after a database error before taking its slots one by one.
BATCH_TRIES = 3
#: Outcomes that wrote the slot's run (the slot fired: aired, failed, missed or skipped here).
RUN_WRITTEN = frozenset(s.value for s in RunStatus)


def _retrieve(f: asyncio.Future[bool]) -> None:
    if not f.cancelled():
        f.exception()


class ScheduleService:
    def __init__(self, engine: Callable[[], Engine], settings: ScheduleSettings, *, airer: SlotAirer,
                 holder: str | None = None, clock: Callable[[], int] = now_ms,
                 reach: Callable[[], bool] | None = None) -> None:
        """``clock`` (epoch ms) judges how late a slot is; tests may hand in a fixed one. ``reach()``:
        can this controller reach its units now (else it does not hold the lease)?"""
        self.settings = settings
        self.reach = reach or (lambda: True)
        self.cut_off = False  # the broker is out of reach: the lease is handed back, not sought
        self.holder = holder or default_holder()
        self.engine = engine()
        self.lease = Lease(self.engine, self.holder, settings.lease_ttl_s)
        self.lead = timedelta(seconds=settings.lead_s)
        self.fire_cfg = FireConfig(grace_ms=int(settings.grace_s * 1000), holder=self.holder, clock=clock)
        self.airer = airer
        self.sched, self.executor = make_scheduler(self.engine, self._on_batch, workers=settings.workers,
                                                   retry_s=min(10.0, settings.renew_s))
        self.reconciler = Reconciler(self.engine, self.sched, self.lead, self.holder)
        store = self.sched._jobstores["default"]
        assert isinstance(store, BatchedJobStore)
        self.wheel = (Wheel(self.sched, store, horizon_s=settings.prepare_s,
                            tick_s=max(0.1, min(1.0, settings.prepare_s / 3)), may_take=self._may_take,
                            prepare=self._prepare, fire=self._fire_group,
                            quiet=partial(checkpoint, self.engine)) if settings.prepare_s > 0 else None)
        if self.wheel is not None:
            defer_checkpoints(self.engine)
        self.leading = False
        self.results: deque[SlotResult] = deque(maxlen=1000)  # the most recent outcomes (diagnostics)
        #: told (schedule, slot, lag s) when a slot fired: its run committed; lag from when its job was due
        self.on_fire: Callable[[int, datetime, float], None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._wake = asyncio.Event()
        self._stopping = False
        self._lease_pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="lease")
        self._renewal: asyncio.Future[bool] | None = None
        self._last_sync = 0.0
        self._db_error = ""

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        await asyncio.to_thread(self.sched.start, paused=True)
        if self.wheel is not None:
            self.wheel.start()
        self._tasks = [asyncio.create_task(self._lease_loop(), name="schedule-lease"),
                       asyncio.create_task(self._control_loop(), name="schedule-control")]
        logger.info("schedule runner %s started (lead %.1f s, grace %.1f s, lease %.1f s)", self.holder,
                    self.settings.lead_s, self.settings.grace_s, self.settings.lease_ttl_s)

    async def stop(self, *, release: bool = True) -> None:
        """Stop firing; ``release=False`` leaves the lease to expire, as a crash would."""
        self._stopping = True
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._stand_down("stopping")
        if self.wheel is not None:
            await asyncio.to_thread(self.wheel.stop)
        if release:
            try:
                await asyncio.wait_for(asyncio.to_thread(self.lease.release), self.settings.db_timeout_s * 2)
            except (TimeoutError, SQLAlchemyError) as exc:
                logger.warning("could not release the schedule lease (%s); it expires by itself", exc)
        if self.sched.running:
            await asyncio.to_thread(self.sched.shutdown, wait=False)
        await asyncio.to_thread(self.executor.wait_idle, self.settings.db_timeout_s * 3)
        self._lease_pool.shutdown(wait=False, cancel_futures=True)
        self.engine.dispose()

    def changed(self, schedule_id: int) -> None:
        """A schedule was written here: apply it now if we fire, else the leader picks it up."""
        self.reconciler.mark(schedule_id)
        self._loop_call(self._wake.set)  # routes may call this from a worker thread

    def status(self) -> dict[str, Any]:
        lease = self.lease.current()
        return {"me": self.holder, "leading": self.leading and self.lease.valid(), "lease": lease,
                "last_error": self._db_error, "broker_lost": self.cut_off}

    # ------------------------------------------------------------------ the lease loop

    async def _lease_loop(self) -> None:
        """Renew (or seek) the lease every renew_s, whatever the control loop is busy with."""
        held = False
        while not self._stopping:
            now_held = await self._renew()
            if now_held != held:
                held = now_held
                self._wake.set()
            wait = self.settings.renew_s
            if held:
                wait = max(0.05, min(wait, self.lease.remaining_s()))  # look again when it would lapse
            await asyncio.sleep(wait)

    async def _control_loop(self) -> None:
        """Start or stop firing as the lease comes and goes; apply schedule changes while firing."""
        while not self._stopping:
            self._wake.clear()
            try:
                held = self.lease.valid() and not self.cut_off
                if held and not self.leading:
                    await self._take_over()
                elif not held and self.leading:
                    self._stand_down("lost the broker" if self.cut_off else
                                     f"database: {self._db_error}" if self._db_error else "lost the lease")
                elif held and (self.reconciler.has_dirty or self._sync_due()):
                    await self._sync()
            except Exception:
                logger.exception("schedule runner: unexpected error; carrying on")
            wait = self.settings.reconcile_s if self.leading else self.settings.renew_s
            if self.leading:
                wait = max(0.05, min(wait, self.lease.remaining_s()))
            try:
                await asyncio.wait_for(self._wake.wait(), wait)
            except TimeoutError:
                pass

    def _sync_due(self) -> bool:
        return time.monotonic() - self._last_sync > self.settings.reconcile_s

    async def _renew(self) -> bool:
        if not self.reach():
            return await self._cut_off()
        if self.cut_off:
            self.cut_off = False
            logger.warning("controller %s reaches its broker again: it seeks the schedule lease", self.holder)
        loop = asyncio.get_running_loop()
        if self._renewal is None or self._renewal.done():
            self._renewal = loop.run_in_executor(self._lease_pool, self.lease.try_acquire)
            self._renewal.add_done_callback(_retrieve)  # a timed-out call may still fail later
        try:
            left = self.lease.remaining_s() or self.settings.renew_s
            timeout = max(0.05, min(self.settings.db_timeout_s, left))
            got = await asyncio.wait_for(asyncio.shield(self._renewal), timeout)
        except TimeoutError:
            self._note_db_error("lease renewal is taking too long")
            return self.lease.valid()
        except SQLAlchemyError as exc:
            self._note_db_error(str(exc).splitlines()[0])
            return self.lease.valid()  # nobody can take it before it expires
        if self._db_error:
            logger.info("scheduler database reachable again")
            self._db_error = ""
        return got and self.lease.valid()

    async def _cut_off(self) -> bool:
        """No broker: stop firing now and hand the lease back (another controller takes it at once)."""
        if not self.cut_off:
            self.cut_off = True
            logger.error("controller %s cannot reach its broker: it hands the schedule lease back for "
                         "another controller to fire the schedules", self.holder)
        self.lease.drop()  # before the database answers: no slot fires here from now on
        try:
            await asyncio.wait_for(asyncio.get_running_loop().run_in_executor(
                self._lease_pool, self.lease.release), self.settings.db_timeout_s)
        except (TimeoutError, SQLAlchemyError) as exc:
            self._note_db_error(f"handing the lease back failed: {str(exc).splitlines()[0]}")
        return False

    def _note_db_error(self, msg: str) -> None:
        if msg != self._db_error:
            logger.warning("schedule lease: %s", msg)
        self._db_error = msg

    async def _take_over(self) -> None:
        try:
            done = await asyncio.to_thread(self.reconciler.full, self.lease.valid)
        except SQLAlchemyError as exc:
            self._note_db_error(f"taking over failed: {str(exc).splitlines()[0]}")
            return
        if not done or not self.lease.valid():
            return
        self.leading = True
        self._last_sync = time.monotonic()
        self.sched.resume()
        logger.info("controller %s now fires the schedules (%d schedules)", self.holder,
                    self.reconciler.count())

    def _stand_down(self, why: str) -> None:
        if self.leading:
            logger.log(logging.INFO if self._stopping else logging.WARNING,
                       "controller %s stops firing schedules: %s", self.holder, why)
        self.leading = False
        self.lease.drop()
        if self.wheel is not None:
            self.wheel.clear()
        if self.sched.running:
            self.sched.pause()

    async def _sync(self) -> None:
        try:
            await asyncio.to_thread(self.reconciler.changes)
            self._last_sync = time.monotonic()
        except SQLAlchemyError as exc:
            self._note_db_error(f"reconcile failed: {str(exc).splitlines()[0]}")

    # ------------------------------------------------------------------ slots (executor threads)

    def _on_batch(self, batch: SlotBatch) -> None:
        """The slots due together (one scheduler round: a burst on a round time), in the order of
        their slot, then schedule id (the arrival order the zone arbiter keeps among them), in
        chunks of :data:`BATCH_MAX`: one transaction per chunk when each slot simply airs; else, or
        on any error, one by one (each its own transaction, retried)."""
        items = sorted(((sid, version, slot) for sid, version, slots in batch for slot in slots),
                       key=lambda it: (it[2], it[0]))
        for i in range(0, len(items), BATCH_MAX):
            self._air_chunk(items[i:i + BATCH_MAX])

    def _air_chunk(self, items: list[tuple[int, int, datetime]]) -> None:
        results = self._air_together(items) if len(items) > 1 else None
        if results is not None:
            self._fired_together(items, results)
            return
        for sid, version, slot in items:
            self._fire(sid, version, slot)

    def _fired_together(self, items: list[Item], results: list[SlotResult]) -> None:
        """A chunk committed in one transaction: every slot of it fired at that instant."""
        fired_at = time.time()
        made = [res.aired() for res in results if res.broadcasts or res.relays]
        self._loop_call(self._handoff_all, made)  # one wake-up of the loop for the whole chunk
        for (sid, _, slot), res in zip(items, results, strict=True):
            self._noted(res, slot, sid, fired_at)

    # ------------------------------------------------------------------ the wheel (its threads)

    def _may_take(self) -> bool:
        return self.leading and not self._stopping and self.lease.valid()

    def _prepare(self, due_s: float, items: list[Item]) -> list[PreparedSlots | None]:
        """Each chunk of a group due at ``due_s`` built ahead (None: it takes the usual path)."""
        flat = [(sid, v, int(slot.timestamp() * 1000)) for sid, v, slot in items]
        at = int(due_s * 1000)
        return [prepare_slots(self.engine, self.fire_cfg, self.airer, flat[i:i + BATCH_MAX], at)
                for i in range(0, len(flat), BATCH_MAX)]

    def _fire_group(self, items: list[Item], prepared: list[PreparedSlots | None] | None) -> None:
        """A group the wheel took, at its instant: each chunk as prepared, else the usual way."""
        for k, i in enumerate(range(0, len(items), BATCH_MAX)):
            chunk, results = items[i:i + BATCH_MAX], None
            p = prepared[k] if prepared else None
            if p is not None and not self._stopping and self.lease.valid():
                try:
                    results = fire_prepared(self.engine, self.fire_cfg, p, may_fire=self.lease.valid)
                except SQLAlchemyError as exc:
                    logger.warning("%d prepared slot(s): database error (%s); airing them the usual way",
                                   len(chunk), str(exc).splitlines()[0])
                except Exception:  # nothing was committed: the usual path airs and reports them
                    logger.exception("%d prepared slot(s) failed; airing them the usual way", len(chunk))
            if results is not None:
                self._fired_together(chunk, results)
            else:
                self._air_chunk(chunk)

    def _air_together(self, items: list[tuple[int, int, datetime]]) -> list[SlotResult] | None:
        """``air_slots`` of the chunk, tried again on a database error (a write lock held by a lease
        renewal) while we hold the lease; None: take them one by one."""
        for attempt in range(BATCH_TRIES):
            if self._stopping or not self.lease.valid():
                return None
            try:
                return air_slots(self.engine, self.fire_cfg, self.airer,
                                 [(sid, v, int(slot.timestamp() * 1000)) for sid, v, slot in items],
                                 may_fire=self.lease.valid)
            except SQLAlchemyError as exc:
                logger.warning("a batch of %d slots: database error (%s); %s", len(items),
                               str(exc).splitlines()[0],
                               "retrying" if attempt + 1 < BATCH_TRIES else "airing them one by one")
                time.sleep(0.05 * (attempt + 1))
            except Exception:  # the one-by-one path retries and reports each slot
                logger.exception("a batch of %d slots failed; airing them one by one", len(items))
                return None
        return None

    def _note_fire(self, schedule_id: int, slot: datetime, fired_at: float | None = None) -> None:
        if self.on_fire is not None:
            self.on_fire(schedule_id, slot, (fired_at or time.time()) - (slot - self.lead).timestamp())

    def _fire(self, schedule_id: int, version: int, slot: datetime) -> None:
        slot_ms = int(slot.timestamp() * 1000)
        delay = 0.2
        while True:
            if self._stopping or not self.lease.valid():
                logger.warning("schedule %d slot %s not fired here: this controller lost the lease",
                               schedule_id, local(slot_ms).isoformat())
                return  # whoever fires next finds the gap (last_slot_at) and airs it late or reports it
            try:
                res = air_slot(self.engine, self.fire_cfg, self.airer, schedule_id=schedule_id,
                               version=version, slot_ms=slot_ms, may_fire=self.lease.valid)
                break
            except SQLAlchemyError as exc:
                logger.warning("schedule %d slot %s: database error (%s); retrying", schedule_id,
                               local(slot_ms).isoformat(), str(exc).splitlines()[0])
                time.sleep(delay)
                delay = min(delay * 2, 2.0)
        self._done(res, schedule_id, slot, schedule_id)

    def _done(self, res: SlotResult, changed: int | None, slot: datetime, schedule_id: int) -> None:
        """A slot handled: its run committed (``on_fire`` is told: it fired), what it made handed
        over; ``changed``: the schedule to look at again if it changed meanwhile."""
        self._noted(res, slot, schedule_id)
        if res.outcome in ("stale", "gone") and changed is not None:
            self._loop_call(self.changed, changed)
        if res.broadcasts or res.relays:
            self._loop_call(self.airer.handoff, res.aired())

    def _noted(self, res: SlotResult, slot: datetime, schedule_id: int,
               fired_at: float | None = None) -> None:
        self.results.append(res)
        if res.outcome in RUN_WRITTEN:
            self._note_fire(schedule_id, slot, fired_at)

    def _handoff_all(self, made: list[Aired]) -> None:
        for aired in made:
            self.airer.handoff(aired)

    def _loop_call(self, fn: Callable[..., None], *args: Any) -> None:
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(fn, *args)
