"""Zones on air cluster-wide: a ``zone_claim`` row per zone, taken by compare-and-set.

Each controller's arbiter (scheduler/arbiter.py) decides what sounds in its broadcasts' zones;
with several controllers on one database that is not enough (issue 16: A's bulletin was cut to
0.58 s on 60 units by B's, and both reported it played). Before an item starts, air control
takes every zone of it here in one transaction (:meth:`DbZoneClaims.claim`): a zone is free when
it has no row, its row is the same item's (a broadcast taken over by another controller), or its
holder stopped renewing it (``expires_at`` on the database clock); an emergency also takes a zone
from a non-emergency. If any zone is taken, nothing is written and the item waits. The holder
renews its rows every ``renew_s`` and deletes them when the item ends; every change is notified
through the change feed (kind ``zone``) so a controller whose item waits tries again at once.
What other controllers hold (:meth:`DbZoneClaims.refresh`) goes to air control's listener: its
arbiter holds those zones back, and an item of ours whose zone an emergency took is pre-empted.

:class:`LocalZones` is the gate of a controller alone on its database (SQLite): every claim
succeeds without a round trip.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Protocol, TypeVar

from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session

from controller.core.background import Periodic
from controller.core.feed import Changes
from devices import protocol as p
from scheduler.lease import db_now_sql

logger = logging.getLogger(__name__)

ZONES = "zone"  # the change feed's kind (ephemeral): a zone claim was taken or given back

T = TypeVar("T")
Foreign = dict[str, tuple[str, p.Priority]]
"""Zones held by other controllers: zone → (item id, priority)."""


class ZoneGate(Protocol):
    """What air control asks before an item sounds (controller/airing/zone_guard.py)."""

    shared: bool

    async def claim(self, item_id: str, bc: str, zones: frozenset[str], priority: p.Priority) -> bool: ...

    def release(self, item_ids: list[str]) -> None: ...

    def on_foreign(self, fn: Callable[[Foreign], None]) -> None: ...


class LocalZones:
    """One controller alone: its arbiter is the whole truth."""

    shared = False

    async def claim(self, item_id: str, bc: str, zones: frozenset[str], priority: p.Priority) -> bool:
        return True

    def release(self, item_ids: list[str]) -> None:
        return None

    def on_foreign(self, fn: Callable[[Foreign], None]) -> None:
        return None

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    def changed(self, keys: frozenset[str] | None) -> None:
        return None


class DbZoneClaims:
    shared = True

    def __init__(self, engine: Engine, holder: str, feed: Changes, *, ttl_s: float, renew_s: float) -> None:
        self.engine = engine
        self.holder = holder
        self.feed = feed
        self.ttl_ms = int(ttl_s * 1000)
        self.stats = {"claims": 0, "refused": 0, "errors": 0}
        self._listeners: list[Callable[[Foreign], None]] = []
        self._bg: set[asyncio.Future[None]] = set()
        self._periodic = Periodic("zone-claims", renew_s, self.renew)
        #: every statement on one thread, in the order asked: a release of an item given up is never
        #: applied after the claim of the same item taken back (it would delete the new claim)
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="zone-claims")
        now = db_now_sql(engine)
        self._sql_take = text(
            "INSERT INTO zone_claim (zone, item_id, broadcast_id, priority, holder, expires_at) "
            f"VALUES (:zone, :item, :bc, :prio, :me, {now} + :ttl) ON CONFLICT (zone) DO UPDATE SET "
            f"item_id = :item, broadcast_id = :bc, priority = :prio, holder = :me, expires_at = {now} + :ttl "
            f"WHERE zone_claim.item_id = :item OR zone_claim.expires_at < {now} "
            "OR (:emergency AND zone_claim.priority <> 'emergency')")
        self._sql_foreign = text("SELECT zone, item_id, priority FROM zone_claim "
                                 f"WHERE holder <> :me AND expires_at >= {now}")

    def on_foreign(self, fn: Callable[[Foreign], None]) -> None:
        self._listeners.append(fn)

    async def start(self) -> None:
        self._periodic.start()

    async def stop(self) -> None:
        await self._periodic.stop()
        self._pool.shutdown(wait=False)  # (started again, a new one)
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="zone-claims")

    async def _sql(self, fn: Callable[..., T], *args: object) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)

    async def claim(self, item_id: str, bc: str, zones: frozenset[str], priority: p.Priority) -> bool:
        try:
            got = await self._sql(self._claim, item_id, bc, sorted(zones), priority)
        except SQLAlchemyError as exc:
            self.stats["errors"] += 1
            logger.warning("cannot claim zones %s for %s (%s): it waits", sorted(zones), item_id, exc)
            return False
        self.stats["claims" if got else "refused"] += 1
        if not got:
            await self.refresh()
        return got

    def _claim(self, item_id: str, bc: str, zones: list[str], priority: p.Priority) -> bool:
        args = {"item": item_id, "bc": bc, "prio": priority.value, "me": self.holder, "ttl": self.ttl_ms,
                "emergency": priority == p.Priority.EMERGENCY}
        with Session(self.engine) as s:
            for zone in zones:  # in one order on every controller: no deadlock
                if s.connection().execute(self._sql_take, {**args, "zone": zone}).rowcount != 1:
                    s.rollback()
                    return False
            self.feed.emit(s, ZONES, item_id, durable=False)
            s.commit()
        return True

    def release(self, item_ids: list[str]) -> None:
        if not item_ids:
            return
        # submitted now (not when a task first runs): before any claim asked after this call
        task = asyncio.get_running_loop().run_in_executor(self._pool, self._release, item_ids)
        self._bg.add(task)
        task.add_done_callback(self._released)

    def _released(self, task: asyncio.Future[None]) -> None:
        self._bg.discard(task)
        if not task.cancelled() and task.exception() is not None:
            self.stats["errors"] += 1
            logger.warning("zone claims not given back (%s): they expire", task.exception())

    def _release(self, item_ids: list[str]) -> None:
        with Session(self.engine) as s:
            for item_id in item_ids:
                s.connection().execute(text("DELETE FROM zone_claim WHERE item_id = :item AND holder = :me"),
                                       {"item": item_id, "me": self.holder})
            self.feed.emit(s, ZONES, item_ids[0], durable=False)
            s.commit()

    async def renew(self) -> None:
        """Keep our claims (they lapse ``ttl`` after we stop) and read the others'."""
        def run() -> None:
            with self.engine.begin() as c:
                c.execute(text(f"UPDATE zone_claim SET expires_at = {db_now_sql(self.engine)} + :ttl "
                               "WHERE holder = :me"), {"me": self.holder, "ttl": self.ttl_ms})
        try:
            await self._sql(run)
        except SQLAlchemyError as exc:
            self.stats["errors"] += 1
            logger.warning("cannot renew the zone claims (%s)", exc)
        await self.refresh()

    def changed(self, keys: frozenset[str] | None) -> None:
        """The change feed: another controller took or gave back zones."""
        task = asyncio.get_running_loop().create_task(self.refresh())
        self._bg.add(task)
        task.add_done_callback(self._bg.discard)

    async def refresh(self) -> None:
        def read() -> Foreign:
            with self.engine.connect() as c:
                rows = c.execute(self._sql_foreign, {"me": self.holder}).all()
            return {str(z): (str(i), p.Priority(pr)) for z, i, pr in rows}
        try:
            foreign = await self._sql(read)
        except SQLAlchemyError as exc:
            self.stats["errors"] += 1
            logger.warning("cannot read the zone claims (%s)", exc)
            return
        for fn in self._listeners:
            try:
                fn(foreign)
            except Exception:
                logger.exception("zone claims listener failed")
