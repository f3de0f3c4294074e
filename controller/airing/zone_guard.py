"""Air control's side of the cluster-wide zones (controller/airing/zone_claims.py).

The arbiter's ``Start`` of a broadcast's item is held back until the item has taken its zones in
the database (:meth:`ZoneGuard.admit`: one round trip, a few ms of the start margin); refused, it
waits again in the arbiter, whose ``foreign`` zones now hold it back until their holder gives them
back (notified through the change feed; read again every ``renew_s`` anyway). An item that ends,
is pre-empted or is forgotten gives its zones back. When another controller's emergency takes a
zone of an item of ours that sounds, the item is pre-empted here as a local emergency would
(stop commands, the policy's drop / restart / resume).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any

from controller.airing.zone_claims import Foreign, ZoneGate
from devices import protocol as p
from scheduler.arbiter import Ended, Preempted, Start, ZoneArbiter

logger = logging.getLogger(__name__)

Apply = Callable[[list[Start | Preempted | Ended]], None]


class ZoneGuard:
    def __init__(self, gate: ZoneGate, arbiter: ZoneArbiter, *, apply: Apply,
                 bc_of: Callable[[str], str | None]) -> None:
        self.gate = gate
        self.arbiter = arbiter
        self._apply = apply
        self._bc_of = bc_of  # the broadcast of one of air control's items (None: a live hold)
        self._claimed: set[str] = set()
        self._bg: set[asyncio.Task[None]] = set()
        gate.on_foreign(self.foreign)

    def admit(self, a: Start) -> bool:
        """May ``a`` start now? Yes without a shared gate or once its zones are ours; else they are
        claimed first and the start follows (or the item waits again)."""
        if not self.gate.shared or a.item_id in self._claimed:
            return True
        bc = self._bc_of(a.item_id) or a.item_id  # (a relay or a live session: its own id)
        self._spawn(self._claim_then_start(a, bc))
        return False

    async def _claim_then_start(self, a: Start, bc: str) -> None:
        item = self.arbiter.running.get(a.item_id)
        if item is None:
            return
        got = await self.gate.claim(a.item_id, bc, a.zones, item.priority)
        now = self.arbiter.running.get(a.item_id)
        if now is not item or item.at_ms != a.at_ms:  # ended or moved meanwhile
            if got:
                self.gate.release([a.item_id])
            return
        if got:
            self._claimed.add(a.item_id)
            self._apply([a])  # admitted now: started (a broadcast's play, a relay's or live's hooks)
            return
        logger.info("%s waits: its zones are on air through another controller", a.item_id)
        self.arbiter.requeue(a.item_id)

    def adopted(self, item_id: str, bc: str, zones: frozenset[str], priority: p.Priority) -> None:
        """An item taken back as sounding (a broadcast taken over): its zones claimed again."""
        if not self.gate.shared:
            return

        async def claim() -> None:
            if await self.gate.claim(item_id, bc, zones, priority):
                self._claimed.add(item_id)
            else:
                logger.warning("%s taken over but its zones are held elsewhere", item_id)
        self._spawn(claim())

    def ended(self, item_id: str) -> None:
        """The item no longer sounds (ended, pre-empted, forgotten): its zones go back."""
        if item_id in self._claimed:
            self._claimed.discard(item_id)
            self.gate.release([item_id])

    def foreign(self, held: Foreign) -> None:
        """What other controllers hold now: held back here; an item of ours an emergency took is
        pre-empted."""
        self.arbiter.foreign = {z: prio for z, (_item, prio) in held.items()}
        for item_id in [i for i in self.arbiter.running if i in self._claimed]:
            zones = self.arbiter.running[item_id].zones
            by = next((held[z][0] for z in zones if z in held and held[z][0] != item_id), None)
            if by is not None:
                logger.warning("%s: its zones were taken by %s through another controller", item_id, by)
                self._claimed.discard(item_id)
                self._apply(self.arbiter.preempt_by(item_id, by, p.now_ms()))
        self._apply(self.arbiter.tick(p.now_ms()))  # what waited for those zones may start

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._bg.add(task)
        task.add_done_callback(self._bg.discard)
