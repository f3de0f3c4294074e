"""docs/protocol.md §3 "what a unit keeps": *when playback starts the unit notes it in flash*, so a
unit that loses power while it plays finishes that broadcast ``failed`` / ``power_off`` after the
boot and never starts it again. A real power cut writes nothing at the end, so the note is written
as the sound starts: :class:`NotedOutput` wraps the sound card's output and stores the broadcast id
in the flash item ``playing`` at the instant it starts, clearing it when the playback is stopped or
fails; after a playback that ran to its end the note stays (the finished memory has it by then,
which :func:`power_cut` reads as "not cut")."""

from __future__ import annotations

import logging
from collections.abc import Callable

from devices.protocol import AckState, FinishedLog
from firmware_sim.flash import Flash
from firmware_sim.hardware import AudioOutput, PlayJob, Sink

logger = logging.getLogger(__name__)

PLAYING = "playing"  # flash: the broadcast whose sound has started and not been stopped


class NotedOutput:
    """:class:`~firmware_sim.hardware.AudioOutput` that notes in flash what is playing."""

    def __init__(self, inner: AudioOutput, flash: Flash) -> None:
        self._inner = inner
        self._flash = flash

    @property
    def lead_ms(self) -> int:
        return self._inner.lead_ms

    async def play(self, job: PlayJob, started: Callable[[], None]) -> None:
        def noted() -> None:
            self._flash.put(PLAYING, job.bc.encode())
            started()

        try:
            await self._inner.play(job, noted)
        except BaseException:  # stopped, pre-empted, power off, the card lost for good: not playing
            self._flash.put(PLAYING, b"")
            raise

    def pcm_sink(self, rate: int, name: str) -> Sink | None:
        return self._inner.pcm_sink(rate, name)

    def stream_sink(self, name: str) -> Sink | None:
        return self._inner.stream_sink(name)

    def tone(self, audio: bytes, codec: str) -> None:
        self._inner.tone(audio, codec)

    def set_volume(self, level: int) -> None:
        self._inner.set_volume(level)

    def faults(self) -> list[str]:
        return self._inner.faults()


def power_cut(flash: Flash, finished: FinishedLog) -> str:
    """At boot: the broadcast the power cut off while it played (now ``failed`` / ``power_off`` in
    the finished memory), or ''."""
    bc = (flash.get(PLAYING) or b"").decode(errors="replace")
    if not bc or bc in finished:
        return ""
    finished.finish(bc, AckState.FAILED, "power_off")
    flash.put(PLAYING, b"")
    logger.warning("%s was playing when the power went: failed/power_off, never played again", bc)
    return bc
