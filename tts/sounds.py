"""The station's own sounds, synthesised here (nothing downloaded, nothing licensed).

* :func:`intro_chime` / :func:`outro_chime` — the *nhạc hiệu*: four bell-like notes
  rising (C5 E5 G5 C6) before the bulletin and falling after it;
* :func:`attention_tone` — for emergencies: a two-tone 880/660 Hz alert, three times;
* :func:`unit_attention_tone` — the short one a unit keeps in flash and sounds at once on an
  emergency, before the speech has arrived (docs/protocol.md §1 config ``attention``).

All are deterministic and generated at the speech's sample rate.
"""

from __future__ import annotations

import functools
from typing import cast

from pydub.generators import Sine

from tts.audio import AudioSegment

__all__ = ["UNIT_TONE_MS", "attention_tone", "intro_chime", "outro_chime", "unit_attention_tone"]

_NOTES = (523.25, 659.25, 783.99, 1046.50)  # C5 E5 G5 C6
NOTE_MS, NOTE_STEP_MS, RING_MS = 900, 260, 900


def _bell(freq: float, rate: int, level_dbfs: float) -> AudioSegment:
    tone = Sine(freq, sample_rate=rate).to_audio_segment(duration=NOTE_MS, volume=level_dbfs)
    overtone = Sine(freq * 2, sample_rate=rate).to_audio_segment(duration=NOTE_MS, volume=level_dbfs - 12)
    bell = tone.overlay(overtone).fade_in(8).fade_out(NOTE_MS - 8)
    return cast(AudioSegment, bell.set_channels(1).set_sample_width(2))


@functools.lru_cache(maxsize=16)
def _chime(rate: int, level_dbfs: float, rising: bool) -> AudioSegment:
    notes = _NOTES if rising else tuple(reversed(_NOTES))
    total = NOTE_STEP_MS * (len(notes) - 1) + NOTE_MS + RING_MS
    out = AudioSegment.silent(duration=total, frame_rate=rate).set_sample_width(2)
    for i, freq in enumerate(notes):
        out = out.overlay(_bell(freq, rate, level_dbfs), position=i * NOTE_STEP_MS)
    return cast(AudioSegment, out)


def intro_chime(rate: int, level_dbfs: float = -18.0) -> AudioSegment:
    """Rising four-note chime, about 2.7 s."""
    return _chime(rate, level_dbfs, True)


def outro_chime(rate: int, level_dbfs: float = -18.0) -> AudioSegment:
    """Falling four-note chime, about 2.7 s."""
    return _chime(rate, level_dbfs, False)


@functools.lru_cache(maxsize=16)
def attention_tone(rate: int, level_dbfs: float = -18.0) -> AudioSegment:
    """Two-tone alert (880/660 Hz, 250 ms each) ×4, three bursts: about 6.4 s."""
    peak = min(-1.0, level_dbfs + 3)  # a sine's RMS is 3 dB under its peak: as loud as the speech
    hi = Sine(880, sample_rate=rate).to_audio_segment(duration=250, volume=peak).fade_in(5).fade_out(5)
    lo = Sine(660, sample_rate=rate).to_audio_segment(duration=250, volume=peak).fade_in(5).fade_out(5)
    burst = (hi + lo) * 4
    gap = AudioSegment.silent(duration=200, frame_rate=rate)
    out = burst + gap + burst + gap + burst
    return cast(AudioSegment, out.set_channels(1).set_sample_width(2))


#: Length of :func:`unit_attention_tone` (ms).
UNIT_TONE_MS = 1000


@functools.lru_cache(maxsize=4)
def unit_attention_tone(rate: int = 22050, level_dbfs: float = -18.0) -> AudioSegment:
    """The unit's own attention tone: the 880/660 Hz pair of :func:`attention_tone` twice, 1 s
    (small enough for the unit's retained config: ~4 KB of MP3)."""
    peak = min(-1.0, level_dbfs + 3)
    hi = Sine(880, sample_rate=rate).to_audio_segment(duration=250, volume=peak).fade_in(5).fade_out(5)
    lo = Sine(660, sample_rate=rate).to_audio_segment(duration=250, volume=peak).fade_in(5).fade_out(5)
    return cast(AudioSegment, ((hi + lo) * 2).set_channels(1).set_sample_width(2))
