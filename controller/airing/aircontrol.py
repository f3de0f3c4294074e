"""Air control: turns the per-zone arbiter's decisions into ``play`` commands.

Broadcast audio is delivered with ``hold`` (docs/protocol.md §3): units download and verify
it, then wait. This service decides when each broadcast sounds, through
:class:`scheduler.arbiter.ZoneArbiter`, and tells its units to start at one instant of the
controller's clock (each unit converts it with its own clock offset, so neighbouring
speakers start in step):

* a broadcast with a future ``play_at`` (a scheduled slot) is queued for that instant;
* one to air now waits until its online units have verified the audio (at most
  ``ready_wait_s``), so a slow 4G link does not make a unit start late;
* a unit that verifies after its broadcast started (it was offline, or slow) gets a
  catch-up item of its own, arbitrated on its zones like anything else.

A unit that refuses a ``play`` (its audio still incomplete, say) is told to the refusal
listeners (:meth:`AirControl.on_refused`: delivery shows why); the bus routes the unit's reply
here by its correlation id.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from controller.core.background import Periodic
from devices import protocol as p
from devices.link import UnitBus
from scheduler.arbiter import Ended, Item, Preempted, PreemptPolicy, Start, ZoneArbiter

logger = logging.getLogger(__name__)


LIVE_HOLD_MS = 24 * 3600 * 1000
"""Arbiter duration of a live session: its zones are held until the session is released."""


@dataclass
class LiveHold:
    """What the arbiter's decisions about a live session call back into."""

    started: Callable[[], None]
    ended: Callable[[str], None]  # reason: preempted | cleared | cancelled


Refusal = Callable[[str, str, str], None]
"""``fn(broadcast_id, node_id, why)``: a unit refused to start the broadcast."""


@dataclass
class AirItem:
    bc: str
    scopes: list[p.AudioScope]
    nodes: list[str]
    started: bool = False


@dataclass
class Pending:
    bc: str
    priority: p.Priority
    duration_ms: int
    scopes: list[p.AudioScope]
    nodes: list[str]
    play_at: int | None
    deadline: float  # loop time after which we air without waiting for more units
    ready: Callable[[], bool] = field(default=lambda: False)


