"""Broadcast delivery: publish audio once per scope, follow every node to a final state.

State machine per (broadcast, node): docs/protocol.md §4. In memory: the active broadcasts (chunks,
scopes, per-node state); every transition is written (batched) with its time; after a restart or a
takeover they are rebuilt from the database (controller/airing/active.py). Publishing is
:class:`controller.airing.audio_out.AudioOut`'s job; this module follows what the units report
(acks, repairs, refusals, presence) and finishes, cancels and expires broadcasts.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from sqlmodel import Session

from controller.airing.active import (
    ACK_TO_STATE,
    ATTENTION,
    ActiveBroadcast,
    NodeDelivery,
    began_at,
    load_on_the_way,
)
from controller.airing.aircontrol import AirControl
from controller.airing.audio_out import AudioOut
from controller.airing.claim import claim_to_air
from controller.airing.custody import Custody
from controller.airing.delivery_rows import DeliveryChange, apply_changes, cancel_queued, mark_sent
from controller.airing.late import plays_later
from controller.airing.models import Broadcast, BroadcastStatus, DeliveryState
from controller.airing.ownership import ON_THE_WAY, Ownership
from controller.airing.reconcile import Reconciler
from controller.airing.repairs import RepairDesk
from controller.airing.settings import DeliverySettings
from controller.airing.summary import ENDED_BY_OPERATOR
from controller.airing.takeover import PREEMPTED, reported_preempted, take_back
from controller.core.audiostore import AudioStore
from controller.core.background import Periodic
from controller.core.db import Database
from controller.core.writer import DbWriter
from controller.fleet.presence import Presence
from devices import protocol as p
from devices.link import UnitBus
from devices.mqtt import MqttError

logger = logging.getLogger(__name__)

S = DeliveryState


class DeliveryService:
    def __init__(self, db: Database, writer: DbWriter, link: UnitBus, presence: Presence,
                 settings: DeliverySettings, audio: AudioStore, air: AirControl, owner: Ownership, *,
                 on_broker_lost: Callable[[], object] | None = None) -> None:
        self.aircontrol = air
        self.owner = owner  # one controller delivers each broadcast (controller/airing/ownership.py)
        self.db = db
        self.writer = writer
        self.out = AudioOut(link)
        self.repairs = RepairDesk(self.out, presence.groups_of)  # one re-send of a chunk per scope
        self.presence = presence
        self.settings = settings
        self.audio = audio
        self.active: dict[str, ActiveBroadcast] = {}
        self.ignored_acks = 0
        self._sweeper = Periodic("delivery-sweep", settings.sweep_s, self.sweep)
        self._publishing: set[int] = set()  # the objects being published (by id(): see abandon)
        self._bg: set[asyncio.Task[None]] = set()
        self._listeners: list[Callable[[str], None]] = []
        link.on("ack", self._on_ack)
        link.on("repair", self._on_repair)
        link.on_connect(self._on_link_connected)
        presence.add_listener(self._on_presence)
        air.on_refused(self._on_refused)
        self.reconcile = Reconciler(air, self.out, presence.is_online, self.active.get, self._transition,
                                    settings)  # asks a unit again when its reports disagree
        self.custody = Custody(owner, self.active.keys, adopt=self.adopt, abandon=self.abandon,
                               renew_s=settings.owner_renew_s, on_broker_lost=on_broker_lost)  # (the orphans)

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        await self.custody.start()  # ours back (a restart), and any broadcast whose owner is gone
        self._sweeper.start()

    async def stop(self) -> None:
        await self._sweeper.stop()
        await self.custody.stop(release=True)

    def owns(self, broadcast_id: str) -> bool:
        """This controller delivers the broadcast now (it holds its owner row)."""
        return broadcast_id in self.active and self.owner.valid()

    def active_count(self) -> int:
        """Broadcasts still on their way to their units."""
        return len(self.active)

    def add_listener(self, fn: Callable[[str], None]) -> None:
        """``fn(broadcast_id)`` on every change of its deliveries or of its unfinished units' presence."""
        self._listeners.append(fn)

    async def adopt(self, broadcast_id: str) -> bool:
        """A broadcast just taken (ours after a restart, or a dead owner's): rebuilt, delivered on."""
        def load() -> ActiveBroadcast | None:
            with self.db.session() as s:
                return load_on_the_way(s, broadcast_id, self.audio, self.settings.chunk_size)
        await self.writer.flush()  # what this controller wrote of it before is read back
        try:
            active = await asyncio.to_thread(load)
        except (OSError, ValueError) as exc:
            logger.error("cannot restore broadcast %s: %s", broadcast_id, exc)
            return False
        if active is None or broadcast_id in self.active:
            return active is not None
        self.active[broadcast_id] = active
        active.restored = True  # (controller/airing/takeover.py)
        logger.info("delivering broadcast %s on from where it stands (%d units)", broadcast_id,
                    len(active.nodes))
        if self.out.connected:
            self._resume(active)
        return True

    def abandon(self, broadcast_id: str, why: str) -> None:
        """We no longer own the broadcast (taken over, or the database lost): forget it, send nothing."""
        if (active := self.active.pop(broadcast_id, None)) is not None:
            active.gone = True  # its publish stops at the next window; adopted again, a new object
            self.repairs.forget(broadcast_id)
            self.aircontrol.forget(broadcast_id)
            self._changed(broadcast_id)

    # ------------------------------------------------------------------ airing

    async def air(self, broadcast_id: str) -> None:
        """Publish a scheduled broadcast now. Safe to call twice."""
        if broadcast_id in self.active:
            return

        def claim() -> ActiveBroadcast | None:
            with self.db.session() as s:  # the row claimed (compare-and-set) with its owner row
                return claim_to_air(s, broadcast_id, self.owner, self.audio, self.settings.chunk_size)

        # in a worker thread: its queries, the audio read and chunked, 1,000 delivery states loaded
        # (~15 ms at 1,000 units) would hold every MQTT message behind them on the event loop
        active = await asyncio.to_thread(claim)
        if active is None or broadcast_id in self.active:  # (adopted meanwhile: custody.py)
            return
        self.active[broadcast_id] = active
        await self._publish(active)

    async def _publish(self, active: ActiveBroadcast) -> None:
        if active.gone or id(active) in self._publishing or not self.out.connected:
            if not self.out.connected:
                logger.warning("broadcast %s waits for the MQTT broker", active.id)
            return
        self._publishing.add(id(active))
        if active.manifest.priority == p.Priority.EMERGENCY:
            # its wait for the units counts from now, not from the broker's last acknowledgement
            self._offer(active, active.scopes)
        try:
            await self.out.publish(active)
        except MqttError as exc:
            logger.warning("broadcast %s: publishing interrupted (%s); resumes on reconnect", active.id, exc)
            return
        finally:
            self._publishing.discard(id(active))
        if active.gone:  # given up while it was being published: its new owner goes on
            return
        active.published, active.published_at = True, time.monotonic()
        sent_at = p.now_ms()
        for node_id, nd in active.nodes.items():
            if nd.state in (S.QUEUED, S.OFFLINE):
                online = self.presence.is_online(node_id)
                nd.rejoined = nd.rejoined or not online
                self._transition(active, node_id, nd, S.SENT if online else S.OFFLINE,
                                 "" if online else "node offline at send time")
        self.writer.submit(mark_sent(active.id, sent_at))
        logger.info("broadcast %s published to %d scope(s) for %d node(s), %d chunks",
                    active.id, len(active.scopes), len(active.nodes), len(active.frames))
        self._offer(active, active.scopes)
        self._maybe_finish(active)

    def _offer(self, active: ActiveBroadcast, scopes: list[p.AudioScope]) -> None:
        """Hand the broadcast to air control: it decides when the units start."""
        waiting = list(active.nodes.items())  # asked at every verified ack: O(units) in all, not each

        def ready() -> bool:
            while waiting and (waiting[-1][1].state.rank >= S.VERIFIED.rank
                               or not self.presence.is_online(waiting[-1][0])):
                waiting.pop()
            return not waiting

        nodes = [n for n, nd in active.nodes.items() if not nd.state.final]
        self.aircontrol.offer(active.id, priority=active.manifest.priority,
                              duration_ms=active.duration_ms, scopes=scopes, nodes=nodes,
                              play_at=active.manifest.play_at, ready=ready)

    async def _on_link_connected(self) -> None:
        """After a (re)connect: republish retained manifests; finish interrupted sends; what units
        said while the link was down may be lost, so their repairs are not held and re-offers restart."""
        # emergencies first: one restored after a restart takes its zones back before what it pre-empted
        for active in sorted(self.active.values(), key=lambda a: p.play_rank(a.manifest.priority)):
            if active.published:
                active.rejoin_unfinished()
            self._resume(active)

    def _resume(self, active: ActiveBroadcast) -> None:
        """Go on with a broadcast restored or reconnected: finish, publish, or give units their turn."""
        if active.published and active.done():  # every unit final before a restart: done now
            self._maybe_finish(active)
            return
        if not active.published:
            if active.manifest.priority == p.Priority.EMERGENCY:  # known to air control before
                self._offer(active, active.scopes)  # what it pre-empts is taken back below
            task = asyncio.create_task(self._publish(active))
            self._bg.add(task)
            task.add_done_callback(self._bg.discard)
            return
        self.out.republish_manifests(active)
        if not self.aircontrol.airing(active.id):  # restored after a restart, or taken over
            take_back(active, self.aircontrol, self._offer)

    # ------------------------------------------------------------------ node reports

    def _on_ack(self, node_id: str, ack: p.Ack) -> None:
        active = self.active.get(ack.bc)
        nd = active.nodes.get(node_id) if active else None
        if active is None or nd is None or not self.owner.valid():  # (another controller's broadcast)
            self.ignored_acks += 1
            return
        new = ACK_TO_STATE[ack.state]
        if nd.state.final or (new != S.FAILED and new.rank <= nd.state.rank):
            if new == nd.state == S.VERIFIED:
                self.reconcile.nudge(nd)  # verified again (it reconnected): asked at the next sweep
            return  # duplicate, reordered, or re-sent after a final state
        if nd.state.rank < S.SENT.rank:
            self._transition(active, node_id, nd, S.SENT, "")  # acked before our send completed
        if new == S.FAILED and (later := plays_later(active, nd, ack.reason, self.aircontrol)):
            self._transition(active, node_id, nd, S.VERIFIED, later)  # it plays it later (late.py)
            self.reconcile.nudge(nd)  # too late: its catch-up is asked for at the next sweep
            return
        if (began := began_at(ack, p.now_ms())) is not None and nd.state.rank < S.PLAYING.rank < new.rank:
            self._transition(active, node_id, nd, S.PLAYING, "", began)  # its start, learnt only now
        # an emergency's first ack says what the unit's local attention tone did
        self._transition(active, node_id, nd, new, (ack.reason or ATTENTION.get(ack.attention, ""))[:200],
                         began if new == S.PLAYING else None)
        if new == S.FAILED and ack.reason == PREEMPTED:
            reported_preempted(active, node_id, self.aircontrol)  # dropped before a restart?
        if new == S.VERIFIED:
            self.aircontrol.unit_ready(active.id, node_id, priority=active.manifest.priority,
                                       duration_ms=active.duration_ms)
        self._maybe_finish(active)

    def _on_refused(self, bc: str, node_id: str, why: str) -> None:
        """A unit refused to start ``bc`` (e.g. audio still incomplete; told by air control): say why."""
        active = self.active.get(bc)
        nd = active.nodes.get(node_id) if active else None
        if active is not None and nd is not None and not nd.state.final:
            self._transition(active, node_id, nd, nd.state, f"at air time: {why}"[:200])

    def _on_repair(self, node_id: str, req: p.RepairRequest) -> None:
        active = self.active.get(req.bc)
        nd = active.nodes.get(node_id) if active else None
        if active is None or nd is None or nd.state.final or not active.published:
            self.ignored_acks += 1
            return
        # the repair is coalesced, sent in 50 ms
        if self.repairs.request(active, node_id, nd, req.missing) and nd.state.rank < S.RECEIVING.rank:
            self._transition(active, node_id, nd, S.RECEIVING, "repairing")

    def _on_presence(self, node_id: str, online: bool) -> None:
        for active in self.active.values():
            if (nd := active.nodes.get(node_id)) is None or nd.state.final:
                continue
            nd.rejoined = True
            if online and nd.state == S.OFFLINE and active.published:
                self._transition(active, node_id, nd, S.SENT, "node back online")
            elif online and nd.state in (S.SENT, S.RECEIVING) and active.published:
                nd.resends = 0  # it reconnected (a new birth): the manifest again, its re-offers anew
                self._reoffer(active, node_id, nd)
            else:
                self._changed(active.id)  # what staff see reads presence (a unit waited for, or back)
            nd.changed = time.monotonic()

    # ------------------------------------------------------------------ transitions

    def _transition(self, active: ActiveBroadcast, node_id: str, nd: NodeDelivery,
                    state: DeliveryState, reason: str = "", at: int | None = None) -> None:  # at: if not now
        nd.state, nd.reason, nd.changed = state, reason, time.monotonic()
        # one row of a bulk write: the batch's changes go in one UPDATE and one INSERT
        self.writer.submit_row(apply_changes, DeliveryChange(nd.delivery_id, state.value, reason,
                                                             p.now_ms() if at is None else at))
        self._changed(active.id)

    def _changed(self, broadcast_id: str) -> None:
        for fn in self._listeners:
            try:
                fn(broadcast_id)
            except Exception:
                logger.exception("delivery listener failed")

    def _maybe_finish(self, active: ActiveBroadcast, *, expired: bool = False) -> None:
        if not active.done():
            return
        self.active.pop(active.id, None)
        self.custody.finishing(active.id)  # not taken back as an orphan before its end is written
        self.aircontrol.finished(active.id)
        status = BroadcastStatus.EXPIRED if expired else BroadcastStatus.DONE
        self.out.withdraw(active)
        tally: dict[str, int] = {}
        for nd in active.nodes.values():
            tally[nd.state.value] = tally.get(nd.state.value, 0) + 1
        at, bid = p.now_ms(), active.id

        def op(s: Session) -> None:
            bc = s.get(Broadcast, bid)
            if bc is not None and bc.status in ON_THE_WAY:
                bc.status, bc.finished_at = status.value, at
                s.add(bc)
            self.owner.release_in(s, bid)

        self.writer.submit(op)
        logger.info("broadcast %s %s: %s", active.id, status.value, tally)

    def cancel(self, broadcast_id: str, reason: str = "cancelled by staff") -> bool:
        active = self.active.get(broadcast_id)
        if active is None:
            return False
        for node_id, nd in active.nodes.items():
            if not nd.state.final:
                self._transition(active, node_id, nd, S.CANCELLED, reason)
        self.reconcile.cancel(active)  # sent until each unit answers
        self._maybe_finish(active)

        def op(s: Session) -> None:
            bc = s.get(Broadcast, broadcast_id)
            if bc is not None:
                bc.status, bc.reason = BroadcastStatus.CANCELLED.value, reason
                s.add(bc)

        self.writer.submit(op)
        return True

    def end_waiting(self, broadcast_id: str, reason: str = ENDED_BY_OPERATOR) -> list[str] | None:
        """Stop waiting for the units offline now: each unfinished delivery of such a unit ends
        ``cancelled``/``reason`` (nothing more is sent to it; its retained manifest goes with the
        broadcast's); done at once if no online unit is still on its way. The units ended, or None."""
        active = self.active.get(broadcast_id)
        if active is None:
            return None
        ended = sorted(n for n, nd in active.nodes.items()
                       if not nd.state.final and not self.presence.is_online(n))
        for node_id in ended:
            self._transition(active, node_id, active.nodes[node_id], S.CANCELLED, reason)
        self._maybe_finish(active)
        return ended

    def forget_node(self, node_id: str, reason: str = "unit retired") -> None:
        """A retired unit: its unfinished deliveries end now (cancelled) instead of at expiry,
        on air or still waiting for their air time."""
        for active in list(self.active.values()):
            nd = active.nodes.get(node_id)
            if nd is not None and not nd.state.final:
                self._transition(active, node_id, nd, S.CANCELLED, reason)
                self._maybe_finish(active)
        self.writer.submit(cancel_queued(node_id, set(self.active), reason))  # the ones not on air yet

    # ------------------------------------------------------------------ timeouts

    def sweep(self) -> None:
        now_ms, now = p.now_ms(), time.monotonic()
        for active in list(self.active.values()):
            if now_ms >= active.expires_at:
                for node_id, nd in active.nodes.items():
                    if not nd.state.final:
                        self._transition(active, node_id, nd, S.EXPIRED, self.reconcile.expiry_reason(nd))
                self._maybe_finish(active, expired=True)
                continue
            if not active.published or not self.out.connected:
                continue
            for node_id, nd in active.nodes.items():
                if (nd.state in (S.SENT, S.RECEIVING) and nd.resends < self.settings.max_resends
                        and now - nd.changed > self.settings.resend_after_s
                        and self.presence.is_online(node_id)):
                    self._reoffer(active, node_id, nd)
            if self.reconcile.check(active):  # units asked again; some may be final now
                self._maybe_finish(active)
        self.reconcile.sweep_cancels()

    def _reoffer(self, active: ActiveBroadcast, node_id: str, nd: NodeDelivery) -> None:
        """Send the manifest to one silent node; it answers with its state or a repair request."""
        nd.resends += 1
        nd.changed = time.monotonic()
        if not self.out.reoffer(active, node_id):
            return
        logger.info("re-offered %s to silent node %s (%d/%d)", active.id, node_id, nd.resends,
                    self.settings.max_resends)
