"""Air control: turns the per-zone arbiter's decisions into ``play`` commands.

Broadcast audio is delivered with ``hold`` (docs/protocol.md §3): units download and verify
it, then wait. This service decides when each broadcast sounds, through
:class:`scheduler.arbiter.ZoneArbiter`, and tells its units to start at one instant of the
controller's clock (each unit converts it with its own clock offset, so neighbouring
speakers start in step):

* a broadcast with a future ``play_at`` (a scheduled slot) is queued for that instant;
* one to air now waits until its online units have verified the audio (at most
  ``ready_wait_s``), so a slow 4G link does not make a unit start late;
* a unit that verifies while its broadcast sounds joins it in step (its ``play`` names the zone's
  start instant and offset); one that verifies after the end gets a catch-up, arbitrated on its
  zones like anything else (units of the same zones share one);
* a command that could not go out (broker down) goes again once the link is back, while its item
  holds its zones; delivery's reconcile (controller/airing/reconcile.py) asks a unit again through
  :meth:`AirControl.ask_play` / :meth:`AirControl.ask_stop`; a restarted controller takes back a
  broadcast that was sounding with :meth:`AirControl.rejoin`.

A unit's refusal of a ``play`` (audio still incomplete, say) goes to :meth:`AirControl.on_refused`
listeners (delivery shows why); the bus routes the unit's reply here by its correlation id.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from controller.airing.margin import StartMargin, reach_ms
from controller.airing.turns import (
    COMMAND_TTL_MS,
    LIVE_HOLD_MS,
    AirItem,
    Answer,
    LiveHold,
    Pending,
    Refusal,
    Standing,
    Turn,
    tell_live,
)
from controller.airing.zone_claims import LocalZones, ZoneGate
from controller.airing.zone_guard import ZoneGuard
from controller.core.background import Periodic
from controller.core.listeners import notify_all
from devices import protocol as p
from devices.link import UnitBus
from scheduler.arbiter import Ended, Item, Preempted, PreemptPolicy, Start, ZoneArbiter

logger = logging.getLogger(__name__)


class AirControl:
    def __init__(self, link: UnitBus, zones_of: Callable[[str], list[str]], *,
                 policy: PreemptPolicy = PreemptPolicy.DROP, margin_ms: int = 1500,
                 margin_floor_ms: int = 250, ready_wait_s: float = 10.0,
                 emergency_ready_wait_s: float | None = None, tick_s: float = 0.1,
                 gate: ZoneGate | None = None) -> None:
        self.link = link
        self.zones_of = zones_of
        #: the start margin from the measured play round trips, at most ``margin_ms``
        self.margin = StartMargin(floor_ms=margin_floor_ms, cap_ms=margin_ms)
        self.arbiter = ZoneArbiter(policy=policy, margin_ms=self.margin.current_ms())
        self.ready_wait_s = ready_wait_s
        self.emergency_wait_s = ready_wait_s if emergency_ready_wait_s is None else emergency_ready_wait_s
        self.tick_s = tick_s
        self._items: dict[str, AirItem] = {}
        self._pending: dict[str, Pending] = {}
        self._requeued: set[str] = set()  # broadcasts pre-empted and waiting to restart/resume
        self._resumed: set[str] = set()  # broadcasts pre-empted that restarted/resumed since
        self._started: set[str] = set()  # broadcasts whose main item has started
        self._refusal_listeners: list[Refusal] = []
        self._answer_listeners: list[Answer] = []
        self._unsent: list[tuple[str, str, dict[str, object], list[str]]] = []  # item, name, args, scopes
        link.on_connect(self._resend_unsent)
        self._ticker = Periodic("air-control", tick_s, self._tick)
        #: live sessions and relays held in the arbiter: item id → its callbacks
        self.live: dict[str, LiveHold] = {}
        #: the zones cluster-wide (controller/airing/zone_claims.py): a start takes them first
        self.guard = ZoneGuard(gate or LocalZones(), self.arbiter, apply=self._apply,
                               bc_of=lambda i: it.bc if (it := self._items.get(i)) is not None else None)

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
        """A unit's ``failed``/``preempted`` of the broadcast is not its end: it was pre-empted and
        waits to restart or resume (policy restart / resume), or has done so already (a report
        that arrives after the restart)."""
        return bc in self._requeued or bc in self._resumed

    def waiting_to_resume(self, bc: str) -> bool:
        """The broadcast was pre-empted and waits to restart or resume (policy restart / resume)."""
        return bc in self._requeued

    def on_refused(self, fn: Refusal) -> None:
        """Call ``fn(broadcast_id, node_id, why)`` when a unit refuses to start a broadcast."""
        self._refusal_listeners.append(fn)

    def on_answer(self, fn: Answer) -> None:
        """Call ``fn(broadcast_id, node_id, name, reply)`` for every unit's reply to a play or stop."""
        self._answer_listeners.append(fn)

    def started(self, bc: str) -> bool:
        """The broadcast's main item has started (it may have ended since)."""
        return bc in self._started

    def standing(self, bc: str) -> tuple[Standing, dict[str, Standing]]:
        """Where the broadcast's main item stands, and each unit's catch-up item by unit id."""
        own: dict[str, Standing] = {}
        for item_id, item in self._items.items():
            if item.bc == bc and item_id != bc:
                own.update(dict.fromkeys(item.nodes, self._standing(item_id)))
        return self._standing(bc), own

    def _item_of(self, bc: str, node_id: str) -> str:
        """The id of ``node_id``'s latest catch-up item of ``bc``, else the broadcast's own."""
        found = bc
        for item_id, item in self._items.items():
            if item.bc == bc and item_id != bc and node_id in item.nodes:
                found = item_id
        return found

    def _standing(self, item_id: str) -> Standing:
        item = self._items.get(item_id)
        if item is None:
            return Standing(None, None, None)
        return Standing(item.turn if item_id in self.arbiter.running else None, item.turn, item.dropped_at,
                        item.stopped_at)

    # ------------------------------------------------------------------ inputs

    def offer(self, bc: str, *, priority: p.Priority, duration_ms: int, scopes: list[p.AudioScope],
              nodes: list[str], play_at: int | None, ready: Callable[[], bool]) -> None:
        """A broadcast's audio is out; air it at ``play_at`` or as soon as its units are ready."""
        if bc in self._items or bc in self._pending:
            return
        loop = asyncio.get_running_loop()
        # an emergency waits for no straggler: the tone sounds at once, late units join in step
        wait = self.emergency_wait_s if priority == p.Priority.EMERGENCY else self.ready_wait_s
        self._pending[bc] = Pending(bc, priority, duration_ms, scopes, nodes, play_at,
                                   loop.time() + wait, ready)
        self._check_pending()

    def unit_ready(self, bc: str, node_id: str, *, priority: p.Priority, duration_ms: int) -> None:
        """A unit verified the audio: maybe the broadcast can start, or the unit needs a catch-up."""
        if bc in self._pending:
            self._check_pending()
            return
        if bc in self._started and bc not in self._requeued:
            self.ask_play(bc, node_id, priority=priority, duration_ms=duration_ms, catch_up=True)

    def ask_play(self, bc: str, node_id: str, *, priority: p.Priority, duration_ms: int,
                 catch_up: bool) -> None:
        """Tell one unit (again) to play ``bc``: in step with its zone while the broadcast sounds
        (the zone's ``at`` and ``offset_ms``: the unit joins mid-way); after it ended, a catch-up
        item of its own if ``catch_up`` (from the start, when its zones are free), else the last
        start again (a unit that plays or played it answers with its state, starting nothing)."""
        scope, item_id = p.AudioScope(kind="node", id=node_id), self._item_of(bc, node_id)
        st = self._standing(item_id)
        turn = st.turn or (None if catch_up else st.last)
        if turn is not None:
            self._send_play(AirItem(bc, [scope], [node_id]), turn)
        elif item_id == bc or item_id not in self.arbiter.waiting:  # (else its catch-up waits)
            self._catch_up(bc, scope, priority, duration_ms)

    def _catch_up(self, bc: str, scope: p.AudioScope, priority: p.Priority, duration_ms: int) -> None:
        """A turn from the start for a unit that missed its broadcast's: with the catch-up of that
        broadcast still waiting for the same zones (one turn for all), else one of its own."""
        zones = self.zones([scope.id])
        for item_id, item in self._items.items():
            waiting = self.arbiter.waiting.get(item_id)
            if item.bc == bc and item_id != bc and waiting is not None and zones <= waiting.zones:
                item.nodes.append(scope.id)
                item.scopes.append(scope)
                return
        self._submit(f"{bc}@{scope.id}", AirItem(bc, [scope], [scope.id]), priority, duration_ms, None)

    def rejoin(self, bc: str, *, at_ms: int, priority: p.Priority, duration_ms: int,
               scopes: list[p.AudioScope], nodes: list[str]) -> bool:
        """After a controller restart: ``bc`` was sounding since ``at_ms``; its units that have not
        started it get a play naming that instant (they join in step). False if its turn is over or
        its zones are taken (then it is offered as usual)."""
        turn = Turn(at_ms, 0, at_ms + duration_ms)
        item = AirItem(bc, scopes, nodes, started=True, turn=turn)
        if at_ms + duration_ms <= p.now_ms() or not self.arbiter.adopt(
                Item(bc, self.zones(nodes), priority, max(1, duration_ms)), at_ms):
            return False
        self._items[bc] = item
        self._started.add(bc)
        self.guard.adopted(bc, bc, self.zones(nodes), priority)
        if priority == p.Priority.EMERGENCY or not self.emergency_on(nodes):  # else it is pre-empted
            self._send_play(item, turn, bc)  # at once: its waiting units are not told to play it first
        return True

    def ask_play_all(self, bc: str) -> bool:
        """The broadcast's play again to all its scopes, in step (many of its units missed it: the
        broker was down, say); False if it does not hold its zones now."""
        item, st = self._items.get(bc), self._standing(bc)
        if item is not None and st.turn is not None:
            self._send_play(item, st.turn)
        return st.turn is not None

    def ask_stop(self, bc: str, node_id: str) -> None:
        """Tell one unit (again) to stop ``bc``, pre-empted by an emergency."""
        item = AirItem(bc, [p.AudioScope(kind="node", id=node_id)], [node_id])
        self._command(item, "stop", {"bc": bc, "reason": "preempted"}, p.now_ms() + COMMAND_TTL_MS)

    def finished(self, bc: str) -> None:
        """Every unit of the broadcast is final: free its zones."""
        self._pending.pop(bc, None)
        self._requeued.discard(bc)
        self._resumed.discard(bc)
        self._started.discard(bc)
        now = p.now_ms()
        for item_id in [i for i, it in self._items.items() if it.bc == bc]:
            self._apply(self.arbiter.done(item_id, now) if item_id in self.arbiter.running
                        else self.arbiter.cancel(item_id, now, "finished"))
            self._items.pop(item_id, None)

    cancel = finished

    def forget(self, bc: str) -> None:
        """Another controller delivers ``bc`` now (or this one lost the database): drop it here and
        send nothing; its zones go back."""
        self._pending.pop(bc, None)
        for kept in (self._requeued, self._resumed, self._started):
            kept.discard(bc)
        gone = [i for i, it in self._items.items() if it.bc == bc]
        for item_id in gone:
            self.arbiter.forget(item_id)
            self._items.pop(item_id, None)
            self.guard.ended(item_id)
        self._unsent = [u for u in self._unsent if u[0] not in gone]

    def adopt_dropped(self, bc: str, *, scopes: list[p.AudioScope], nodes: list[str]) -> None:
        """After a restart: an emergency had dropped ``bc`` (a unit said ``failed``/``preempted``): held
        as dropped, no zones; reconcile stops its units (the stop may have been lost)."""
        self.forget(bc)
        now = p.now_ms()
        self._items[bc] = AirItem(bc, scopes, nodes, started=True, dropped_at=now, stopped_at=now)
        self._started.add(bc)

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
        """An emergency sounds or waits (for its start, or for its units) in a zone of ``nodes``."""
        zones = self.zones(nodes)
        items = (*self.arbiter.running.values(), *self.arbiter.waiting.values())
        return any(i.priority == p.Priority.EMERGENCY and i.zones & zones for i in items) or any(
            pend.priority == p.Priority.EMERGENCY and self.zones(pend.nodes) & zones
            for pend in self._pending.values())

    def drops_preempted(self) -> bool:
        """The pre-emption policy is drop (what an emergency stops is not aired again)."""
        return self.arbiter.policy is PreemptPolicy.DROP

    # ------------------------------------------------------------------ machinery

    def _tick(self) -> None:
        self._check_pending()
        self.arbiter.margin_ms = self.margin.current_ms()
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
        self.arbiter.margin_ms = self.margin.current_ms()
        self._apply(self.arbiter.submit(arb_item, p.now_ms()))

    def _apply(self, actions: list[Start | Preempted | Ended]) -> None:
        for a in actions:
            if not isinstance(a, Start):
                self.guard.ended(a.item_id)
            hooks = self.live.get(a.item_id)
            if hooks is not None:
                if not isinstance(a, Start) or self.guard.admit(a):  # a relay / live: zones cluster-wide too
                    self._apply_live(a, hooks)
            elif isinstance(a, Start):
                if self.guard.admit(a):  # (else once its zones are taken cluster-wide)
                    self._start(a)
            elif isinstance(a, Preempted):
                item = self._items.get(a.item_id)
                logger.warning("%s pre-empted by emergency %s after %.1f s (%s)", a.item_id, a.by,
                               a.played_ms / 1000, "will continue" if a.requeued else "dropped")
                if item is not None:
                    item.stopped_at = p.now_ms()  # a unit still playing it after the margin: stop again
                    if a.requeued:
                        self._requeued.add(item.bc)
                    else:
                        item.dropped_at = item.stopped_at
                    # units outside the emergency's zones must stop too: the zone is free now
                    self._command(item, "stop", {"bc": item.bc, "reason": "preempted"},
                                  p.now_ms() + COMMAND_TTL_MS, a.item_id)
            elif isinstance(a, Ended) and a.reason != "finished":
                self._items.pop(a.item_id, None)

    def _apply_live(self, a: Start | Preempted | Ended, hooks: LiveHold) -> None:
        if not isinstance(a, Start):
            self.live.pop(a.item_id, None)
        if tell_live(a, hooks):  # a live session is never resumed later: drop it whatever the policy
            self._apply(self.arbiter.cancel(a.item_id, p.now_ms(), "preempted"))

    def _start(self, a: Start) -> None:
        item = self._items.get(a.item_id)
        if item is None:
            return
        item.started = True
        item.dropped_at = item.stopped_at = None
        item.turn = Turn(a.at_ms, a.offset_ms, self.arbiter.running[a.item_id].end_ms or a.at_ms)
        self._started.add(item.bc)
        if item.bc in self._requeued:
            self._requeued.discard(item.bc)
            self._resumed.add(item.bc)
        self._send_play(item, item.turn, a.item_id)
        logger.info("%s starts at %d (+%d ms in) in %s", a.item_id, a.at_ms, a.offset_ms,
                    ", ".join(sorted(a.zones)))

    def _send_play(self, item: AirItem, turn: Turn, item_id: str = "") -> None:
        args: dict[str, object] = {"bc": item.bc, "at": turn.at_ms, "offset_ms": turn.offset_ms}
        self._command(item, "play", args, max(turn.at_ms, p.now_ms()) + COMMAND_TTL_MS, item_id)

    def _command(self, item: AirItem, name: str, args: dict[str, object], expires_at: int,
                 item_id: str = "") -> None:
        """Send one command to every scope of the item (group topics fan out in the broker); the
        scopes it could not reach get it again on reconnect if ``item_id`` still holds its zones."""
        bc, sent_at, sent_ms = item.bc, asyncio.get_running_loop().time(), p.now_ms()

        def reply(node_id: str, resp: p.CommandResponse) -> None:
            if name == "play":  # the fleet's latency: what the start margin is made of
                rtt = (asyncio.get_running_loop().time() - sent_at) * 1000
                self.margin.observe(reach_ms(args, resp, sent_ms, rtt))
            if name == "play" and resp.status != "ok":
                self._refused(bc, node_id, resp.error)
            notify_all(self._answer_listeners, bc, node_id, name, resp, what="answer listener")

        sent = self.link.command(item.scopes, name, args, expires_at=expires_at, on_reply=reply)
        if sent.unsent and item_id:
            self._unsent.append((item_id, name, args, list(sent.unsent)))

    def _resend_unsent(self) -> None:
        """The broker link is back: what could not go out goes now, while its item holds its zones
        (a play names its start instant: a unit past it joins in step, further into the audio)."""
        unsent, self._unsent = self._unsent, []
        for item_id, name, args, scope_ids in unsent:
            item = self._items.get(item_id)
            if item is None or (name == "play" and item_id not in self.arbiter.running):
                continue  # over (or ended during the outage): delivery's reconcile follows each unit
            scopes = [s for s in item.scopes if s.id in scope_ids]
            logger.info("%s command for %s sent again after the reconnect to %d scope(s)", name, item_id,
                        len(scopes))
            self._command(AirItem(item.bc, scopes, item.nodes), name, args, p.now_ms() + COMMAND_TTL_MS,
                          item_id)

    def _refused(self, bc: str, node_id: str, why: str) -> None:
        notify_all(self._refusal_listeners, bc, node_id, why, what="refusal listener")