class AirControl:
    def __init__(self, link: UnitBus, zones_of: Callable[[str], list[str]], *,
                 policy: PreemptPolicy = PreemptPolicy.DROP, margin_ms: int = 1500,
                 ready_wait_s: float = 10.0, tick_s: float = 0.1) -> None:
        self.link = link
        self.zones_of = zones_of
        self.arbiter = ZoneArbiter(policy=policy, margin_ms=margin_ms)
        self.ready_wait_s = ready_wait_s
        self.tick_s = tick_s
        self._items: dict[str, AirItem] = {}
        self._pending: dict[str, Pending] = {}
        self._requeued: set[str] = set()  # broadcasts pre-empted and waiting to restart/resume
        self._started: set[str] = set()  # broadcasts whose main item has started
        self._refusal_listeners: list[Refusal] = []
        self._ticker = Periodic("air-control", tick_s, self._tick)
        #: live sessions and relays held in the arbiter: item id → its callbacks
        self.live: dict[str, LiveHold] = {}

    def start(self) -> None:
        self._ticker.start()

    async def stop(self) -> None:
        await self._ticker.stop()

    def zones(self, nodes: list[str]) -> frozenset[str]:
        out: set[str] = set()
        for n in nodes:
            zs = [z for z in self.zones_of(n) if z != "all"]
            out.update(zs or [f"unit:{n}"])
        return frozenset(out)

    # ------------------------------------------------------------------ questions

    def airing(self, bc: str) -> bool:
        """The broadcast is in air control's hands: waiting for its start, or started."""
        return bc in self._pending or bc in self._started

    def will_resume(self, bc: str) -> bool:
        """The broadcast was pre-empted and waits to restart or resume (policy ``requeue``)."""
        return bc in self._requeued

    def on_refused(self, fn: Refusal) -> None:
        """Call ``fn(broadcast_id, node_id, why)`` when a unit refuses to start a broadcast."""
        self._refusal_listeners.append(fn)

    # ------------------------------------------------------------------ inputs

    def offer(self, bc: str, *, priority: p.Priority, duration_ms: int, scopes: list[p.AudioScope],
              nodes: list[str], play_at: int | None, ready: Callable[[], bool]) -> None:
        """A broadcast's audio is out; air it at ``play_at`` or as soon as its units are ready."""
        if bc in self._items or bc in self._pending:
            return
        loop = asyncio.get_running_loop()
        self._pending[bc] = Pending(bc, priority, duration_ms, scopes, nodes, play_at,
                                   loop.time() + self.ready_wait_s, ready)
        self._check_pending()

    def unit_ready(self, bc: str, node_id: str, *, priority: p.Priority, duration_ms: int) -> None:
        """A unit verified the audio: maybe the broadcast can start, or the unit needs a catch-up."""
        if bc in self._pending:
            self._check_pending()
            return
        if bc in self._started and bc not in self._requeued:
            item_id = f"{bc}@{node_id}"
            if not self.arbiter.known(item_id):
                self._submit(item_id, AirItem(bc, [p.AudioScope(kind="node", id=node_id)], [node_id]),
                             priority, duration_ms, None)

    def finished(self, bc: str) -> None:
        """Every unit of the broadcast is final: free its zones."""
        self._pending.pop(bc, None)
        self._requeued.discard(bc)
        self._started.discard(bc)
        now = p.now_ms()
        for item_id in [i for i, it in self._items.items() if it.bc == bc]:
            self._apply(self.arbiter.done(item_id, now) if item_id in self.arbiter.running
                        else self.arbiter.cancel(item_id, now, "finished"))
            self._items.pop(item_id, None)

    def cancel(self, bc: str) -> None:
        self.finished(bc)

    def hold(self, item_id: str, nodes: list[str], priority: p.Priority, hooks: LiveHold) -> None:
        """Hold the zones of ``nodes`` for a live session of unknown length, until :meth:`release`."""
        self.live[item_id] = hooks
        item = Item(item_id, self.zones(nodes), priority, LIVE_HOLD_MS)
        self._apply(self.arbiter.submit(item, p.now_ms()))

    def release(self, item_id: str) -> None:
        if self.live.pop(item_id, None) is None:
            return
        now = p.now_ms()
        self._apply(self.arbiter.done(item_id, now) if item_id in self.arbiter.running
                    else self.arbiter.cancel(item_id, now, "finished"))

    def on_air(self, nodes: list[str]) -> list[str]:
        """Ids of what sounds now in a zone of ``nodes`` (broadcasts, live, relays)."""
        zones = self.zones(nodes)
        return [i.id for i in self.arbiter.running.values() if i.zones & zones]

    def emergency_on(self, nodes: list[str]) -> bool:
        """An emergency sounds or waits in a zone of ``nodes``."""
        zones = self.zones(nodes)
        items = (*self.arbiter.running.values(), *self.arbiter.waiting.values())
        return any(i.priority == p.Priority.EMERGENCY and i.zones & zones for i in items)

    # ------------------------------------------------------------------ machinery

    def _tick(self) -> None:
        self._check_pending()
        self._apply(self.arbiter.tick(p.now_ms()))

    def _check_pending(self) -> None:
        now = asyncio.get_running_loop().time()
        for bc, pend in list(self._pending.items()):
            scheduled = pend.play_at is not None and pend.play_at > p.now_ms()
            if scheduled or pend.ready() or now >= pend.deadline:
                del self._pending[bc]
                self._submit(bc, AirItem(bc, pend.scopes, pend.nodes), pend.priority, pend.duration_ms,
                             pend.play_at)

    def _submit(self, item_id: str, item: AirItem, priority: p.Priority, duration_ms: int,
                play_at: int | None) -> None:
        self._items[item_id] = item
        arb_item = Item(item_id, self.zones(item.nodes), priority, max(1, duration_ms), play_at or 0)
        self._apply(self.arbiter.submit(arb_item, p.now_ms()))

    def _apply(self, actions: list[Start | Preempted | Ended]) -> None:
        for a in actions:
            hooks = self.live.get(a.item_id)
            if hooks is not None:
                self._apply_live(a, hooks)
            elif isinstance(a, Start):
                self._start(a)
            elif isinstance(a, Preempted):
                item = self._items.get(a.item_id)
                logger.warning("%s pre-empted by emergency %s after %.1f s (%s)", a.item_id, a.by,
                               a.played_ms / 1000, "will continue" if a.requeued else "dropped")
                if item is not None:
                    if a.requeued:
                        self._requeued.add(item.bc)
                    # units outside the emergency's zones must stop too: the zone is free now
                    self._command(item, "stop", {"bc": item.bc, "reason": "preempted"}, p.now_ms() + 10_000)
            elif isinstance(a, Ended) and a.reason != "finished":
                self._items.pop(a.item_id, None)

    def _apply_live(self, a: Start | Preempted | Ended, hooks: LiveHold) -> None:
        if isinstance(a, Start):
            hooks.started()
            return
        self.live.pop(a.item_id, None)
        if isinstance(a, Preempted):
            if a.requeued:  # a live session is never resumed later: drop it whatever the policy
                hooks.ended("preempted")
                self._apply(self.arbiter.cancel(a.item_id, p.now_ms(), "preempted"))
                return
            hooks.ended("preempted")
        elif a.reason != "finished":
            hooks.ended(a.reason)

    def _start(self, a: Start) -> None:
        item = self._items.get(a.item_id)
        if item is None:
            return
        item.started = True
        self._started.add(item.bc)
        self._requeued.discard(item.bc)
        self._command(item, "play", {"bc": item.bc, "at": a.at_ms, "offset_ms": a.offset_ms},
                      a.at_ms + 10_000)
        logger.info("%s starts at %d (+%d ms in) in %s", a.item_id, a.at_ms, a.offset_ms,
                    ", ".join(sorted(a.zones)))

    def _command(self, item: AirItem, name: str, args: dict[str, object], expires_at: int) -> None:
        """Send one command to every scope of the item (group topics fan out in the broker)."""
        bc = item.bc

        def reply(node_id: str, resp: p.CommandResponse) -> None:
            if name == "play" and resp.status != "ok":
                self._refused(bc, node_id, resp.error)

        self.link.command(item.scopes, name, args, expires_at=expires_at, on_reply=reply)

    def _refused(self, bc: str, node_id: str, why: str) -> None:
        for fn in self._refusal_listeners:
            try:
                fn(bc, node_id, why)
            except Exception:
                logger.exception("refusal listener failed")
