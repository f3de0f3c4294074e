"""Live audio on a simulated node (docs/protocol.md §Live): a jitter buffer and a playout clock.

``live_start`` opens a session; frames arrive QoS0 on ``.../bcast/<session>/live`` in any order
(or not at all). Playout starts once ``jitter_ms`` of audio is buffered and then takes one
frame every ``frame_ms``: the next sequence number if it arrived; silence counted as lost if a
later frame is already there; silence and a wait (an underrun) if nothing is buffered. Frames
that arrive after their turn are dropped (counted late). When underruns have let the buffer grow
to more than twice the target plus two frames, the oldest frames are skipped (counted) back to
the target, so the delay does not creep up. The session
ends on ``live_stop``, on a frame flagged last (after the buffer drains), or on its own after
``idle_timeout_ms`` without frames, so the amplifier is never left on.

What a test or bench can inspect: ``output`` (``(monotonic play time, seq, pcm)`` for each
frame played; seq -1 for silence played while the buffer was empty), ``ended`` (session →
reason) and ``stats``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Any, Protocol

from devices.protocol import (
    ChunkError,
    LiveStartArgs,
    Priority,
    parse_live_frame,
)
from firmware_sim.commands import BadArgs, CommandDesk, CommandRejected
from firmware_sim.hardware import AudioOutput, Sink
from firmware_sim.io import NodeIO

logger = logging.getLogger(__name__)

OUTPUT_KEEP = 20_000  # frames kept for inspection (~13 min at 40 ms)
REJOIN_AFTER = ("no_audio", "shutdown")  # a repeated live_start restarts the session after these


class LiveRejected(CommandRejected):
    """A ``live_start`` / ``live_stop`` answered with status "error"."""


class Amplifier(Protocol):
    """What a live session needs of the player: the amplifier's power."""

    @property
    def power(self) -> bool: ...

    def set_power(self, on: bool) -> None: ...


@dataclass
class LiveStats:
    frames_in: int = 0
    played: int = 0
    lost: int = 0  # never came while later frames did (played as silence)
    underruns: int = 0  # nothing to play: silence, the sequence waits
    skipped: int = 0  # dropped to bring the delay back to the jitter target after underruns
    late: int = 0
    bad: int = 0
    stray: int = 0


@dataclass
class _Session:
    args: LiveStartArgs
    buffer: dict[int, bytes] = field(default_factory=dict)
    next_seq: int | None = None
    last_frame_at: float = field(default_factory=time.monotonic)
    last_seq: int | None = None  # seq of the frame flagged last
    task: asyncio.Task[None] | None = None


