"""The ports between a unit's contract logic and its hardware: where the sound goes, what switches
the amplifier, what the board reports.

The simulator (:class:`~firmware_sim.node.SimNode` alone) "plays" by sleeping and has no hardware;
``loaphuong unit`` (:mod:`firmware_sim.unit`) gives the same node a real sound card, a power line
and a board — one implementation of the node-side rules, two sets of outputs. Everything here is
small on purpose: a driver implements a handful of methods and the node never asks more of it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from firmware_sim.flash import Flash

#: A driver's name for "there is no such part on this board" (reported, never an error).
NONE = "none"


@dataclass(frozen=True)
class PlayJob:
    """One playback the player hands to the output."""

    bc: str
    audio: bytes
    codec: str
    duration_ms: int  # one pass of the file
    repeat: int
    offset_ms: int  # start this far into the whole playback (all repeats)
    start_in_s: float  # the sound must start this many seconds from now (0 = at once)


class OutputFault(Exception):
    """The output could not play a job to its end (its sound card stayed gone, or the file does not
    decode): the player acks ``failed`` with :attr:`reason`."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


class Sink(Protocol):
    """Sound that arrives as it plays (live frames, a relay stream): written from the event loop,
    never blocking it (the output queues and plays in its own thread)."""

    def write(self, data: bytes) -> None: ...

    def close(self) -> None: ...


class AudioOutput(Protocol):
    """Where a unit's sound goes."""

    def pcm_sink(self, rate: int, name: str) -> Sink | None:
        """A sink for 16-bit mono PCM at ``rate`` (live audio); None if this output plays none."""
        ...

    def stream_sink(self, name: str) -> Sink | None:
        """A sink for an encoded stream (a relay's MP3) that the output decodes as it comes."""
        ...

    @property
    def lead_ms(self) -> int:
        """How long before a job's instant the player must hand it over (to open and fill the device)."""
        ...

    async def play(self, job: PlayJob, started: Callable[[], None]) -> None:
        """Play ``job`` from its instant to its end; call ``started`` when the sound starts. Cancelling
        the task stops the sound at once. Raises :class:`OutputFault` when it cannot go on."""
        ...

    def tone(self, audio: bytes, codec: str) -> None:
        """Sound ``audio`` now, over whatever plays (the emergency attention tone)."""
        ...

    def set_volume(self, level: int) -> None:
        """0..100."""
        ...

    def faults(self) -> list[str]:
        """What is wrong with the output now (telemetry ``faults``), e.g. ``["audio_device"]``."""
        ...


class PowerDriver(Protocol):
    """What switches the amplifier (a GPIO line, a USB relay, nothing)."""

    name: str

    def set(self, on: bool) -> None: ...

    def faults(self) -> list[str]:
        """The amplifier's fault input and the driver's own state, e.g. ``["amp_fault"]``."""
        ...


class Board(Protocol):
    """What the board itself reports in telemetry (docs/protocol.md §1)."""

    def faults(self) -> list[str]: ...

    def storage_free_kb(self) -> int | None: ...

    def ip(self) -> str: ...

    def temp_c(self) -> float | None: ...


@dataclass
class Hardware:
    """A real unit's parts, handed to :class:`~firmware_sim.node.SimNode` as one bundle."""

    output: AudioOutput
    amp: PowerDriver
    board: Board
    flash: Flash
    hw: str  # NodeState ``hw``: what the unit is, e.g. "linux-aarch64"


class SleepOutput:
    """The simulator's output: the sound "plays" for its duration × ``time_scale``, silently."""

    lead_ms = 0

    def __init__(self, time_scale: float = 1.0) -> None:
        self.time_scale = time_scale

    async def play(self, job: PlayJob, started: Callable[[], None]) -> None:
        started()
        await asyncio.sleep((job.duration_ms * job.repeat - job.offset_ms) * self.time_scale / 1000.0)

    def tone(self, audio: bytes, codec: str) -> None:
        return None

    def set_volume(self, level: int) -> None:
        return None

    def faults(self) -> list[str]:
        return []

    def pcm_sink(self, rate: int, name: str) -> Sink | None:
        return None

    def stream_sink(self, name: str) -> Sink | None:
        return None


class NoPower:
    """A board without a power line: the amplifier is always on; ``power`` only changes what the unit
    reports and whether it plays (docs/protocol.md §2 ``power``)."""

    name = NONE

    def set(self, on: bool) -> None:
        return None

    def faults(self) -> list[str]:
        return []


__all__ = ["NONE", "AudioOutput", "Board", "Hardware", "NoPower", "OutputFault", "PlayJob", "PowerDriver",
           "Sink", "SleepOutput"]
