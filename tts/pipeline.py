"""The audio pipeline after synthesis: trim, tempo, loudness, repeats, chimes, padding.

Order: trim edge silence → time-stretch (engines that ignore ``speed``) → loudness to
the target → N repeats with a gap → attention tone (emergencies) or intro chime →
outro chime → pad both ends. Encoding is done by the caller.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, cast

from tts.audio import PAD_MS, AudioSegment, change_tempo, tidy
from tts.errors import InvalidOptionError
from tts.sounds import attention_tone, intro_chime, outro_chime

__all__ = ["AudioOptions", "finish", "loudness_dbfs", "normalize_loudness"]

ACTIVE_WINDOW_MS = 50
ACTIVE_FLOOR_DBFS = -45.0
PEAK_CEILING_DBFS = -1.0
MAX_REPEAT = 5


@dataclass(frozen=True)
class AudioOptions:
    """How the speech is finished. ``loudness_dbfs=None`` leaves the level as synthesised."""

    loudness_dbfs: float | None = -18.0
    chime: bool = False
    attention: bool = False
    repeat: int = 1
    gap_ms: int = 1500
    pad_ms: int = PAD_MS

    def validate(self) -> None:
        if self.loudness_dbfs is not None and not (
            math.isfinite(self.loudness_dbfs) and -40.0 <= self.loudness_dbfs <= -6.0
        ):
            raise InvalidOptionError(
                f"Loudness target must be between -40 and -6 dBFS, got {self.loudness_dbfs}."
            )
        if not 1 <= self.repeat <= MAX_REPEAT:
            raise InvalidOptionError(f"Repeat must be between 1 and {MAX_REPEAT}, got {self.repeat}.")
        if not 0 <= self.gap_ms <= 10_000 or not 0 <= self.pad_ms <= 5_000:
            raise InvalidOptionError("Gap must be 0–10,000 ms and padding 0–5,000 ms.")

    def key(self) -> dict[str, Any]:
        """Everything that changes the audio, for the cache key."""
        return asdict(self)


def loudness_dbfs(segment: AudioSegment) -> float:
    """RMS level of the parts that carry sound (50 ms windows above -45 dBFS), in dBFS."""
    step = ACTIVE_WINDOW_MS
    squares: list[float] = []
    full = float(1 << (8 * segment.sample_width - 1))
    for start in range(0, len(segment) - step + 1, step):
        rms = segment[start:start + step].rms
        if rms and 20 * math.log10(rms / full) > ACTIVE_FLOOR_DBFS:
            squares.append(float(rms) ** 2)
    if not squares:
        return segment.dBFS if segment.rms else -math.inf
    return 20 * math.log10(math.sqrt(sum(squares) / len(squares)) / full)


def normalize_loudness(segment: AudioSegment, target_dbfs: float) -> AudioSegment:
    """Gain so the active speech sits at ``target_dbfs``, never pushing peaks above -1 dBFS."""
    level = loudness_dbfs(segment)
    if not math.isfinite(level):
        return segment
    gain = min(target_dbfs - level, PEAK_CEILING_DBFS - segment.max_dBFS)
    return cast(AudioSegment, segment.apply_gain(gain))


def finish(speech: AudioSegment, options: AudioOptions, *, tempo: float = 1.0) -> AudioSegment:
    """Apply the pipeline to raw engine output (mono 16-bit after this)."""
    body = tidy(speech, pad_ms=0)
    if abs(tempo - 1.0) >= 1e-3:
        body = change_tempo(body, tempo)
    if options.loudness_dbfs is not None:
        body = normalize_loudness(body, options.loudness_dbfs)
    rate = int(body.frame_rate)
    level = options.loudness_dbfs if options.loudness_dbfs is not None else -18.0
    gap = AudioSegment.silent(duration=options.gap_ms, frame_rate=rate)
    out = body
    for _ in range(options.repeat - 1):
        out = out + gap + body
    if options.attention:
        out = attention_tone(rate, level) + AudioSegment.silent(duration=500, frame_rate=rate) + out
    elif options.chime:
        out = intro_chime(rate, level) + out
    if options.chime:
        out = out + AudioSegment.silent(duration=400, frame_rate=rate) + outro_chime(rate, level)
    pad = AudioSegment.silent(duration=options.pad_ms, frame_rate=rate)
    return cast(AudioSegment, pad + out + pad)
