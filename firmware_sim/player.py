"""Playback queue of a simulated node (docs/protocol.md §3 "playback order").

Verified broadcasts wait here until their ``play_at`` (node clock) has come, then play
one at a time: ``emergency`` first, then ``priority``, then ``normal``, each class in
arrival order. An emergency stops a non-emergency broadcast that is playing (reported
``failed``/``preempted``) and powers the amplifier on; other classes fail with
``power_off`` while the amplifier is off. Nothing starts after its ``expires_at``.

Where the sound goes is the :class:`~firmware_sim.hardware.AudioOutput` port: the simulator's
"playing" is a sleep of ``duration_ms * repeat * time_scale`` (:class:`~firmware_sim.hardware.SleepOutput`),
``loaphuong unit``'s is a sound card, handed each job ``lead_ms`` before its instant so that the
sound starts at the instant itself; the amplifier's power line is the
:class:`~firmware_sim.hardware.PowerDriver` port. When a ``play_dir`` is
given the file is also written to ``play_dir/<node_id>/<bc>.mp3`` so a human (or a test)
can listen to what a node would have played; with a :class:`~firmware_sim.playlog.PlayLog`
every start and end is also appended to it (a second start of the same broadcast shows).
The player is event driven: no polling timer runs while the queue waits, only one
``call_later`` for the earliest ``play_at``.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from devices.protocol import AckState, Manifest, Priority, play_rank
from firmware_sim.hardware import AudioOutput, NoPower, OutputFault, PlayJob, PowerDriver, SleepOutput
from firmware_sim.playlog import Event, PlayEvent, PlayLog

logger = logging.getLogger(__name__)

class AckFn(Protocol):
    """The node's ack (firmware_sim/runtime.py): ``started_at`` on ``playing``/``played``."""

    def __call__(self, bc: str, state: AckState, reason: str = "", *,
                 started_at: int | None = None) -> None: ...


@dataclass
class QueueItem:
    manifest: Manifest
    audio: bytes
    seq: int
    start_at: float | None = None  # node clock ms, set by a ``play`` command
    offset_ms: int = 0  # start this far into the audio (resume / joining late)

    @property
    def due(self) -> float | None:
        """When it may start (node clock); None = held until a ``play`` command."""
        if self.start_at is not None:
            return self.start_at
        if self.manifest.hold:
            return None
        return self.manifest.play_at if self.manifest.play_at is not None else 0

    @property
    def bc(self) -> str:
        return self.manifest.bc

    @property
    def rank(self) -> int:
        return play_rank(self.manifest.priority)

    @property
    def emergency(self) -> bool:
        return self.manifest.priority is Priority.EMERGENCY


