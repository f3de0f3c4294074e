"""The unit agent's sound card: PulseAudio or PipeWire (its PulseAudio server) through
libpulse-simple (``pasimple``), audio decoded by firmware_sim/unit/decode.py (miniaudio; Opus: libopus).

Starting on the instant. The player hands a job over ``lead_ms`` before its instant. The output
opens a playback stream with a small target buffer and keeps it fed with silence; before every
write it asks the server how long the samples written now will take to be heard (the stream's
latency: what is buffered plus the device's own delay) and writes exactly as much silence as
still separates that moment from the instant, then the audio. So the first sample of the bulletin
leaves the speaker at the instant, within a few milliseconds, whatever the device's latency is —
it is measured at every write, not assumed. ``started`` (the ``playing`` ack) is called at the
instant itself.

A sound card that goes away mid-play (a USB card unplugged, the server restarted) is a fault:
telemetry reports ``audio_device``, the output tries again (0.5 s, then up to 2 s apart) and, when
the card is back, goes on at the point the broadcast has reached by then (the zone plays on
in step); if it is still gone when the broadcast would have ended, the job fails ``audio_fault``.
A file that does not decode fails ``decode_error``.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import Protocol

from firmware_sim.hardware import OutputFault, PlayJob, Sink
from firmware_sim.unit.decode import DecodeError, pcm_blocks
from firmware_sim.unit.mixer import Mixer, SoftwareGain
from firmware_sim.unit.stream import PlaybackStream, PulseTarget

logger = logging.getLogger(__name__)

#: Faults this output reports in telemetry.
AUDIO_DEVICE = "audio_device"
RELAY_DECODE = "relay_decode"  # the relay stream is not one this unit decodes (e.g. AAC)
BLOCK_S = 0.02  # one write: 20 ms of audio


class StreamSinkLike(Protocol):
    decode_error: str


def _sound_error(exc: BaseException) -> bool:
    return type(exc).__name__ == "PaSimpleError" or isinstance(exc, OSError)


class PulseOutput:
    """:class:`~firmware_sim.hardware.AudioOutput` on a PulseAudio/PipeWire server."""

    lead_ms = 400

    def __init__(self, target: PulseTarget | None = None, *, mixer: Mixer | None = None,
                 retry_s: tuple[float, float] = (0.5, 2.0)) -> None:
        self.target = target or PulseTarget()
        self.mixer: Mixer = mixer if mixer is not None else SoftwareGain()
        self._retry = retry_s
        self._lock = threading.Lock()  # one bulletin at a time on the card
        self._fault = False
        self._relay: StreamSinkLike | None = None  # the relay stream playing now, if any
        #: called (from the output's threads) when a fault comes or goes
        self.on_change: Callable[[], None] = lambda: None
        #: (bc, wall time the first sample was planned to be heard) of every playback, for the doctor
        self.starts: list[tuple[str, float]] = []

    def faults(self) -> list[str]:
        out = [AUDIO_DEVICE] if self._fault else []
        if self._relay is not None and self._relay.decode_error:
            out.append(RELAY_DECODE)
        return out

    def set_volume(self, level: int) -> None:
        self.mixer.set(level)

    async def play(self, job: PlayJob, started: Callable[[], None]) -> None:
        loop = asyncio.get_running_loop()
        t0 = time.time() + job.start_in_s
        stop = threading.Event()

        def at_start() -> None:
            loop.call_soon_threadsafe(loop.call_later, max(0.0, t0 - time.time()), started)

        fut = loop.run_in_executor(None, self._run, job, t0, stop, at_start)
        fut.add_done_callback(lambda f: f.cancelled() or f.exception())  # retrieved, even when stopped
        try:
            await asyncio.shield(fut)
        except asyncio.CancelledError:
            stop.set()  # the thread stops within one block and flushes nothing more
            raise

    def pcm_sink(self, rate: int, name: str) -> Sink:
        from firmware_sim.unit.sinks import PcmSink

        return PcmSink(self.target, rate, name, self.mixer, self._sink_fault)

    def stream_sink(self, name: str) -> Sink:
        from firmware_sim.unit.sinks import StreamSink

        self._relay = StreamSink(self.target, name, self.mixer, self._sink_fault)
        return self._relay

    def _sink_fault(self, on: bool, exc: BaseException | None) -> None:
        if on and exc is not None:
            self._failed(exc)
        elif not on:
            self._set_fault(False)

    def tone(self, audio: bytes, codec: str) -> None:
        threading.Thread(target=self._tone, args=(audio, codec), name="unit-tone", daemon=True).start()

    # ------------------------------------------------------------------ threads

    def _run(self, job: PlayJob, t0: float, stop: threading.Event, at_start: Callable[[], None]) -> None:
        total_ms = job.duration_ms * job.repeat
        t_end = t0 + (total_ms - job.offset_ms) / 1000.0
        with self._lock:
            announced = False
            wait = self._retry[0]
            while not stop.is_set():
                position = job.offset_ms + max(0.0, time.time() - t0) * 1000.0
                if announced and time.time() >= t_end:
                    raise OutputFault("audio_fault", "the sound card did not come back in time")
                try:
                    stream = PlaybackStream(self.target, job.bc)
                except Exception as exc:
                    if not _sound_error(exc):
                        raise
                    self._failed(exc)
                    if time.time() >= t_end:
                        raise OutputFault("audio_fault", str(exc)) from exc
                    stop.wait(wait)
                    wait = min(self._retry[1], wait * 2)
                    continue
                self._set_fault(False)
                if not announced:
                    at_start()
                    announced = True
                    self.starts.append((job.bc, t0))
                    position = job.offset_ms
                try:
                    done = self._feed(stream, job, int(position), max(t0, time.time()), stop)
                except DecodeError as exc:
                    stream.close()
                    raise OutputFault("decode_error", str(exc)) from exc
                except Exception as exc:
                    if not _sound_error(exc):
                        raise
                    stream.close()
                    self._failed(exc)
                    continue
                if done:
                    stream.finish()
                    return
                stream.drop()

    def _failed(self, exc: BaseException) -> None:
        if not self._fault:
            logger.warning("sound card: %s (trying again)", exc)
        self._set_fault(True)

    def _set_fault(self, on: bool) -> None:
        if on != self._fault:
            self._fault = on
            self.on_change()

    def _feed(self, stream: PlaybackStream, job: PlayJob, position_ms: int, at: float,
              stop: threading.Event) -> bool:
        """Silence until ``at``, then the audio from ``position_ms``; False if stopped."""
        blocks = self._blocks(job, position_ms)
        first = next(blocks, b"")  # decoding starts before the wait, never after the instant
        while not stop.is_set():  # measured again after each write: the last one corrects the others
            rest = at - stream.heard_at()
            if rest < 0.0005:
                break
            stream.silence(rest if rest <= BLOCK_S else min(rest - BLOCK_S / 2, BLOCK_S))
        stream.write(self.mixer.apply(first))
        for pcm in blocks:
            if stop.is_set():
                return False
            stream.write(self.mixer.apply(pcm))
        return not stop.is_set()

    def _blocks(self, job: PlayJob, position_ms: int) -> Iterator[bytes]:
        first, offset = divmod(position_ms, job.duration_ms)
        for _ in range(first, job.repeat):
            yield from pcm_blocks(job.audio, job.codec, self.target.rate, offset_ms=offset,
                                  block_s=BLOCK_S)
            offset = 0

    def _tone(self, audio: bytes, codec: str) -> None:
        try:
            stream = PlaybackStream(self.target, "attention")
            for pcm in pcm_blocks(audio, codec, self.target.rate, block_s=BLOCK_S):
                stream.write(self.mixer.apply(pcm))
            stream.finish()
        except DecodeError as exc:
            logger.warning("the attention tone does not decode: %s", exc)
        except Exception as exc:
            if not _sound_error(exc):
                raise
            self._failed(exc)
