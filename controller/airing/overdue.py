"""Broadcasts waiting for their air time whose timer died with its controller: any controller airs them.

A broadcast set for later (``POST /api/broadcasts`` with ``air_at``; a schedule's slot fired
``lead_s`` ahead, committed as ``scheduled`` and handed to the timer just after) is ``scheduled``
until a controller's timer (scheduler/airtimer.py) claims it at ``air_at`` (controller/airing/
claim.py: the compare-and-set that also writes its owner row). Only the controller that made it
has that timer, and those that (re)started since (``start_services``). If that controller dies
before the claim, no owner row exists for custody to find: the broadcast would wait, unseen,
until some controller restarts — a slot the run says "aired" that no unit hears.

So every controller looks every ``every_s`` for broadcasts still ``scheduled`` more than
``grace_s`` after their ``air_at`` and hands each its own timer does not hold already
(``waiting``: a burst still queued here) to it (``rearm``: due now, or reported missed past the
timer's grace, as at a restart). Whoever claims first airs it, once; the
controller that made it, alive, has claimed it long before the grace is over.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from sqlmodel import col, select

from controller.airing.models import Broadcast, BroadcastStatus
from controller.core.background import Periodic
from controller.core.db import Database
from devices.protocol import now_ms

logger = logging.getLogger(__name__)

Rearm = Callable[[str, int], None]
"""``rearm(broadcast_id, air_at_ms)``: this controller's timer airs it (the air scheduler's ``air_at``)."""
BATCH = 500  # broadcasts looked at in one round at most (oldest first)


class OverdueBroadcasts:
    def __init__(self, db: Database, rearm: Rearm, *, waiting: Callable[[str], bool], grace_s: float,
                 every_s: float) -> None:
        self._db = db
        self._rearm = rearm
        self._waiting = waiting
        self.grace_ms = int(grace_s * 1000)
        self.stats = {"rearmed": 0}
        self._told: dict[str, None] = {}  # re-armed here (logged once each), bounded
        self._periodic = Periodic("overdue-broadcasts", every_s, self.scan)

    async def start(self) -> None:
        self._periodic.start()

    async def stop(self) -> None:
        await self._periodic.stop()

    def _due(self) -> list[tuple[str, int]]:
        with self._db.session() as s:
            rows = s.exec(select(Broadcast.id, Broadcast.air_at)
                          .where(Broadcast.status == BroadcastStatus.SCHEDULED.value)
                          .where(col(Broadcast.air_at) < now_ms() - self.grace_ms)
                          .order_by(col(Broadcast.air_at)).limit(BATCH)).all()
        return [(str(i), int(at)) for i, at in rows]

    async def scan(self) -> None:
        for bc, air_at in await asyncio.to_thread(self._due):
            if self._waiting(bc):
                continue  # our own timer has it (it fires, or is queued behind a burst)
            if bc not in self._told:
                logger.warning("broadcast %s was due %.1f s ago and no controller has claimed it (the one "
                               "that made it stopped?): airing it here", bc, (now_ms() - air_at) / 1000)
                self._told[bc] = None
                while len(self._told) > 10_000:
                    self._told.pop(next(iter(self._told)))
            self.stats["rearmed"] += 1
            self._rearm(bc, air_at)