class Player:
    """One amplifier (power, volume), one queue, one broadcast playing at a time."""

    def __init__(
        self,
        node_id: str,
        *,
        clock: Callable[[], float],
        controller_clock: Callable[[], float] | None = None,
        on_ack: AckFn,
        on_change: Callable[[], None],
        time_scale: float = 1.0,
        power: bool = True,
        decode_error: bool = False,
        play_dir: Path | None = None,
        play_log: PlayLog | None = None,
        output: AudioOutput | None = None,
        amp: PowerDriver | None = None,
    ) -> None:
        self.node_id = node_id
        self.output: AudioOutput = output if output is not None else SleepOutput(time_scale)
        self.amp: PowerDriver = amp if amp is not None else NoPower()
        self.power = power
        self.amp.set(power)
        self.volume = 70
        self.time_scale = time_scale
        self.decode_error = decode_error
        self.play_dir = play_dir
        self.play_log = play_log
        #: this boot's number (1 at the first; :meth:`reset` counts the next one)
        self.boot = 1
        self.queue: list[QueueItem] = []
        self.current: QueueItem | None = None
        #: bc ids whose playback completed (``played`` ack), in play order.
        self.played: list[str] = []
        #: bc ids whose playback started (including pre-empted / stopped ones).
        self.started: list[str] = []
        #: bc ids of the emergencies whose local attention tone sounded, in order.
        self.tones: list[str] = []
        #: bc -> real time (epoch ms) playback started, and the offset it started at
        self.start_times: dict[str, tuple[float, int]] = {}
        #: bc -> when it began sounding, on the controller's clock (the ``started_at`` of its acks)
        self._began: dict[str, int] = {}
        #: bc -> the real instant (epoch ms) this unit's clock put that start at: where an output
        #: that starts on its instant (``loaphuong unit``'s sound card) begins the sound; the
        #: simulator's own timer fires later, by its event loop's lateness (bench/sync.py)
        self.aimed: dict[str, float] = {}
        self._clock = clock
        self._ctl_clock = controller_clock or clock  # expires_at is on the controller's clock
        self._on_ack = on_ack
        self._on_change = on_change
        self._seq = itertools.count()
        self._task: asyncio.Task[None] | None = None
        self._timer: asyncio.TimerHandle | None = None

    # ------------------------------------------------------------------ queries

    @property
    def playing(self) -> str:
        return self.current.bc if self.current is not None else ""

    def state_of(self, bc: str) -> AckState | None:
        """Current state of a broadcast the player holds (for ack re-sends), else None."""
        if self.current is not None and self.current.bc == bc:
            return AckState.PLAYING
        if any(item.bc == bc for item in self.queue):
            return AckState.VERIFIED
        return None

    def started_at(self, bc: str) -> int | None:
        """When ``bc`` began sounding here (this boot), on the controller's clock; None if it has not."""
        return self._began.get(bc)

    def used_bytes(self) -> int:
        held = sum(len(item.audio) for item in self.queue)
        return held + (len(self.current.audio) if self.current is not None else 0)

    # ------------------------------------------------------------------ control

    def enqueue(self, manifest: Manifest, audio: bytes, *, start_at: float | None = None,
                offset_ms: int = 0) -> None:
        self.queue.append(QueueItem(manifest, audio, next(self._seq), start_at, offset_ms))
        self._kick()

    def start(self, bc: str, at: float, offset_ms: int = 0) -> bool:
        """A ``play`` command: start a held broadcast at node-clock ``at``. False if not held."""
        for item in self.queue:
            if item.bc == bc:
                item.start_at, item.offset_ms = at, offset_ms
                self._kick()
                return True
        return False

    def sound_tone(self, manifest: Manifest, duration_ms: int) -> None:
        """Emergency ``manifest``'s local attention tone sounds now (firmware_sim/attention.py): it
        powers the amplifier on and sounds over what plays, which it does not end (the controller's
        ``stop``/``preempted`` does, by its pre-emption policy: docs/protocol.md §3)."""
        self._power(True)
        self.tones.append(manifest.bc)
        if self.play_log is not None:
            self.play_log.record(PlayEvent(
                unit=self.node_id, bc=manifest.bc, event="tone", wall_ms=int(time.time() * 1000),
                node_ms=int(self._clock()), offset_ms=duration_ms, priority=manifest.priority.value,
                boot=self.boot))

    def tone_audio(self, audio: bytes, codec: str) -> None:
        """The kept attention tone's file, sounded by the output over what plays."""
        self.output.tone(audio, codec)

    def _power(self, on: bool) -> None:
        self.power = on
        self.amp.set(on)

    def set_power(self, on: bool) -> None:
        if on == self.power:
            return
        self._power(on)
        if not on and self.current is not None:
            self._interrupt("power_off")
        self._on_change()
        self._kick()

    def hardware_changed(self) -> None:
        """The output or the amplifier changed state (a fault came or went): telemetry now."""
        self._on_change()

    def set_volume(self, level: int) -> None:
        if level != self.volume:
            self.volume = level
            self.output.set_volume(level)
            self._on_change()

    def stop_current(self, reason: str = "stopped") -> str:
        """Stop what plays now (the queue goes on); returns its bc or ''."""
        if self.current is None:
            return ""
        bc = self.current.bc
        self._interrupt(reason)
        self._kick()
        return bc

    def cancel(self, bc: str, reason: str = "cancelled") -> bool:
        """Forget a queued broadcast (or stop it if it plays); acks failed/<reason>."""
        if self.current is not None and self.current.bc == bc:
            self.stop_current(reason)
            return True
        for item in self.queue:
            if item.bc == bc:
                self.queue.remove(item)
                self._on_ack(bc, AckState.FAILED, reason)
                self._kick()
                return True
        return False

    def expire_due(self) -> None:
        """Fail queued broadcasts whose ``expires_at`` passed while they waited."""
        now = self._ctl_clock()
        for item in [i for i in self.queue if i.manifest.expires_at < now]:
            self.queue.remove(item)
            self._on_ack(item.bc, AckState.FAILED, "expired")

    def reset(self) -> None:
        """Power loss / reboot: forget everything without acking (RAM is gone)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._task is not None:
            self._task.cancel()
            self._task = None
        if self.current is not None:
            self._log("end", self.current, "power_loss")
        self.current = None
        self.queue.clear()
        self.boot += 1

    # ------------------------------------------------------------------ scheduling

    def _interrupt(self, reason: str) -> None:
        item, task = self.current, self._task
        if item is None:
            return
        self.current = None
        self._task = None
        if task is not None:
            task.cancel()
        logger.info("%s: playback of %s stopped (%s)", self.node_id, item.bc, reason)
        self._log("end", item, reason)
        self._on_ack(item.bc, AckState.FAILED, reason)
        self._on_change()

    def _eligible(self, now: float) -> list[QueueItem]:
        soon = now + self.output.lead_ms
        ready = [i for i in self.queue if i.due is not None and i.due <= soon]
        return sorted(ready, key=lambda i: (i.rank, i.seq))

    def _kick(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        now = self._clock()
        ready = self._eligible(now)
        if self.current is not None:
            if not self.current.emergency and ready and ready[0].emergency:
                self._interrupt("preempted")
            else:
                self._arm_timer(now)
                return
        for item in ready:
            self.queue.remove(item)
            late = now - item.start_at if item.start_at is not None else 0.0
            if late > 50:
                item.offset_ms += int(late)  # late: join the others mid-way
            if item.offset_ms >= item.manifest.audio.duration_ms * item.manifest.repeat:
                self._on_ack(item.bc, AckState.FAILED, "too_late")
                continue
            if item.manifest.expires_at < self._ctl_clock():
                self._on_ack(item.bc, AckState.FAILED, "expired")
                continue
            if not self.power:
                if not item.emergency:
                    self._on_ack(item.bc, AckState.FAILED, "power_off")
                    continue
                logger.info("%s: emergency %s powers the amplifier on", self.node_id, item.bc)
                self._power(True)
            if self.decode_error:
                self._on_ack(item.bc, AckState.FAILED, "decode_error")
                continue
            self.current = item
            self.started.append(item.bc)
            real_ms = time.time() * 1000
            self.start_times[item.bc] = (real_ms, item.offset_ms)
            self.aimed[item.bc] = real_ms - late if late <= 50 else real_ms  # (lead: late < 0)
            self._log("start", item, "")
            start_in = max(0.0, ((item.due or now) - now) / 1000.0)
            self._task = asyncio.get_running_loop().create_task(
                self._play(item, start_in), name=f"play-{self.node_id}-{item.bc}"
            )
            self._on_change()
            break
        self._arm_timer(now)

    def _arm_timer(self, now: float) -> None:
        lead = self.output.lead_ms
        waiting = [d - lead for d in (i.due for i in self.queue) if d is not None and d - lead > now]
        if waiting:
            delay = (min(waiting) - now) / 1000.0
            self._timer = asyncio.get_running_loop().call_later(delay, self._kick)

    async def _play(self, item: QueueItem, start_in: float) -> None:
        m = item.manifest
        job = PlayJob(bc=item.bc, audio=item.audio, codec=m.audio.codec, duration_ms=m.audio.duration_ms,
                      repeat=m.repeat, offset_ms=item.offset_ms, start_in_s=start_in)
        try:
            if self.play_dir is not None:
                try:
                    await asyncio.to_thread(self._write, item)
                except OSError as exc:
                    logger.warning("%s: cannot write %s: %s", self.node_id, item.bc, exc)
            await self.output.play(job, lambda: self._sounding(item.bc))
        except asyncio.CancelledError:
            raise  # the interrupter already acked failed/<reason>
        except OutputFault as exc:
            if self.current is item:
                logger.warning("%s: %s could not play to its end: %s", self.node_id, item.bc, exc)
                self.current, self._task = None, None
                self._log("end", item, exc.reason)
                self._on_ack(item.bc, AckState.FAILED, exc.reason)
                self._on_change()
                self._kick()
            return
        if self.current is not item:
            return
        self.current = None
        self._task = None
        self.played.append(item.bc)
        self._log("end", item, "played")
        self._on_ack(item.bc, AckState.PLAYED, "", started_at=self._began.get(item.bc))
        self._on_change()
        self._kick()

    def _sounding(self, bc: str) -> None:
        """Playback began: ``playing``, saying when (the controller's clock: docs/protocol.md §3)."""
        self._began[bc] = int(self._ctl_clock())
        self._on_ack(bc, AckState.PLAYING, "", started_at=self._began[bc])

    def _log(self, event: Event, item: QueueItem, reason: str) -> None:
        """One line of the play log: at an end, ``offset_ms`` is how far into the audio it got."""
        if self.play_log is None:
            return
        offset = item.offset_ms
        started = self.start_times.get(item.bc)
        if event == "end" and started is not None:
            offset += int((time.time() * 1000 - started[0]) / self.time_scale)
        self.play_log.record(PlayEvent(
            unit=self.node_id, bc=item.bc, event=event, wall_ms=int(time.time() * 1000),
            node_ms=int(self._clock()), offset_ms=offset, reason=reason,
            priority=item.manifest.priority.value, boot=self.boot))

    def _write(self, item: QueueItem) -> None:
        assert self.play_dir is not None
        folder = self.play_dir / self.node_id
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{item.bc}.{item.manifest.audio.codec}").write_bytes(item.audio)
