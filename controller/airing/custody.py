"""Custody of the broadcasts on their way: renew ours, give them up when we cannot, take orphans.

Every ``owner_renew_s`` (2 s) the controller renews the ``broadcast_owner`` rows it holds
(controller/airing/ownership.py) in one statement and learns which it still holds (the
*renewal*); on its own loop, as often, it looks for broadcasts on their way whose owner is gone
(its row expired, or none: the *scan*); each it takes with a compare-and-set is rebuilt from the
database and the units' reports by delivery (``adopt``: the ``load_active`` restore of a restart,
then the retained manifests again and a ``play`` naming the start instant, so a unit that played
already answers with its state and plays nothing again).

The renewal runs off the busy path: on a thread of its own (not the default pool, where the
writer, the API and the scan queue), on a loop of its own (an adoption never delays it). Its
margin: the local belief in our rows lasts ``ttl − margin`` (6 − 0.6 s) from the moment a
renewal is *sent*, so one renewal may come back up to ``ttl − margin − renew_s`` (3.4 s) late
before anything is given up.

A guard every ``GUARD_S`` gives every broadcast up (``abandon``: forgotten here, nothing sent)
once that belief lapses — renewals failing (the database lost) or later than that — before any
other controller may take them. A renewal is a compare-and-set on the holder alone (``holder =
me``, expired or not): a late one that finds a row still ours (nobody took it meanwhile: a taker
writes its own name) keeps it, and a broadcast the guard gave up is adopted again at once. A
broadcast is given up as taken only if it was held *before* the renewal was sent and its row
names another holder now (one claimed while the renewal was on its way is not missing from it),
and a broadcast this controller finished is not taken back while its end is being written.
A standby takes a dead owner's broadcast at most ``ttl + renew_s`` (6 + 2 s) after the owner's
last renewal.

Without the broker (its own probe not passed back for ``broker_lost_s``: a partition between
this controller and the broker, the database still there) the controller cannot deliver, so it
must not keep its leases: the guard gives every broadcast up (forgotten, nothing more sent), the
link drops what it still queued for the units (``on_broker_lost``), and the next renewal hands the
rows back at once (``expires_at = 0``) instead of renewing them; no claim or take-over is made
until the broker answers again. Another controller takes them at its next round. When the
partition heals this controller finds them held by a live owner and leaves them alone.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Collection
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from sqlalchemy.exc import SQLAlchemyError

from controller.airing.ownership import Ownership
from controller.core.background import Periodic

logger = logging.getLogger(__name__)

GUARD_S = 0.25
LOST_DB = "lost the database"
LOST_BROKER = "lost the broker"
TAKEN = "taken over by another controller"
#: a broadcast finished here is not taken back for this long while its end is being written
FINISHING_S = 60.0

Adopt = Callable[[str], Awaitable[bool]]
"""``adopt(broadcast_id)``: rebuild a broadcast just taken, and go on delivering it."""
Abandon = Callable[[str, str], None]
"""``abandon(broadcast_id, why)``: forget a broadcast we no longer own (send nothing more)."""
T = TypeVar("T")


class Custody:
    def __init__(self, owner: Ownership, held: Callable[[], Collection[str]], *, adopt: Adopt,
                 abandon: Abandon, renew_s: float, on_broker_lost: Callable[[], object] | None = None,
                 name: str = "delivery") -> None:
        self.owner = owner
        self._held = held
        self._adopt = adopt
        self._abandon = abandon
        self._on_broker_lost = on_broker_lost
        self.name = name
        self._cut = False  # the broker is out of reach: we hold nothing, take nothing
        self.stats = {"renew_errors": 0, "taken_over": 0, "abandoned": 0, "broker_lost": 0, "rounds": 0,
                      "kept_late": 0}
        self._finishing: dict[str, float] = {}  # finished here, its end not yet written: when
        self._adopting: set[str] = set()
        self._bg: set[asyncio.Task[None]] = set()
        self._pool: ThreadPoolExecutor | None = None
        self._renewer = Periodic(f"{name}-custody", renew_s, self._renewal)
        self._scanner = Periodic(f"{name}-custody-scan", renew_s, self.scan)
        self._guard = Periodic(f"{name}-custody-guard", GUARD_S, self.guard)

    async def start(self) -> None:
        """The first round now (a restarted controller takes its own back at once), then the loops."""
        try:
            await self.round()
        except SQLAlchemyError as exc:
            logger.warning("first custody round failed (%s); retried every round", exc)
        self._renewer.start()
        self._scanner.start()
        self._guard.start()

    async def stop(self, *, release: bool) -> None:
        await self._renewer.stop()
        await self._scanner.stop()
        await self._guard.stop()
        for task in list(self._bg):
            task.cancel()
        if release:  # a clean shutdown: another controller takes our broadcasts at its next round
            try:
                await self._sql(self.owner.release_all)
            except SQLAlchemyError as exc:
                logger.warning("could not release the broadcasts at shutdown (%s): they expire", exc)
        if self._pool is not None:
            self._pool.shutdown(wait=False)
            self._pool = None

    def finishing(self, broadcast_id: str) -> None:
        """Delivery finished the broadcast; its status and the release of its row are on their way to
        the database (the writer): not an orphan to take back meanwhile."""
        self._finishing[broadcast_id] = time.monotonic()

    def guard(self) -> None:
        if not self.owner.reach():
            self._broker_lost()
        elif not self.owner.valid():
            self._give_up(list(self._held()), LOST_DB)

    def _broker_lost(self) -> None:
        held = list(self._held())
        if not self._cut:
            self._cut = True
            self.stats["broker_lost"] += 1
            logger.error("the broker does not pass this controller's probe back: it cannot deliver; "
                         "giving up %d %s lease(s) for another controller to take over", len(held), self.name)
            if self._on_broker_lost is not None:
                self._on_broker_lost()
        self._give_up(held, LOST_BROKER)

    async def round(self) -> None:
        """A renewal, then a scan (which takes back, and waits for, what is still ours)."""
        await self.renew_round()
        await self.scan()

    async def renew_round(self) -> set[str]:
        """Renew ours; give up what was taken; the rows still ours of broadcasts not held here (given
        up by the guard while the renewal was late, a restart's own)."""
        if not self.owner.reach():  # hand our rows back now rather than renew what we cannot deliver
            self._broker_lost()
            try:
                await self._sql(self.owner.release_all)
            except SQLAlchemyError as exc:
                logger.warning("could not hand the rows back (%s): they expire", exc)
            return set()
        if self._cut:
            self._cut = False
            logger.warning("the broker passes this controller's probe back again")
        before = set(self._held())  # what a missing row can mean was taken from us
        try:
            mine = await self._sql(self.owner.renew)
        except SQLAlchemyError as exc:
            self.stats["renew_errors"] += 1
            logger.warning("cannot renew the %s leases held here (%s); given up in %.1f s without the "
                           "database", self.name, exc, max(0.0, self.owner.remaining_s()))
            self.guard()
            return set()
        now = time.monotonic()
        self._finishing = {bc: at for bc, at in self._finishing.items()
                           if bc in mine and now - at < FINISHING_S}  # (its row gone: its end written)
        held = set(self._held())
        self._give_up([bc for bc in held if bc in before and bc not in mine], TAKEN)
        return mine - held - self._adopting - self._finishing.keys()

    async def _renewal(self) -> None:
        """The renewer's round: what is still ours is delivered on at once, beside the renewals (an
        adoption never delays the next one)."""
        for bc in sorted(await self.renew_round()):
            self.stats["kept_late"] += 1
            logger.warning("%s %s still ours after a late renewal: delivered on", self.name, bc)
            task = asyncio.create_task(self._take_over(bc))
            self._bg.add(task)
            task.add_done_callback(self._bg.discard)

    async def scan(self) -> None:
        if not self.owner.reach():
            return
        for bc in await self._sql(self.owner.orphans):
            if bc in self._held() or bc in self._finishing or bc in self._adopting:
                continue
            if await self._sql(self.owner.take, bc):
                self.stats["taken_over"] += 1
                logger.warning("took %s %s over (its owner is gone)", self.name, bc)
                await self._take_over(bc)
        self.stats["rounds"] += 1

    async def _take_over(self, bc: str) -> None:
        if bc in self._held() or bc in self._adopting:
            return
        self._adopting.add(bc)
        try:
            if not await self._adopt(bc):
                await self._sql(self.owner.release, bc)
        finally:
            self._adopting.discard(bc)

    async def _sql(self, fn: Callable[..., T], *args: object) -> T:
        """``fn(*args)`` on custody's own thread: renewals never queue behind the default pool."""
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="custody")
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)

    def _give_up(self, ids: list[str], why: str) -> None:
        for bc in ids:
            self.stats["abandoned"] += 1
            logger.warning("%s %s given up: %s", self.name, bc, why)
            self._abandon(bc, why)
