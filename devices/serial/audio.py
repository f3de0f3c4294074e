"""Broadcast downloads of a serial gateway (docs/protocol.md §3, on behalf of its children).

The children are relay boards: they cannot store audio, so the gateway downloads each
broadcast once, whichever scopes it arrives on (a group several children belong to, or a
child's own node topic), and keeps the set of children it targets. Acks go out per
child: ``receiving`` when a child joins, ``verified`` for every target when the file is
complete and its SHA-256 matches, then the line player (:mod:`devices.serial.line`)
acks ``playing``/``played``. Missing chunks are asked for on one target child's repair
topic (the controller republishes them on that child's node topic, which the gateway
subscribes to), by the repair rule of a node (:class:`devices.protocol.RepairPlan`). A
manifest already finished for a child gets its final ack again, never a second playback.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from devices import protocol as p
from devices.serial.contract import Child
from devices.serial.io import GatewayIO
from devices.serial.line import LinePlayer

logger = logging.getLogger(__name__)

Alert = Callable[[p.Manifest, list[Child]], dict[str, str]]
"""``fn(manifest, children)``: sound an emergency's attention tone; what it did, by node id."""


@dataclass
class _Download:
    manifest: p.Manifest
    reasm: p.Reassembler
    targets: set[str]
    plan: p.RepairPlan
    retried_all: bool = False
    timer: asyncio.TimerHandle | None = None


