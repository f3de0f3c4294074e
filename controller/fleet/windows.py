"""Zones' timed power windows (issue 14): at a window's ``on_at`` its zone's units are switched on,
at ``off_at`` off (ward time, on the window's days), by one power command to the zone's group.

Every controller ticks (every ``interval_s``); a switch is claimed in the database first
(``done_at`` moved forward by compare-and-swap), so on a shared database it is sent once. A switch
is applied only within ``grace_s`` of its time: a controller that was down at 06:00 does not
switch the zone on at noon (the next switch of the window comes as usual)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import or_, update
from sqlmodel import col, select

from controller.core.background import Periodic
from controller.core.db import Database
from controller.core.errors import ServiceError
from controller.fleet.commands import CommandService
from controller.fleet.models import ZoneWindow
from devices.protocol import now_ms
from scheduler import TIMEZONE

logger = logging.getLogger(__name__)

BY = "lịch bật/tắt"  # who sent the command, as the command log shows it


@dataclass(frozen=True)
class Switch:
    window_id: int
    zone_id: str
    on: bool
    at_ms: int  # the minute it is due


def last_switch(w: ZoneWindow, now: datetime) -> Switch | None:
    """The window's latest switch at or before ``now`` (today's or yesterday's), if any."""
    assert w.id is not None
    best: Switch | None = None
    for back in (1, 0):
        day = (now - timedelta(days=back)).date()
        if day.weekday() not in w.days:
            continue
        for hhmm, on in ((w.on_at, True), (w.off_at, False)):
            h, m = (int(x) for x in hhmm.split(":"))
            at = datetime(day.year, day.month, day.day, h, m, tzinfo=TIMEZONE)
            if at <= now and (best is None or at.timestamp() * 1000 > best.at_ms):
                best = Switch(w.id, w.zone_id, on, int(at.timestamp() * 1000))
    return best


class ZoneWindows:
    """Applies every enabled window's switches when they fall due."""

    def __init__(self, db: Database, commands: CommandService, *, interval_s: float = 15.0,
                 grace_s: float = 600.0, clock: Callable[[], int] = now_ms) -> None:
        self.db, self.commands, self.grace_ms, self.clock = db, commands, int(grace_s * 1000), clock
        self._job = Periodic("zone windows", interval_s, self.tick, first_immediately=True)
        self.sent = 0
        self._soon: set[asyncio.Task[None]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._job.start()

    async def stop(self) -> None:
        await self._job.stop()
        for task in list(self._soon):
            task.cancel()

    def kick(self) -> None:
        """A window was added or changed: look at once (a switch due this minute is not late).
        May be called from a worker thread (a sync route)."""
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._spawn)

    def _spawn(self) -> None:
        task = asyncio.get_running_loop().create_task(self.tick(), name="zone windows now")
        self._soon.add(task)
        task.add_done_callback(self._soon.discard)

    def due(self) -> list[Switch]:
        """The switches due now, each claimed here (no other controller sends it)."""
        t = self.clock()
        now = datetime.fromtimestamp(t / 1000, tz=TIMEZONE)
        out = []
        with self.db.session() as s:
            for w in s.exec(select(ZoneWindow).where(col(ZoneWindow.enabled))).all():
                sw = last_switch(w, now)
                if sw is None or t - sw.at_ms > self.grace_ms or (w.done_at or 0) >= sw.at_ms:
                    continue
                claimed = s.exec(update(ZoneWindow).where(  # type: ignore[call-overload]
                    col(ZoneWindow.id) == w.id,
                    or_(col(ZoneWindow.done_at).is_(None), col(ZoneWindow.done_at) < sw.at_ms))
                    .values(done_at=sw.at_ms))
                s.commit()
                if claimed.rowcount == 1:
                    out.append(sw)
        return out

    async def tick(self) -> None:
        for sw in self.due():
            try:
                o = await self.commands.run("power", {"on": sw.on}, zone=sw.zone_id, timeout_s=10, by=BY)
            except ServiceError as exc:
                logger.warning("zone %s window %s: power %s not sent: %s", sw.zone_id, sw.window_id,
                               "on" if sw.on else "off", exc.message)
                continue
            self.sent += 1
            ok = sum(1 for r in o.results if r.status == "ok")
            logger.info("zone %s window %s: power %s, %d/%d units confirmed", sw.zone_id, sw.window_id,
                        "on" if sw.on else "off", ok, len(o.results))
