"""Receiving broadcasts on a simulated node: manifest, chunks, repair (docs/protocol.md §3).

:class:`Downloads` is the part of a :class:`~firmware_sim.node.SimNode` that turns a
retained manifest plus a stream of chunks into one verified file: it answers a manifest
with ``receiving`` (or the final state of a broadcast it already finished), applies the
chunk faults of :class:`~firmware_sim.faults.Faults`, reassembles and verifies the file,
asks for missing chunks with repair requests (the rule of
:class:`devices.protocol.RepairPlan`: only chunks lost below the highest one received until
the sending is over, idle timer and doubling backoff capped at 30 s, at most 256 indexes
per request, none while disconnected, one "send everything again" after a sha256
mismatch) and hands the verified file to the node's player. :class:`BlobCache` lets the
nodes of one process share identical chunk and file bytes.
"""

from __future__ import annotations

import logging
import struct
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from devices.protocol import (
    CHUNK_HEADER,
    FINISHED_KEEP,
    AckState,
    Chunk,
    ChunkError,
    Manifest,
    NodeConfig,
    PayloadError,
    Reassembler,
    RepairPlan,
    RepairRequest,
    decode,
    encode,
    parse_chunk,
)
from firmware_sim.attention import Attention
from firmware_sim.flash import Flash, VerifiedInFlash
from firmware_sim.io import NodeIO, Timer
from firmware_sim.player import Player

logger = logging.getLogger(__name__)

_INDEX = struct.Struct(">H")


class BlobCache:
    """Lets the nodes of one process share identical chunk/file bytes (memory, not behaviour).

    A thousand simulated nodes receiving the same 5 MiB bulletin would otherwise hold a
    thousand copies. Keys include the file tag, index and size, and a hit is compared
    byte for byte, so sharing can never change what a node verifies.
    """

    def __init__(self, budget_bytes: int = 256 * 1024 * 1024) -> None:
        self.budget = budget_bytes
        self.size = 0
        self._blobs: OrderedDict[object, bytes] = OrderedDict()

    def intern(self, key: object, data: bytes) -> bytes:
        cached = self._blobs.get(key)
        if cached is not None:
            return cached if cached == data else data
        self._blobs[key] = data
        self.size += len(data)
        while self.size > self.budget and self._blobs:
            _, old = self._blobs.popitem(last=False)
            self.size -= len(old)
        return data

    def clear(self) -> None:
        self._blobs.clear()
        self.size = 0


KEEP_VERIFIED = 4


@dataclass
class _Download:
    manifest: Manifest
    reasm: Reassembler
    plan: RepairPlan
    faulted: set[int] = field(default_factory=set)
    retried_all: bool = False
    timer: Timer | None = None


