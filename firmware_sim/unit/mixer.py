"""The unit's volume: the sound server's mixer (``pactl``), ALSA's (``amixer``), or a gain
applied to the samples before they are written (boards whose card has no mixer control)."""

from __future__ import annotations

import audioop  # stdlib to 3.12; the audioop-lts package from 3.13 (a dependency there)
import logging
import shutil
import subprocess
from typing import Protocol

logger = logging.getLogger(__name__)


class Mixer(Protocol):
    name: str

    def set(self, level: int) -> None:
        """0..100."""
        ...

    def apply(self, pcm: bytes) -> bytes:
        """The samples as they must be written (a hardware mixer leaves them as they are)."""
        ...


class SoftwareGain:
    """Volume as a gain on the samples (linear in the level, 100 = unchanged)."""

    name = "software"

    def __init__(self, level: int = 70) -> None:
        self.level = level

    def set(self, level: int) -> None:
        self.level = max(0, min(100, level))

    def apply(self, pcm: bytes) -> bytes:
        if self.level >= 100:
            return pcm
        return audioop.mul(pcm, 2, self.level / 100.0)


class CommandMixer:
    """A hardware mixer driven by its command-line tool: the samples go out unchanged."""

    def __init__(self, name: str, argv: list[str]) -> None:
        self.name = name
        self._argv = argv  # "{level}" is replaced by the level
        self.level: int | None = None
        self.error = ""

    def set(self, level: int) -> None:
        level = max(0, min(100, level))
        argv = [a.replace("{level}", str(level)) for a in self._argv]
        try:
            subprocess.run(argv, check=True, capture_output=True, timeout=5)
        except (OSError, subprocess.SubprocessError) as exc:
            self.error = str(exc)
            logger.warning("volume %d via %s failed: %s", level, self.name, exc)
            return
        self.level, self.error = level, ""

    def apply(self, pcm: bytes) -> bytes:
        return pcm


def make_mixer(kind: str, *, sink: str | None = None, server: str | None = None,
               control: str = "Master") -> Mixer:
    """``software`` | ``pulse`` (``pactl set-sink-volume``) | ``alsa`` (``amixer sset``)."""
    if kind == "software":
        return SoftwareGain()
    if kind == "pulse":
        tool = shutil.which("pactl") or "pactl"
        head = [tool] + (["--server", server] if server else [])
        return CommandMixer("pulse", [*head, "set-sink-volume", sink or "@DEFAULT_SINK@", "{level}%"])
    if kind == "alsa":
        return CommandMixer("alsa", [shutil.which("amixer") or "amixer", "-q", "sset", control, "{level}%"])
    raise ValueError(f"unknown mixer {kind!r} (software, pulse or alsa)")
