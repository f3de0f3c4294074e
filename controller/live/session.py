"""One live session: who speaks to which units, and the session's own audio bookkeeping.

The session keeps the PCM not yet framed and the loop times that decide when to announce
(``live_start``) again and when it has gone quiet; :class:`controller.live.hub.LiveHub` asks it
(:meth:`LiveSession.hear`, :meth:`LiveSession.frames`, :meth:`LiveSession.quiet_reason`, ...)
and never touches that state itself.
"""

from __future__ import annotations

import array
import logging
import math
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from devices import protocol as p

logger = logging.getLogger(__name__)

FRAME_BYTES = p.LIVE_SAMPLE_RATE * p.LIVE_FRAME_MS // 1000 * 2
SILENT_RMS = 30  # below about -60 dBFS: a muted or dead microphone
MAX_BACKLOG = FRAME_BYTES * 50  # 2 s: a phone sending faster than real time is cut
REANNOUNCE_S = 2.0  # live_start again: a unit that (re)connects mid-session joins it
GAP_S = 1.5  # audio resuming after this long (an upstream back, first output): announce at once


@dataclass
class LiveStats:
    bytes_in: int = 0
    frames_out: int = 0
    publish_errors: int = 0
    dropped_waiting: int = 0


class LiveObserver(Protocol):
    """Told what a phone session does (never allowed to disturb the audio path: errors are logged)."""

    def on_open(self, s: LiveSession) -> None: ...
    def on_live(self, s: LiveSession) -> None: ...
    def on_frame(self, s: LiveSession, pcm: bytes) -> None: ...
    def on_end(self, s: LiveSession) -> None: ...


@dataclass
class LiveSession:
    id: str
    user: str
    priority: p.Priority
    nodes: list[str]
    scopes: list[p.AudioScope]
    notify: Callable[[dict[str, Any]], None]
    state: str = "waiting"  # waiting | live | ended
    reason: str = ""
    seq: int = 0
    level_dbfs: float = -120.0
    stats: LiveStats = field(default_factory=LiveStats)
    _pending: bytearray = field(default_factory=bytearray)
    _last_audio: float = 0.0
    _last_sound: float = 0.0
    _announced: float = 0.0
    _announces: int = 0
    _last_frame: float = 0.0  # loop time of the last frame published
    refused: dict[str, str] = field(default_factory=dict)  # unit → why it did not go live
    target: dict[str, Any] = field(default_factory=dict)  # as requested (zones, nodes, all)
    observer: LiveObserver | None = None

    # ------------------------------------------------------------------ its own bookkeeping

    def go_live(self, now: float) -> None:
        self.state = "live"
        self._last_audio = self._last_sound = now

    def hear(self, pcm: bytes, now: float) -> bool:
        """Account for PCM from the phone (level, last audio/sound); True when it is to be framed."""
        self.stats.bytes_in += len(pcm)
        self._last_audio = now
        if len(pcm) >= 2:
            rms = pcm_rms(pcm[: len(pcm) & ~1])
            self.level_dbfs = -120.0 if rms < 1 else 20 * math.log10(rms / 32768)
            if rms >= SILENT_RMS:
                self._last_sound = now
        if self.state != "live":
            self.stats.dropped_waiting += len(pcm)
            return False
        self._pending += pcm
        if len(self._pending) > MAX_BACKLOG:
            del self._pending[: len(self._pending) - MAX_BACKLOG]
        return True

    def resuming(self, now: float) -> bool:
        """A frame is due after a gap: units gave up on a silent session, announce before the audio."""
        return (len(self._pending) >= FRAME_BYTES and now - self._last_frame > GAP_S
                and now - self._announced > 0.1)

    def frames(self, now: float) -> list[bytes]:
        """The whole frames buffered so far, taken out of the buffer."""
        out = []
        while len(self._pending) >= FRAME_BYTES:
            self._last_frame = now
            out.append(bytes(self._pending[:FRAME_BYTES]))
            del self._pending[:FRAME_BYTES]
        return out

    def tail(self) -> bytes:
        """What is left in the buffer (whole samples), taken out: the last frame's audio."""
        rest = bytes(self._pending[: len(self._pending) & ~1])
        self._pending.clear()
        return rest

    def announced(self, now: float) -> None:
        self._announced = now
        self._announces += 1

    def quiet_reason(self, now: float, no_audio_s: float, silence_s: float) -> str | None:
        """``no_audio`` (the phone sends nothing) or ``silent`` (only silence), else None."""
        if now - self._last_audio > no_audio_s:
            return "no_audio"
        if now - self._last_sound > silence_s:
            return "silent"
        return None

    def reannounce_due(self, now: float) -> bool:
        """While audio flows, ``live_start`` again now and then (a unit back mid-session joins)."""
        return now - self._announced >= REANNOUNCE_S and now - self._last_frame <= GAP_S

    def refusal(self, node_id: str, resp: p.CommandResponse) -> None:
        """A unit's answer to ``live_start``: a refusal (e.g. ``power_off``) is shown per unit."""
        if node_id not in self.nodes:
            return
        if resp.status == "error":
            self.refused[node_id] = resp.error[:100]
        else:
            self.refused.pop(node_id, None)

    def observe(self, what: str, *args: Any) -> None:
        """Tell the observer (the broadcast log and archive); its errors never stop the voice."""
        if self.observer is None:
            return
        try:
            getattr(self.observer, what)(self, *args)
        except Exception:  # the record must never stop the voice
            logger.exception("live %s: %s failed", self.id, what)

    def public(self) -> dict[str, Any]:
        return {"session": self.id, "state": self.state, "reason": self.reason, "user": self.user,
                "priority": self.priority.value, "nodes": self.nodes, "frames": self.stats.frames_out}


def pcm_rms(pcm: bytes) -> float:
    """RMS of s16le samples."""
    samples = array.array("h")
    samples.frombytes(pcm[: len(pcm) & ~1])
    if sys.byteorder == "big":
        samples.byteswap()
    if not samples:
        return 0.0
    return math.sqrt(sum(x * x for x in samples) / len(samples))