class Downloads:
    """The broadcasts one node is downloading now, keyed by broadcast id."""

    def __init__(self, io: NodeIO, player: Player, *, repair_idle_s: float, blobs: BlobCache | None,
                 keep_audio: bool, config: Callable[[], NodeConfig | None] = lambda: None,
                 flash: Flash | None = None) -> None:
        self._io = io
        self._player = player
        #: an emergency's manifest sounds the local attention tone of the unit's config, at once
        self.attention = Attention(io, player, config, flash)
        self.repair_idle_s = repair_idle_s
        self.blobs = blobs
        self.keep_audio = keep_audio
        #: verified files by bc (the last FINISHED_KEEP), unless keep_audio is off
        self.audio: dict[str, bytes] = {}
        self._active: dict[str, _Download] = {}
        #: the last verified files, kept for a ``play`` command that replays (restart / resume)
        self._verified: OrderedDict[str, tuple[Manifest, bytes]] = OrderedDict()
        #: the unit agent keeps them on its disk (the simulator's survive its reboots in RAM)
        self._kept = VerifiedInFlash(flash) if flash is not None else None
        for m, audio in self._kept.load() if self._kept is not None else []:
            self._verified[m.bc] = (m, audio)

    # ------------------------------------------------------------------ queries

    def __contains__(self, bc: object) -> bool:
        return bc in self._active

    def __iter__(self) -> Iterator[str]:
        return iter(self._active)

    def __len__(self) -> int:
        return len(self._active)

    def progress(self, bc: str) -> tuple[int, int] | None:
        """(chunks held, chunks total) of a download in progress, else None."""
        d = self._active.get(bc)
        return None if d is None else (d.reasm.have, d.manifest.audio.chunks)

    def verified(self, bc: str) -> tuple[Manifest, bytes] | None:
        return self._verified.get(bc)

    def storage_bytes(self) -> int:
        """Space reserved for the files being downloaded (their full size)."""
        return sum(d.manifest.audio.size for d in self._active.values())

    def used_bytes(self) -> int:
        """Flash in use: the files being downloaded and those the player holds."""
        return self._player.used_bytes() + self.storage_bytes()

    # ------------------------------------------------------------------ control

    def clear(self) -> None:
        """Power loss: every partial download is gone (RAM)."""
        for d in self._active.values():
            if d.timer is not None:
                d.timer.cancel()
        self._active.clear()

    def restore(self) -> list[str]:
        """At boot (§3 "what a unit keeps"): the verified files in flash survive power loss. Expired
        ones are deleted; those not finished wait in the player again, held, so the retained
        manifest is answered ``verified`` and nothing is downloaded twice. Returns their bcs."""
        now, back = self._io.controller_ms(), []
        for bc, (m, audio) in list(self._verified.items()):
            if m.expires_at < now:
                del self._verified[bc]
            elif bc not in self._io.finished and self._player.state_of(bc) is None:
                self._player.enqueue(m, audio)
                back.append(bc)
        if back:
            logger.info("%s: %d verified files kept across the reboot", self._io.node_id, len(back))
        return back

    def expire(self, clock_ms: float) -> None:
        """Fail (``expired``) every download whose manifest expired before ``clock_ms``."""
        for bc in [b for b, d in self._active.items() if d.manifest.expires_at < clock_ms]:
            self._fail(bc, "expired")

    def cancel(self, bc: str) -> bool:
        """``cancel`` command: drop the download of ``bc`` (acks failed/cancelled) if there is one."""
        if bc not in self._active:
            return False
        self._fail(bc, "cancelled")
        return True

    def reconnected(self) -> None:
        """The link is up again: each download's repair count starts again (RepairPlan.reconnected)."""
        now = time.monotonic()
        for bc, d in self._active.items():
            d.plan.reconnected(now)
            if d.timer is not None:
                d.timer.cancel()
            d.timer = self._io.later(max(0.01, d.plan.next_due - now), self._repair_due, bc)

    # ------------------------------------------------------------------ incoming

    def on_manifest(self, topic: str, bc: str, payload: bytes) -> None:
        io = self._io
        if not payload:  # withdrawn by the controller: drop a partial download
            d = self._active.pop(bc, None)
            if d is not None:
                if d.timer is not None:
                    d.timer.cancel()
                logger.info("%s: manifest of %s withdrawn; partial download dropped", io.node_id, bc)
            return
        try:
            m = decode(Manifest, payload)
        except PayloadError as exc:
            io.bad(topic, exc)
            return
        a = m.audio
        if m.bc != bc or a.chunks != (a.size + a.chunk_size - 1) // a.chunk_size:
            io.bad(topic, "manifest bc differs from its topic or audio.chunks is inconsistent")
            return
        io.stats.manifests += 1
        tone = self.attention.alert(m)  # at once, before any chunk
        if bc in io.finished:  # never play twice: re-send the final ack
            state, reason = io.finished[bc]
            io.ack(bc, state, reason, started_at=self._player.started_at(bc))
            return
        held = self._player.state_of(bc)
        if held is not None:
            io.ack(bc, held, attention=tone, started_at=self._player.started_at(bc))
            return
        d = self._active.get(bc)
        if d is not None:
            io.ack(bc, AckState.RECEIVING, have=d.reasm.have, attention=tone)
            return
        if m.expires_at < io.controller_ms():
            io.ack(bc, AckState.FAILED, "expired")
            return
        free = io.faults.storage_kb * 1024 - self.used_bytes()
        if io.faults.storage_full or a.size > free:
            io.ack(bc, AckState.FAILED, "storage_full", attention=tone)
            return
        idle = self.repair_idle_s
        d = _Download(m, Reassembler(a), RepairPlan(a.chunks, idle, time.monotonic()))
        self._active[bc] = d
        d.timer = io.later(idle, self._repair_due, bc)
        logger.debug("%s: receiving %s (%d chunks)", io.node_id, bc, a.chunks)
        io.ack(bc, AckState.RECEIVING, have=0, attention=tone)

    def on_chunk(self, bc: str, payload: bytes) -> None:
        io, stats = self._io, self._io.stats
        d = self._active.get(bc)
        if d is None:
            stats.chunks_ignored += 1
            return
        frame = self._apply_faults(d, payload)
        if frame is None:
            return
        try:
            chunk = parse_chunk(frame)
        except ChunkError as exc:
            stats.chunks_bad += 1
            logger.info("%s: bad chunk for %s: %s", io.node_id, bc, exc)
            return
        if self.blobs is not None:
            data = self.blobs.intern((chunk.file_tag, chunk.index, len(chunk.data)), chunk.data)
            chunk = Chunk.model_construct(index=chunk.index, total=chunk.total,
                                          file_tag=chunk.file_tag, data=data)
        before = d.reasm.have
        if not d.reasm.add(chunk):
            stats.chunks_bad += 1
            logger.info("%s: chunk %d does not belong to %s", io.node_id, chunk.index, bc)
            return
        if d.reasm.have == before:
            stats.chunks_dup += 1
            return
        stats.chunks_ok += 1
        now = time.monotonic()
        d.plan.received(chunk.index, now)
        if d.reasm.complete():
            self._complete(bc, d)
            return
        if d.plan.due(now):  # the last chunk came, or the last repair was answered: ask at once
            self._send_repair(bc, d)

    def _apply_faults(self, d: _Download, payload: bytes) -> bytes | None:
        """Faults.drop_chunks / corrupt_chunks, once per index: None = dropped."""
        faults, stats = self._io.faults, self._io.stats
        index = _INDEX.unpack_from(payload, 4)[0] if len(payload) >= CHUNK_HEADER.size else -1
        if index in faults.drop_chunks and index not in d.faulted:
            d.faulted.add(index)
            stats.chunks_fault_dropped += 1
            return None
        corrupt = index in faults.corrupt_chunks and index not in d.faulted
        if corrupt and len(payload) > CHUNK_HEADER.size:
            d.faulted.add(index)
            stats.chunks_fault_corrupted += 1
            flipped = bytearray(payload)
            flipped[CHUNK_HEADER.size] ^= 0xFF
            payload = bytes(flipped)
        return payload

    # ------------------------------------------------------------------ outcome

    def _complete(self, bc: str, d: _Download) -> None:
        io = self._io
        try:
            audio = d.reasm.assemble()
        except ChunkError:
            io.stats.checksum_mismatches += 1
            if not d.retried_all:  # discard the file and ask for every chunk again, once
                d.retried_all = True
                logger.warning("%s: sha256 mismatch for %s; requesting all chunks", io.node_id, bc)
                d.plan.restart(time.monotonic())
                self._send_repair(bc, d)
                return
            self._fail(bc, "checksum")
            return
        self._active.pop(bc, None)
        if d.timer is not None:
            d.timer.cancel()
        if self.blobs is not None:
            audio = self.blobs.intern(("file", d.manifest.audio.sha256), audio)
        if self.keep_audio:
            self.audio[bc] = audio
            while len(self.audio) > FINISHED_KEEP:
                del self.audio[next(iter(self.audio))]
        self._verified[bc] = (d.manifest, audio)
        dropped = []
        while len(self._verified) > KEEP_VERIFIED:
            dropped.append(self._verified.popitem(last=False)[0])
        if self._kept is not None:
            self._kept.store(d.manifest, audio, list(self._verified), dropped)
        io.ack(bc, AckState.VERIFIED)
        self._player.enqueue(d.manifest, audio)

    def _fail(self, bc: str, reason: str) -> None:
        d = self._active.pop(bc, None)
        if d is not None and d.timer is not None:
            d.timer.cancel()
        self._io.ack(bc, AckState.FAILED, reason)

    # ------------------------------------------------------------------ repair

    def _send_repair(self, bc: str, d: _Download) -> None:
        """A check is due: ask for what the plan says is lost (nothing while disconnected)."""
        io, now = self._io, time.monotonic()
        missing = d.plan.batch(d.reasm.missing(), now)
        if missing:
            req = RepairRequest(ts=io.clock_ms(), node_id=io.node_id, bc=bc, missing=missing)
            if not io.publish(io.topics.repair(io.node_id), encode(req), qos=1):
                d.plan.unsent(now)
                return
            io.stats.repairs_sent += 1
            logger.debug("%s: repair %s: %d chunks", io.node_id, bc, len(missing))
        d.plan.sent(missing, now)

    def _repair_due(self, bc: str) -> None:
        d = self._active.get(bc)
        if d is None:
            return
        now = time.monotonic()
        if d.manifest.expires_at < self._io.controller_ms():
            self._fail(bc, "expired")
            return
        if d.plan.due(now):
            self._send_repair(bc, d)
        d.timer = self._io.later(max(0.01, d.plan.next_due - now), self._repair_due, bc)
