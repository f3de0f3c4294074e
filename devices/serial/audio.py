"""Broadcast downloads of a serial gateway (docs/protocol.md §3, on behalf of its children).

The children are relay boards: they cannot store audio, so the gateway downloads each
broadcast once, whichever scopes it arrives on (a group several children belong to, or a
child's own node topic), and keeps the set of children it targets. Acks go out per
child: ``receiving`` when a child joins, ``verified`` for every target when the file is
complete and its SHA-256 matches, then the line player (:mod:`devices.serial.line`)
acks ``playing``/``played``. Missing chunks are asked for on one target child's repair
topic (the controller republishes them on that child's node topic, which the gateway
subscribes to), with the idle timer and backoff of a node. A manifest already finished
for a child gets its final ack again, never a second playback.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from devices import protocol as p
from devices.serial.contract import Child

if TYPE_CHECKING:
    import asyncio

    from devices.serial.gateway import SerialGateway

logger = logging.getLogger(__name__)

REPAIR_MAX_WAIT_S = 30.0


@dataclass
class _Download:
    manifest: p.Manifest
    reasm: p.Reassembler
    targets: set[str]
    wait: float
    requested: set[int] = field(default_factory=set)
    retried_all: bool = False
    timer: asyncio.TimerHandle | None = None
    next_repair: float = 0.0


class Downloads:
    def __init__(self, gw: SerialGateway) -> None:
        self.gw = gw
        self.active: dict[str, _Download] = {}
        self.chunks_bad = 0
        self.repairs_sent = 0

    def storage_bytes(self) -> int:
        return sum(d.manifest.audio.size for d in self.active.values()) + self.gw.line.used_bytes()

    def clear(self) -> None:
        for d in self.active.values():
            if d.timer is not None:
                d.timer.cancel()
        self.active.clear()

    def expire(self, clock_ms: int) -> None:
        for bc in [b for b, d in self.active.items() if d.manifest.expires_at < clock_ms]:
            self._fail(bc, "expired")

    def cancel(self, child: Child, bc: str) -> bool:
        d = self.active.get(bc)
        if d is None or child.node_id not in d.targets:
            return False
        d.targets.discard(child.node_id)
        self.gw.ack(child, bc, p.AckState.FAILED, "cancelled")
        if not d.targets:
            self._drop(bc)
        return True

    # ------------------------------------------------------------------ incoming

    def on_manifest(self, targets: list[Child], topic: str, bc: str, payload: bytes) -> None:
        gw = self.gw
        if not payload:  # withdrawn: drop a partial download (a verified file stays playable)
            if self._drop(bc):
                logger.info("%s: manifest of %s withdrawn; partial download dropped", gw.gw, bc)
            return
        try:
            m = p.decode(p.Manifest, payload)
        except p.PayloadError as exc:
            gw.bad(topic, exc)
            return
        if m.bc != bc:
            gw.bad(topic, "manifest bc differs from its topic")
            return
        d = self.active.get(bc)
        for child in targets:
            if bc in child.finished:  # never play twice: re-send the final ack
                state, reason = child.finished[bc]
                gw.ack(child, bc, state, reason)
            elif (held := gw.line.state_of(bc, child)) is not None:
                gw.ack(child, bc, held)
            elif d is not None:
                d.targets.add(child.node_id)
                gw.ack(child, bc, p.AckState.RECEIVING, have=d.reasm.have)
            elif gw.line.join(bc, child):
                pass  # verified already (arrived on another scope): joined the queued broadcast
            elif m.expires_at < gw.clock_ms():
                gw.ack(child, bc, p.AckState.FAILED, "expired")
            elif m.audio.size > gw.cfg.storage_kb * 1024 - self.storage_bytes():
                gw.ack(child, bc, p.AckState.FAILED, "storage_full")
            else:
                d = self._begin(m, child)
                gw.ack(child, bc, p.AckState.RECEIVING, have=0)

    def _begin(self, m: p.Manifest, child: Child) -> _Download:
        idle = self.gw.cfg.repair_idle_s
        d = _Download(m, p.Reassembler(m.audio), {child.node_id}, wait=idle,
                      next_repair=time.monotonic() + idle)
        self.active[m.bc] = d
        d.timer = self.gw.later(idle, self._repair_due, m.bc)
        logger.debug("%s: receiving %s (%d chunks)", self.gw.gw, m.bc, m.audio.chunks)
        return d

    def on_chunk(self, bc: str, payload: bytes) -> None:
        d = self.active.get(bc)
        if d is None:
            return
        try:
            chunk = p.parse_chunk(payload)
        except p.ChunkError as exc:
            self.chunks_bad += 1
            logger.info("%s: bad chunk for %s: %s", self.gw.gw, bc, exc)
            return
        before = d.reasm.have
        if not d.reasm.add(chunk):
            self.chunks_bad += 1
            return
        if d.reasm.have == before:
            return  # duplicate
        d.wait = self.gw.cfg.repair_idle_s
        d.next_repair = time.monotonic() + d.wait
        if d.reasm.complete():
            self._complete(bc, d)
        elif d.requested:
            d.requested.discard(chunk.index)
            if not d.requested:  # the last repair was answered: ask for the rest at once
                self._send_repair(bc, d)

    # ------------------------------------------------------------------ outcome

    def _targets(self, d: _Download) -> list[Child]:
        return [self.gw.children[n] for n in sorted(d.targets) if n in self.gw.children]

    def _complete(self, bc: str, d: _Download) -> None:
        try:
            audio = d.reasm.assemble()
        except p.ChunkError:
            if not d.retried_all:  # discard and ask for every chunk again, once
                d.retried_all = True
                logger.warning("%s: sha256 mismatch for %s; requesting all chunks", self.gw.gw, bc)
                self._send_repair(bc, d)
                return
            self._fail(bc, "checksum")
            return
        self._drop(bc)
        targets = self._targets(d)
        for child in targets:
            self.gw.ack(child, bc, p.AckState.VERIFIED)
        self.gw.line.enqueue(d.manifest, audio, targets)

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
            self.gw.ack(child, bc, p.AckState.FAILED, reason)

    # ------------------------------------------------------------------ repair

    def _send_repair(self, bc: str, d: _Download) -> None:
        missing = d.reasm.missing()[: p.MAX_REPAIR]
        targets = self._targets(d)
        if missing and targets:
            who = targets[0].node_id
            req = p.RepairRequest(ts=self.gw.clock_ms(), node_id=who, bc=bc, missing=missing)
            if self.gw.publish(self.gw.topics.repair(who), p.encode(req), qos=1):
                self.repairs_sent += 1
                d.requested = set(missing)
                logger.debug("%s: repair %s for %s: %d chunks", self.gw.gw, bc, who, len(missing))
        d.next_repair = time.monotonic() + d.wait
        d.wait = min(d.wait * 2, REPAIR_MAX_WAIT_S)

    def _repair_due(self, bc: str) -> None:
        d = self.active.get(bc)
        if d is None:
            return
        if d.manifest.expires_at < self.gw.clock_ms():
            self._fail(bc, "expired")
            return
        now = time.monotonic()
        if now + 0.005 >= d.next_repair:
            self._send_repair(bc, d)
        d.timer = self.gw.later(max(0.01, d.next_repair - now), self._repair_due, bc)
