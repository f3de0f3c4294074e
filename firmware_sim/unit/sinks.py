"""Sound that arrives as it plays, on the unit agent's sound card: live frames (16-bit PCM at the
session's rate) and relay streams (MP3 bytes from the station, decoded by miniaudio as they come).

Each sink is a thread with a queue: the event loop hands it data and never waits; the thread
writes to its own playback stream (so it mixes with, and never holds up, a bulletin's stream).
The queue is bounded: a sink that falls behind (its card gone) drops the oldest data rather than
grow. A card that goes away is reported by the output's fault (``audio_device``) and the sink
opens a stream again with the next data.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from typing import Any

from firmware_sim.unit.mixer import Mixer
from firmware_sim.unit.stream import PlaybackStream, PulseTarget

logger = logging.getLogger(__name__)

RELAY_BUFFER_S = 1.0  # a relay is not on an instant: 1 s queued in the server rides out a busy CPU
QUEUE_ITEMS = 256  # live: 256 frames of 20 ms; relay: 256 reads of up to 8 KB


class _Queued:
    def __init__(self) -> None:
        self._q: queue.Queue[bytes | None] = queue.Queue(QUEUE_ITEMS)
        self.dropped = 0

    def write(self, data: bytes) -> None:
        while True:
            try:
                self._q.put_nowait(data)
                return
            except queue.Full:
                try:
                    self._q.get_nowait()
                    self.dropped += 1
                except queue.Empty:
                    pass

    def close(self) -> None:
        self.write(b"")  # wakes the thread; the flag below ends it
        self._closed = True

    _closed = False


class PcmSink(_Queued):
    """Live audio: PCM frames written to a stream at the session's rate."""

    def __init__(self, target: PulseTarget, rate: int, name: str, mixer: Mixer,
                 fault: Callable[[bool, BaseException | None], None]) -> None:
        super().__init__()
        self._target = PulseTarget(server=target.server, sink=target.sink, rate=rate)
        self._name, self._mixer, self._fault = name, mixer, fault
        threading.Thread(target=self._run, name=f"unit-{name}", daemon=True).start()

    def _run(self) -> None:
        stream: PlaybackStream | None = None
        try:
            while not self._closed:
                data = self._q.get()
                if not data:
                    continue
                try:
                    if stream is None:
                        stream = PlaybackStream(self._target, self._name)
                        self._fault(False, None)
                    stream.write(self._mixer.apply(data))
                except Exception as exc:  # noqa: BLE001 - the card went away: reported, opened again
                    if stream is not None:
                        stream.close()
                    stream = None
                    self._fault(True, exc)
        finally:
            if stream is not None:
                stream.finish()


class StreamSink(_Queued):
    """A relay: encoded bytes (MP3), decoded as they come and played."""

    def __init__(self, target: PulseTarget, name: str, mixer: Mixer,
                 fault: Callable[[bool, BaseException | None], None]) -> None:
        super().__init__()
        self._target, self._name, self._mixer, self._fault = target, name, mixer, fault
        self.decode_error = ""
        threading.Thread(target=self._run, name=f"unit-{name}", daemon=True).start()

    def _source(self) -> Any:
        import miniaudio

        sink = self

        class Source(miniaudio.StreamableSource):  # type: ignore[misc]
            def __init__(self) -> None:
                self.buf = b""

            def read(self, num_bytes: int) -> bytes:
                """What has come, up to ``num_bytes``; waits only while nothing has (b"" = the end)."""
                while not self.buf and not sink._closed:
                    self.buf = sink._q.get() or b""
                while len(self.buf) < num_bytes:
                    try:
                        more = sink._q.get_nowait()
                    except queue.Empty:
                        break
                    self.buf += more or b""
                out, self.buf = self.buf[:num_bytes], self.buf[num_bytes:]
                return out

        return Source()

    def _run(self) -> None:
        import miniaudio

        rate = self._target.rate
        stream: PlaybackStream | None = None
        try:
            for block in miniaudio.stream_any(self._source(), source_format=miniaudio.FileFormat.MP3,
                                              output_format=miniaudio.SampleFormat.SIGNED16, nchannels=1,
                                              sample_rate=rate, frames_to_read=rate // 50):
                if self._closed:
                    break
                try:
                    if stream is None:  # a relay may lag: a deep buffer that fills before it plays
                        stream = PlaybackStream(self._target, self._name, buffer_s=RELAY_BUFFER_S)
                        self._fault(False, None)
                    stream.write(self._mixer.apply(block.tobytes()))
                except Exception as exc:  # noqa: BLE001 - the card went away: reported, opened again
                    if stream is not None:
                        stream.close()
                    stream = None
                    self._fault(True, exc)
        except miniaudio.MiniaudioError as exc:
            self.decode_error = str(exc)
            logger.warning("%s: the stream does not decode as MP3: %s", self._name, exc)
        finally:
            if stream is not None:
                stream.drop()
