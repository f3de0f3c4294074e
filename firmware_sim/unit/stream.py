"""One PulseAudio/PipeWire playback stream (16-bit mono, libpulse-simple through ``pasimple``) and
when a sample written to it now will be heard — shared by the bulletin output
(firmware_sim/unit/pulse.py) and the live/relay sinks (firmware_sim/unit/sinks.py)."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

logger = logging.getLogger(__name__)

TARGET_BUFFER_S = 0.25  # queued ahead of the device: a busy CPU must not starve the card


@dataclass(frozen=True)
class PulseTarget:
    server: str | None = None  # e.g. "unix:/run/user/1000/pulse/native"; None = $PULSE_SERVER / default
    sink: str | None = None  # None = the default sink
    rate: int = 48000


class PlaybackStream:
    """One open playback stream (16-bit mono) and how far ahead of the speaker it is."""

    def __init__(self, target: PulseTarget, name: str, *, buffer_s: float = TARGET_BUFFER_S) -> None:
        """``buffer_s`` > the default: the stream also waits for half of it before it starts (and after
        an underrun), for sound that is not on an instant (a relay)."""
        import pasimple

        self._rate = target.rate
        deep = buffer_s > TARGET_BUFFER_S
        self._s = pasimple.PaSimple(
            pasimple.PA_STREAM_PLAYBACK, pasimple.PA_SAMPLE_S16LE, 1, target.rate, "loaphuong-unit", name,
            server_name=target.server, device_name=target.sink, tlength=int(target.rate * 2 * buffer_s),
            prebuf=int(target.rate * buffer_s) if deep else 0, minreq=int(target.rate * 2 * 0.01),
        )

    def ahead_s(self) -> float:
        """Seconds until a sample written now is heard."""
        return float(self._s.get_latency()) / 1e6

    def heard_at(self) -> float:
        """The wall time a sample written next will be heard. Only writing moves it, so it holds
        however long this thread then waits for the CPU; it is measured between two readings of
        the clock that are at most 2 ms apart (a reading a busy CPU interrupted is taken again)."""
        best = (float("inf"), 0.0)
        for _ in range(20):
            t1 = time.time()
            ahead = self.ahead_s()
            t2 = time.time()
            if t2 - t1 < best[0]:
                best = (t2 - t1, (t1 + t2) / 2 + ahead)
            if t2 - t1 <= 0.002:
                break
        return best[1]

    def write(self, pcm: bytes) -> None:
        if pcm:
            self._s.write(pcm)

    def silence(self, seconds: float) -> None:
        self.write(bytes(max(0, int(seconds * self._rate)) * 2))

    def finish(self) -> None:
        """Until what was written has been heard (bounded), then close."""
        deadline = time.monotonic() + 2.0
        try:
            while time.monotonic() < deadline:
                left = self.ahead_s()
                if left < 0.005:
                    break
                time.sleep(min(left, 0.05))
        finally:
            self.close()

    def drop(self) -> None:
        """Forget what is queued and not heard yet (a stop must be heard at once)."""
        try:
            self._s.flush()
        except Exception:  # the server is gone: nothing is queued any more either
            logger.debug("flushing a playback stream failed", exc_info=True)
        self.close()

    def close(self) -> None:
        try:
            self._s.close()
        except Exception:  # closing a stream whose server is gone
            logger.debug("closing a playback stream failed", exc_info=True)
