"""A slot's true lateness: the instant its broadcast started playing minus the slot's instant.

The runner records ``late_ms`` when it fires a slot (scheduler/firing.py), which for a bulletin
slot is ``lead_s`` *before* the slot (pre-delivery), so 0. If the controller then stops and comes
back after the slot, the broadcast starts late (its play goes out after the restart), and the run
still said 0. :class:`LateAirings` listens to delivery changes (``DeliveryService.add_listener``):
once a slot's broadcast is first reported ``playing``, the run's ``late_ms`` becomes
``first playing − the broadcast's own instant`` when that is more than :data:`ON_TIME_MS` (the
units' reports reach the controller that much after they start under load), and its reason says so.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from sqlalchemy import func
from sqlmodel import Session, col, select

from controller.airing.models import Broadcast, Delivery, DeliveryEvent, DeliveryState
from controller.core.db import Database
from scheduler.models import RunStatus, Schedule, ScheduleRun

logger = logging.getLogger(__name__)

ON_TIME_MS = 2_000  # a start reported within this of its instant counts as on time
RUN_WINDOW_MS = 120_000  # a slot's run is created this close before its broadcasts
CHECK_EVERY_S = 0.5  # per broadcast, at most one look while it has not started
FORGET_AFTER = 10_000  # settled broadcast ids remembered (then looked up once more, cheaply)


def run_of(s: Session, bc: Broadcast) -> ScheduleRun | None:
    """The schedule run that made ``bc`` (None: not a slot's broadcast)."""
    runs = s.exec(select(ScheduleRun)
                  .where(col(ScheduleRun.created_at) >= bc.created_at - RUN_WINDOW_MS)
                  .where(col(ScheduleRun.created_at) <= bc.created_at)).all()
    return next((r for r in runs if bc.id in r.broadcast_ids), None)


def intended_ms(s: Session, bc: Broadcast, run: ScheduleRun) -> int:
    """When ``bc`` was meant to start: its play instant, or (a slot fired late: it played on
    arrival) the slot's, plus its place among a spaced slot's repeats."""
    if bc.play_at is not None:
        return bc.play_at
    sc = s.get(Schedule, run.schedule_id)
    k = run.broadcast_ids.index(bc.id) if sc is not None and sc.interval_s and sc.repeat > 1 else 0
    return run.slot_at + k * (sc.interval_s if sc is not None else 0) * 1000


def first_playing(s: Session, broadcast_id: str) -> int | None:
    return s.exec(select(func.min(DeliveryEvent.at)).join(Delivery)
                  .where(Delivery.broadcast_id == broadcast_id)
                  .where(DeliveryEvent.state == DeliveryState.PLAYING.value)).one()


def settle(db: Database, broadcast_id: str) -> bool:
    """Record the true lateness of the slot that made ``broadcast_id``; False while it has not
    started playing (look again later), True when there is nothing more to do."""
    with db.session() as s:
        bc = s.get(Broadcast, broadcast_id)
        if bc is None:
            return True
        started = first_playing(s, broadcast_id)  # indexed: cheap while it has not started
        if started is None:
            return False
        run = run_of(s, bc)  # looked for once, when it has started
        if run is None or run.status != RunStatus.AIRED.value:
            return True
        late = started - intended_ms(s, bc, run)
        if late > ON_TIME_MS and late > (run.late_ms or 0):
            run.late_ms = late
            run.reason = f"aired {late / 1000:.1f} s after its slot (the controller was away)"[:500]
            s.add(run)
            s.commit()
            logger.warning("schedule %d slot %d: broadcast %s started %.1f s late", run.schedule_id,
                           run.slot_at, broadcast_id, late / 1000)
        return True


class LateAirings:
    """The delivery listener: one look per broadcast at a time, off the event loop."""

    def __init__(self, db: Database, clock: Callable[[], float] = time.monotonic, *,
                 retry_s: float = 5.0, retries: int = 60) -> None:
        self._db = db
        self._clock = clock
        # a look that found the database away is tried again every ``retry_s`` (at most ``retries``
        # times): the reports of a delivery that ended meanwhile wait in the writer, and no change
        # would come to ask again once they are written
        self.retry_s = retry_s
        self.retries = retries
        self._tries: dict[str, int] = {}
        self._settled: dict[str, None] = {}  # insertion-ordered, bounded
        self._looked: dict[str, float] = {}  # broadcast id → when last looked (still open)
        self._busy: set[str] = set()

    def changed(self, broadcast_id: str) -> None:
        """``DeliveryService`` listener (event loop): a delivery of ``broadcast_id`` changed."""
        if broadcast_id in self._settled or broadcast_id in self._busy:
            return
        now = self._clock()
        if now - self._looked.get(broadcast_id, -1e9) < CHECK_EVERY_S:
            return
        self._looked[broadcast_id] = now
        while len(self._looked) > FORGET_AFTER:  # broadcasts that never played
            self._looked.pop(next(iter(self._looked)))
        self._busy.add(broadcast_id)
        fut = asyncio.get_running_loop().run_in_executor(None, settle, self._db, broadcast_id)
        fut.add_done_callback(lambda f: self._done(broadcast_id, f))

    def _done(self, broadcast_id: str, fut: asyncio.Future[bool]) -> None:
        self._busy.discard(broadcast_id)
        if fut.cancelled():
            return
        if (exc := fut.exception()) is not None:
            level = logging.DEBUG if broadcast_id in self._tries else logging.WARNING  # once per outage
            logger.log(level, "lateness of broadcast %s not recorded yet: %s", broadcast_id, exc)
            self._again(broadcast_id)
            return
        if not fut.result() and broadcast_id in self._tries:
            self._again(broadcast_id)  # the database is back; what the units reported may not be yet
        if fut.result():
            self._tries.pop(broadcast_id, None)
            self._looked.pop(broadcast_id, None)
            self._settled[broadcast_id] = None
            while len(self._settled) > FORGET_AFTER:
                self._settled.pop(next(iter(self._settled)))

    def _again(self, broadcast_id: str) -> None:
        tries = self._tries.get(broadcast_id, 0) + 1
        if tries > self.retries:
            self._tries.pop(broadcast_id, None)
            logger.warning("lateness of broadcast %s: gave up after %d tries", broadcast_id, self.retries)
            return
        self._tries[broadcast_id] = tries
        asyncio.get_running_loop().call_later(self.retry_s, self._retry, broadcast_id)

    def _retry(self, broadcast_id: str) -> None:
        self._looked.pop(broadcast_id, None)
        self.changed(broadcast_id)