class Downloads:
    """The broadcasts the gateway is downloading for its children, keyed by broadcast id."""

    def __init__(self, io: GatewayIO, line: LinePlayer, alert: Alert = lambda m, children: {}) -> None:
        self._io = io
        self._line = line
        self._alert = alert  # an emergency's attention tone (devices/serial/attention.py)
        self.active: dict[str, _Download] = {}
        self.chunks_bad = 0
        self.repairs_sent = 0

    def storage_bytes(self) -> int:
        return sum(d.manifest.audio.size for d in self.active.values()) + self._line.used_bytes()

    def clear(self) -> None:
        for d in self.active.values():
            if d.timer is not None:
                d.timer.cancel()
        self.active.clear()

    def expire(self, clock_ms: int) -> None:
        for bc in [b for b, d in self.active.items() if d.manifest.expires_at < clock_ms]:
            self._fail(bc, "expired")

    def progress(self, child: Child, bc: str) -> tuple[int, int] | None:
        """(chunks held, chunks total) of a download ``child`` is a target of, else None."""
        d = self.active.get(bc)
        if d is None or child.node_id not in d.targets:
            return None
        return d.reasm.have, d.manifest.audio.chunks

    def cancel(self, child: Child, bc: str) -> bool:
        d = self.active.get(bc)
        if d is None or child.node_id not in d.targets:
            return False
        d.targets.discard(child.node_id)
        self._io.ack(child, bc, p.AckState.FAILED, "cancelled")
        if not d.targets:
            self._drop(bc)
        return True

    # ------------------------------------------------------------------ incoming

    def on_manifest(self, targets: list[Child], topic: str, bc: str, payload: bytes) -> None:
        io, line = self._io, self._line
        if not payload:  # withdrawn: drop a partial download (a verified file stays playable)
            if self._drop(bc):
                logger.info("%s: manifest of %s withdrawn; partial download dropped", io.gateway_id, bc)
            return
        try:
            m = p.decode(p.Manifest, payload)
        except p.PayloadError as exc:
            io.bad(topic, exc)
            return
        if m.bc != bc:
            io.bad(topic, "manifest bc differs from its topic")
            return
        d = self.active.get(bc)
        tones = self._alert(m, targets)  # an emergency: its tone sounds now, before any chunk
        for child in targets:
            tone = tones.get(child.node_id, "")
            if bc in child.finished:  # never play twice: re-send the final ack
                state, reason = child.finished[bc]
                io.ack(child, bc, state, reason)
            elif (held := line.state_of(bc, child)) is not None:
                io.ack(child, bc, held, attention=tone)
            elif d is not None:
                d.targets.add(child.node_id)
                io.ack(child, bc, p.AckState.RECEIVING, have=d.reasm.have, attention=tone)
            elif line.join(bc, child, tone):
                pass  # verified already (arrived on another scope): joined the queued broadcast
            elif m.expires_at < io.clock_ms():
                io.ack(child, bc, p.AckState.FAILED, "expired")
            elif m.audio.size > io.config.storage_kb * 1024 - self.storage_bytes():
                io.ack(child, bc, p.AckState.FAILED, "storage_full", attention=tone)
            else:
                d = self._begin(m, child)
                io.ack(child, bc, p.AckState.RECEIVING, have=0, attention=tone)

    def _begin(self, m: p.Manifest, child: Child) -> _Download:
        idle = self._io.config.repair_idle_s
        plan = p.RepairPlan(m.audio.chunks, idle, time.monotonic())
        d = _Download(m, p.Reassembler(m.audio), {child.node_id}, plan)
        self.active[m.bc] = d
        d.timer = self._io.later(idle, self._repair_due, m.bc)
        logger.debug("%s: receiving %s (%d chunks)", self._io.gateway_id, m.bc, m.audio.chunks)
        return d

    def on_chunk(self, bc: str, payload: bytes) -> None:
        d = self.active.get(bc)
        if d is None:
            return
        try:
            chunk = p.parse_chunk(payload)
        except p.ChunkError as exc:
            self.chunks_bad += 1
            logger.info("%s: bad chunk for %s: %s", self._io.gateway_id, bc, exc)
            return
        before = d.reasm.have
        if not d.reasm.add(chunk):
            self.chunks_bad += 1
            return
        if d.reasm.have == before:
            return  # duplicate
        now = time.monotonic()
        d.plan.received(chunk.index, now)
        if d.reasm.complete():
            self._complete(bc, d)
        elif d.plan.due(now):  # the last chunk came, or the last repair was answered: ask at once
            self._send_repair(bc, d)

    # ------------------------------------------------------------------ outcome

    def _targets(self, d: _Download) -> list[Child]:
        found = (self._io.child(n) for n in sorted(d.targets))
        return [c for c in found if c is not None]

    def _complete(self, bc: str, d: _Download) -> None:
        try:
            audio = d.reasm.assemble()
        except p.ChunkError:
            if not d.retried_all:  # discard and ask for every chunk again, once
                d.retried_all = True
                logger.warning("%s: sha256 mismatch for %s; requesting all chunks", self._io.gateway_id, bc)
                d.plan.restart(time.monotonic())
                self._send_repair(bc, d)
                return
            self._fail(bc, "checksum")
            return
        self._drop(bc)
        targets = self._targets(d)
        for child in targets:
            self._io.ack(child, bc, p.AckState.VERIFIED)
        self._line.enqueue(d.manifest, audio, targets)

    def _drop(self, bc: str) -> bool:
        d = self.active.pop(bc, None)
        if d is not None and d.timer is not None:
            d.timer.cancel()
        return d is not None

    def _fail(self, bc: str, reason: str) -> None:
        d = self.active.get(bc)
        if d is None:
            return
        self._drop(bc)
        for child in self._targets(d):
            self._io.ack(child, bc, p.AckState.FAILED, reason)

    # ------------------------------------------------------------------ repair

    def reconnected(self) -> None:
        """The link is up again: each download's repair count starts again (RepairPlan.reconnected)."""
        now = time.monotonic()
        for bc, d in self.active.items():
            d.plan.reconnected(now)
            if d.timer is not None:
                d.timer.cancel()
            d.timer = self._io.later(max(0.01, d.plan.next_due - now), self._repair_due, bc)

    def _send_repair(self, bc: str, d: _Download) -> None:
        io, now = self._io, time.monotonic()
        missing = d.plan.batch(d.reasm.missing(), now)
        targets = self._targets(d)
        if missing and targets:
            who = targets[0].node_id
            req = p.RepairRequest(ts=io.clock_ms(), node_id=who, bc=bc, missing=missing)
            if not io.publish(io.topics.repair(who), p.encode(req), qos=1):
                d.plan.unsent(now)  # disconnected: no backoff step
                return
            self.repairs_sent += 1
            logger.debug("%s: repair %s for %s: %d chunks", io.gateway_id, bc, who, len(missing))
        d.plan.sent(missing if targets else [], now)

    def _repair_due(self, bc: str) -> None:
        d = self.active.get(bc)
        if d is None:
            return
        if d.manifest.expires_at < self._io.clock_ms():
            self._fail(bc, "expired")
            return
        now = time.monotonic()
        if d.plan.due(now):
            self._send_repair(bc, d)
        d.timer = self._io.later(max(0.01, d.plan.next_due - now), self._repair_due, bc)
