"""The station's programme line: what the gateway plays, and whose relays carry it.

Wired/FM boards do not play audio; the gateway does, on the amplifier line next to it
(here: the file is written to ``play_dir/<gateway>/<bc>.<codec>`` and "playing" lasts
``duration_ms * repeat * time_scale``). One broadcast plays at a time, in the order of
docs/protocol.md §3: ``emergency`` first (pre-empting anything else), then ``priority``,
then ``normal``, each in arrival order, and nothing after its ``expires_at``. A broadcast whose
manifest says ``hold`` (the controller always sets it) waits, verified, for a ``play`` naming it
to any of its children; then it takes its turn (``at`` is not used: the line is one).

For each broadcast the player closes the relay of every targeted child (``playing`` per
child once its relay is closed; ``failed``/``power_off`` when the board's amplifier is off,
unless it is an emergency, which switches it on; ``failed``/``relay_fault`` on a NAK; no
ack for a child that does not answer: it is offline). When the audio ends the relays
open again and each child that heard it is acked ``played``. ``stop``/``cancel``/``power``
commands take one child off the line (``failed`` with that reason); pre-emption fails the
broadcast for all of its children with ``preempted``.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from dataclasses import dataclass, field

from devices import protocol as p
from devices.serial.contract import Child
from devices.serial.io import GatewayIO, Switchboard

logger = logging.getLogger(__name__)


@dataclass
class LineItem:
    manifest: p.Manifest
    audio: bytes
    targets: set[str]  # node ids still to hear it
    seq: int
    active: set[str] = field(default_factory=set)  # relays closed for it now
    held: bool = False  # §3 `hold`: verified, waiting for a `play` before it takes its turn

    @property
    def bc(self) -> str:
        return self.manifest.bc

    @property
    def emergency(self) -> bool:
        return self.manifest.priority is p.Priority.EMERGENCY


class LinePlayer:
    """The queue of the programme line and the relays carrying what plays (see the module docstring)."""

    def __init__(self, io: GatewayIO, boards: Switchboard) -> None:
        self._io = io
        self._boards = boards
        self.queue: list[LineItem] = []
        self.current: LineItem | None = None
        self.played: list[str] = []  # bc ids whose audio went out on the line, in order
        self.tones: list[tuple[str, list[str]]] = []  # emergencies' attention tones: (bc, node ids)
        self._seq = itertools.count()
        self._task: asyncio.Task[None] | None = None
        self._release: asyncio.Task[None] | None = None
        self._timer: asyncio.TimerHandle | None = None

    @property
    def playing(self) -> str:
        return self.current.bc if self.current is not None else ""

    def used_bytes(self) -> int:
        items = [*self.queue, *([self.current] if self.current else [])]
        return sum(len(i.audio) for i in items)

    def state_of(self, bc: str, child: Child) -> p.AckState | None:
        if self.current is not None and self.current.bc == bc and child.node_id in self.current.targets:
            return p.AckState.PLAYING if child.node_id in self.current.active else p.AckState.VERIFIED
        if any(i.bc == bc and child.node_id in i.targets for i in self.queue):
            return p.AckState.VERIFIED
        return None

    def join(self, bc: str, child: Child, attention: str = "") -> bool:
        """A verified broadcast reached another child (another scope): it waits for the line too."""
        for item in self.queue:
            if item.bc == bc:
                item.targets.add(child.node_id)
                self._io.ack(child, bc, p.AckState.VERIFIED, attention=attention)
                return True
        return False

    def sound_tone(self, bc: str, audio: bytes, codec: str, duration_ms: int, children: list[Child]) -> None:
        """An emergency's attention tone, now, to ``children`` (docs/protocol.md §3): on the line,
        over whatever plays, their amplifiers on and relays closed for the tone's duration."""
        self.tones.append((bc, sorted(c.node_id for c in children)))
        self._io.spawn(self._tone(bc, audio, codec, duration_ms, children), f"tone-{bc}")

    async def _tone(self, bc: str, audio: bytes, codec: str, duration_ms: int, children: list[Child]) -> None:
        on = [c for c in children if await self._boards.connect(c, bc, True) is None]  # (powers on)
        await self._write(f"{bc}.attention.{codec}", audio)
        logger.info("%s: attention tone of %s to %s", self._io.gateway_id, bc, [c.node_id for c in on])
        await asyncio.sleep(duration_ms * self._io.config.time_scale / 1000)
        item = self.current
        for child in on:
            if item is not None and child.node_id in item.active:
                child.playing = item.bc  # its relay carries what plays now (the speech, say): kept closed
            elif child.playing == bc:
                await self._boards.disconnect(child)

    def enqueue(self, manifest: p.Manifest, audio: bytes, targets: list[Child]) -> None:
        if targets:
            self.queue.append(LineItem(manifest, audio, {c.node_id for c in targets}, next(self._seq),
                                       held=manifest.hold))
            self._kick()

    def release(self, bc: str) -> bool:
        """A `play` of a held broadcast (§3 `hold`): it takes its turn on the line now, for every
        child it targets (the line is one); False if it is not waiting."""
        for item in self.queue:
            if item.bc == bc and item.held:
                item.held = False
                self._kick()
                return True
        return False

    # ------------------------------------------------------------------ per-child control

    async def stop_child(self, child: Child, reason: str) -> str:
        """Take ``child`` off the broadcast playing now; returns its bc or ''."""
        item = self.current
        if item is None or child.node_id not in item.targets:
            return ""
        item.targets.discard(child.node_id)
        was_on = child.node_id in item.active
        item.active.discard(child.node_id)
        self._io.ack(child, item.bc, p.AckState.FAILED, reason)
        if not item.targets and self.current is item:
            self._interrupt(reason)  # nobody left to hear it: the line is free for the next one
            self._kick()
        if was_on:
            await self._boards.disconnect(child)
        return item.bc

    async def cancel(self, child: Child, bc: str, reason: str = "cancelled") -> bool:
        """Take ``child`` off ``bc``, waiting or on the line (``failed``/``reason``); False if
        ``child`` has no part in it."""
        for item in self.queue:
            if item.bc == bc and child.node_id in item.targets:
                item.targets.discard(child.node_id)
                self._io.ack(child, bc, p.AckState.FAILED, reason)
                if not item.targets:
                    self.queue.remove(item)
                return True
        if self.current is not None and self.current.bc == bc:
            return await self.stop_child(child, reason) != ""
        return False

    def expire_due(self) -> None:
        now = self._io.clock_ms()
        for item in [i for i in self.queue if i.manifest.expires_at < now]:
            self.queue.remove(item)
            self._fail_all(item, "expired")

    async def shutdown(self) -> None:
        """Clean stop: the current broadcast ends, relays open (no acks: the children go offline)."""
        self.queue.clear()
        item, self.current = self.current, None
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if item is not None:
            for child in self._children(item.active):
                await self._boards.disconnect(child)

    def reset(self) -> None:
        """Power loss: everything in RAM is gone."""
        for t in (self._task, self._release):
            if t is not None:
                t.cancel()
        if self._timer is not None:
            self._timer.cancel()
        self.queue.clear()
        self.current = None

    # ------------------------------------------------------------------ scheduling

    def _fail_all(self, item: LineItem, reason: str) -> None:
        for child in self._children(item.targets):
            self._io.ack(child, item.bc, p.AckState.FAILED, reason)
        item.targets.clear()

    def _children(self, node_ids: set[str]) -> list[Child]:
        found = (self._io.child(n) for n in sorted(node_ids))
        return [c for c in found if c is not None]

    def _kick(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not self._io.running:
            return
        now = self._io.clock_ms()
        ready = sorted((i for i in self.queue if not i.held
                        and (i.manifest.play_at is None or i.manifest.play_at <= now)),
                       key=lambda i: (p.play_rank(i.manifest.priority), i.seq))
        if self.current is not None:
            if ready and ready[0].emergency and not self.current.emergency:
                self._interrupt("preempted")
            else:
                self._arm(now)
                return
        for item in ready:
            self.queue.remove(item)
            if item.manifest.expires_at < now:
                self._fail_all(item, "expired")
                continue
            self.current = item
            self._task = self._io.spawn(self._play(item, self._release), f"play-{item.bc}")
            break
        self._arm(now)

    def _arm(self, now: int) -> None:
        waiting = [i.manifest.play_at for i in self.queue
                   if not i.held and i.manifest.play_at and i.manifest.play_at > now]
        if waiting:
            delay = (min(waiting) - now) / 1000 + 0.001
            self._timer = asyncio.get_running_loop().call_later(delay, self._kick)

    def _interrupt(self, reason: str) -> None:
        item, task = self.current, self._task
        if item is None:
            return
        self.current, self._task = None, None
        if task is not None:
            task.cancel()
        logger.info("%s: %s stopped on the line (%s)", self._io.gateway_id, item.bc, reason)
        self._release = self._io.spawn(self._release_item(item, reason), f"release-{item.bc}")

    async def _release_item(self, item: LineItem, reason: str) -> None:
        on = self._children(item.active)
        item.active.clear()
        self._fail_all(item, reason)
        for child in on:
            await self._boards.disconnect(child)

    async def _play(self, item: LineItem, release: asyncio.Task[None] | None) -> None:
        if release is not None and not release.done():  # relays of a pre-empted broadcast open first
            with contextlib.suppress(Exception):
                await asyncio.shield(release)
        try:
            await self._air(item)
        finally:
            if self.current is item:
                self.current, self._task = None, None
                self._kick()

    async def _air(self, item: LineItem) -> None:
        io, m = self._io, item.manifest
        await self._switch_on(item)
        if not item.active:
            logger.info("%s: %s: no child could be switched on", io.gateway_id, item.bc)
            return
        self.played.append(item.bc)
        await self._write(f"{item.bc}.{item.manifest.audio.codec}", item.audio)
        logger.info("%s: playing %s to %s", io.gateway_id, item.bc, sorted(item.active))
        await asyncio.sleep(m.audio.duration_ms * m.repeat * io.config.time_scale / 1000)
        for child in self._children(item.active):
            item.active.discard(child.node_id)
            item.targets.discard(child.node_id)
            await self._boards.disconnect(child)
            io.ack(child, item.bc, p.AckState.PLAYED)

    async def _switch_on(self, item: LineItem) -> None:
        """Close the relay of every target: ``playing``, or failed/<why>, or (offline) nothing."""
        for child in self._children(item.targets):
            nid = child.node_id
            why = await self._boards.connect(child, item.bc, item.emergency)
            if nid not in item.targets:  # stopped/cancelled while switching
                if why is None:
                    await self._boards.disconnect(child)
                continue
            if why is None:
                item.active.add(nid)
                self._io.ack(child, item.bc, p.AckState.PLAYING)
            elif why == "unreachable":
                item.targets.discard(nid)  # offline: no ack, as for any offline node
            else:
                item.targets.discard(nid)
                self._io.ack(child, item.bc, p.AckState.FAILED, why)

    async def _write(self, name: str, audio: bytes) -> None:
        """"The station line": the file goes to ``play_dir/<gateway>/<name>`` (``<bc>.<codec>``, or
        ``<bc>.attention.<codec>`` for an emergency's tone)."""
        cfg = self._io.config
        if cfg.play_dir is None:
            return
        folder = cfg.play_dir / self._io.gateway_id
        path = folder / name
        try:
            await asyncio.to_thread(folder.mkdir, parents=True, exist_ok=True)
            await asyncio.to_thread(path.write_bytes, audio)
        except OSError as exc:
            logger.warning("%s: cannot write %s: %s", self._io.gateway_id, path, exc)