class LiveReceiver:
    """One node's live session: commands, jitter buffer and playout (see the module docstring)."""

    def __init__(self, io: NodeIO, amplifier: Amplifier, output: AudioOutput | None = None) -> None:
        self._io = io
        self._amp = amplifier
        self._out = output  # a real unit's sound card (firmware_sim/hardware.py); None: frames are kept only
        self.session: _Session | None = None
        self.output: list[tuple[float, int, bytes]] = []
        self.ended: dict[str, str] = {}
        self.stats = LiveStats()

    @property
    def active(self) -> str:
        return self.session.args.session if self.session else ""

    # ------------------------------------------------------------------ commands

    def register(self, desk: CommandDesk) -> None:
        """``live_start`` / ``live_stop`` (docs/protocol.md §Live)."""
        desk.register("live_start", self.start)
        desk.register("live_stop", self.stop)

    def start(self, raw: dict[str, Any]) -> dict[str, Any]:
        try:
            args = LiveStartArgs.model_validate(raw)
        except ValueError as exc:
            raise BadArgs(f"live_start: {exc}") from None
        why = self.ended.get(args.session)
        if why is not None and why not in REJOIN_AFTER and self.active != args.session:
            raise LiveRejected(f"ended: {why}")  # e.g. stopped by staff: the repeats do not restart it
        player = self._amp
        if not player.power:
            if args.priority != Priority.EMERGENCY:
                raise LiveRejected("power_off")
            player.set_power(True)  # an emergency switches the amplifier on, as for bulletins
        if self.session is not None and self.session.args.session != args.session:
            self.end("replaced")
        if self.session is None:
            self.session = _Session(args)
            self.session.task = asyncio.get_running_loop().create_task(
                self._playout(self.session), name=f"live-{self._io.node_id}")
            logger.info("%s: live %s started", self._io.node_id, args.session)
            self._io.changed()
        return {"live": args.session}

    def stop(self, raw: dict[str, Any]) -> dict[str, Any]:
        session = raw.get("session")
        reason = raw.get("reason", "stopped")
        if not isinstance(reason, str) or len(reason) > 64:
            raise BadArgs("args.reason must be a short string")
        if self.session is None or (session is not None and session != self.session.args.session):
            return {"stopped": ""}
        name = self.session.args.session
        self.end(reason)
        return {"stopped": name}

    def end(self, reason: str) -> None:
        s, self.session = self.session, None
        if s is None:
            return
        if s.task is not None and s.task is not asyncio.current_task():
            s.task.cancel()
        self.ended[s.args.session] = reason
        logger.info("%s: live %s ended (%s)", self._io.node_id, s.args.session, reason)
        self._io.changed()

    # ------------------------------------------------------------------ frames

    def on_frame(self, session: str, payload: bytes) -> None:
        s = self.session
        if s is None or s.args.session != session:
            self.stats.stray += 1
            return
        try:
            frame = parse_live_frame(payload)
        except ChunkError as exc:
            self.stats.bad += 1
            logger.debug("%s: bad live frame: %s", self._io.node_id, exc)
            return
        self.stats.frames_in += 1
        s.last_frame_at = time.monotonic()
        if frame.last:
            s.last_seq = frame.seq
        if s.next_seq is not None and frame.seq < s.next_seq:
            self.stats.late += 1
            return
        s.buffer[frame.seq] = frame.pcm

    async def _playout(self, s: _Session) -> None:
        a = s.args
        frame_s, jitter_s, idle_s = a.frame_ms / 1000, a.jitter_ms / 1000, a.idle_timeout_ms / 1000
        silence = bytes(a.sample_rate * a.frame_ms // 1000 * 2)
        sink: Sink | None = None
        try:
            while not s.buffer:  # wait for the first frame
                if time.monotonic() - s.last_frame_at > idle_s:
                    self.end("no_audio")
                    return
                await asyncio.sleep(0.005)
            await asyncio.sleep(jitter_s)
            sink = self._out.pcm_sink(a.sample_rate, a.session) if self._out is not None else None
            s.next_seq = min(s.buffer)
            tick = time.monotonic()
            keep = max(1, a.jitter_ms // a.frame_ms)
            while True:
                now = time.monotonic()
                if now - s.last_frame_at > idle_s:
                    self.end("no_audio")
                    return
                if len(s.buffer) > 2 * keep + 2:  # fell behind (after underruns): skip back to the target
                    for old in sorted(s.buffer)[: len(s.buffer) - keep]:
                        del s.buffer[old]
                        self.stats.skipped += 1
                    s.next_seq = min(s.buffer)
                pcm = s.buffer.pop(s.next_seq, None)
                seq = s.next_seq
                if pcm is not None:
                    s.next_seq += 1
                elif s.buffer and min(s.buffer) > seq:  # a later frame came: this one is lost
                    self.stats.lost += 1
                    pcm, s.next_seq = silence, seq + 1
                else:  # nothing more yet (the speaker paused, or the network is late): wait
                    self.stats.underruns += 1
                    pcm, seq = silence, -1
                self.stats.played += 1
                if sink is not None:
                    sink.write(pcm)
                self.output.append((now, seq, pcm))
                if len(self.output) > OUTPUT_KEEP:
                    del self.output[: len(self.output) - OUTPUT_KEEP]
                if s.last_seq is not None and s.next_seq > s.last_seq:
                    self.end("ended")
                    return
                tick += frame_s
                await asyncio.sleep(max(0.0, tick - time.monotonic()))
        except asyncio.CancelledError:
            pass
        finally:
            if sink is not None:
                sink.close()
