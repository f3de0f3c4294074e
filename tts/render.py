"""Turn bulletin text into encoded audio ready to push to loudspeaker nodes.

Pipeline: clean (NFC, drop control/format characters, collapse whitespace) ->
validate (speakable, length) -> :func:`prepare_text` hook -> cache lookup ->
engine synthesis -> trim/pad -> MP3 encode -> cache store.
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
import unicodedata
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from tts.audio import AudioSegment, encode, tidy
from tts.cache import AudioCache, cache_key
from tts.engine import SpeechEngine, get_engine
from tts.errors import (
    EmptyTextError,
    EngineError,
    InvalidOptionError,
    TextTooLongError,
    TTSError,
)

__all__ = [
    "MAX_TEXT_CHARS",
    "MP3_BITRATES_KBPS",
    "RenderedAudio",
    "clean_text",
    "prepare_text",
    "render",
]

logger = logging.getLogger(__name__)

MAX_TEXT_CHARS = 5000
CODEC = "mp3"
MIN_SPEED, MAX_SPEED = 0.5, 2.0
# Bitrates valid for MPEG-2 layer III, i.e. for 22050/24000 Hz engine output.
MP3_BITRATES_KBPS: tuple[int, ...] = (8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160)


@dataclass(frozen=True)
class RenderedAudio:
    """Encoded speech plus what is needed to schedule and verify playback."""

    data: bytes
    codec: str
    sample_rate: int
    bitrate_kbps: int
    duration_ms: int
    sha256: str
    engine: str
    voice: str
    text: str

    def __repr__(self) -> str:  # keep logs readable: no raw bytes
        return (
            f"RenderedAudio({self.codec} {self.bitrate_kbps}kbps {self.sample_rate}Hz, "
            f"{self.duration_ms} ms, {len(self.data)} bytes, sha256={self.sha256[:12]}, "
            f"{self.engine}/{self.voice})"
        )


def clean_text(text: str) -> str:
    """NFC-normalise, drop invisible control/format characters, collapse whitespace."""
    text = unicodedata.normalize("NFC", text)
    text = "".join(ch for ch in text if ch.isspace() or unicodedata.category(ch) not in ("Cc", "Cf"))
    return " ".join(text.split())


def prepare_text(text: str) -> str:
    """Hook for spoken-form normalisation (numbers, dates, units...).

    Currently the identity; Vietnamese number/date expansion comes later.
    """
    return text


def _is_speakable(text: str) -> bool:
    return any(unicodedata.category(ch)[0] in ("L", "N") for ch in text)


def _check_options(speed: float, bitrate_kbps: int) -> None:
    if not isinstance(speed, int | float) or not math.isfinite(speed):
        raise InvalidOptionError(f"Speech speed must be a number, got {speed!r}.")
    if not MIN_SPEED <= speed <= MAX_SPEED:
        raise InvalidOptionError(
            f"Speech speed must be between {MIN_SPEED} and {MAX_SPEED} (1.0 is normal), got {speed}."
        )
    if bitrate_kbps not in MP3_BITRATES_KBPS:
        raise InvalidOptionError(
            f"Unsupported MP3 bitrate {bitrate_kbps} kbps. "
            f"Choose one of: {', '.join(map(str, MP3_BITRATES_KBPS))}."
        )


def _from_cache(metadata: dict[str, Any], data: bytes) -> RenderedAudio | None:
    try:
        values = {f.name: metadata[f.name] for f in fields(RenderedAudio) if f.name != "data"}
        audio = RenderedAudio(data=data, **values)
    except (KeyError, TypeError):
        return None
    int_fields = (audio.sample_rate, audio.bitrate_kbps, audio.duration_ms)
    if not all(isinstance(v, int) for v in int_fields):
        return None
    return audio


def render(
    text: str,
    *,
    voice: str = "vi",
    speed: float = 1.0,
    bitrate_kbps: int = 32,
    engine: str = "espeak-ng",
    cache_dir: Path | None = None,
) -> RenderedAudio:
    """Synthesise ``text`` and encode it for the loudspeaker nodes.

    Raises :class:`EmptyTextError`, :class:`TextTooLongError`,
    :class:`UnknownVoiceError`, :class:`InvalidOptionError` or
    :class:`EngineError` (all subclasses of :class:`TTSError`).
    """
    if not isinstance(text, str):
        raise TypeError(f"text must be str, got {type(text).__name__}")
    cleaned = clean_text(text)
    if not _is_speakable(cleaned):
        raise EmptyTextError()
    if len(cleaned) > MAX_TEXT_CHARS:
        raise TextTooLongError(len(cleaned), MAX_TEXT_CHARS)
    _check_options(speed, bitrate_kbps)
    speech_engine = get_engine(engine)
    voice_name = speech_engine.resolve_voice(voice)
    spoken = prepare_text(cleaned)

    key = cache_key(
        text=spoken, engine=speech_engine.name, voice=voice_name,
        speed=speed, codec=CODEC, bitrate_kbps=bitrate_kbps,
    )  # fmt: skip
    cache = AudioCache(cache_dir) if cache_dir is not None else None
    if cache is not None:
        entry = cache.get(key)
        hit = _from_cache(entry.metadata, entry.data) if entry else None
        if hit is not None:
            logger.info("tts cache hit %s (%d ms of audio)", key[:12], hit.duration_ms)
            return hit

    started = time.perf_counter()
    segment = _synthesize(speech_engine, spoken, voice_name, speed)
    synth_s = time.perf_counter() - started
    segment = tidy(segment)
    data = encode(segment, codec=CODEC, bitrate_kbps=bitrate_kbps)
    total_s = time.perf_counter() - started
    audio = RenderedAudio(
        data=data,
        codec=CODEC,
        sample_rate=int(segment.frame_rate),
        bitrate_kbps=bitrate_kbps,
        duration_ms=len(segment),
        sha256=hashlib.sha256(data).hexdigest(),
        engine=speech_engine.name,
        voice=voice_name,
        text=spoken,
    )
    logger.info(
        "rendered %d chars with %s/%s: %d ms audio, %d bytes, synth %.3f s, total %.3f s",
        len(spoken), audio.engine, audio.voice, audio.duration_ms, len(data), synth_s, total_s,
    )  # fmt: skip
    if cache is not None:
        meta = {k: v for k, v in asdict(audio).items() if k != "data"}
        try:
            cache.put(key, data, meta)
        except OSError as exc:  # a full or read-only disk must not stop the broadcast
            logger.warning("could not store rendered audio in cache %s: %s", cache_dir, exc)
    return audio


def _synthesize(speech_engine: SpeechEngine, text: str, voice: str, speed: float) -> AudioSegment:
    engine_name = speech_engine.name
    try:
        segment = speech_engine.synthesize(text, voice=voice, speed=speed)
    except TTSError:
        raise
    except Exception as exc:
        logger.exception("speech engine %s crashed", engine_name)
        raise EngineError(f"The speech engine '{engine_name}' failed: {exc}", engine=engine_name) from exc
    if not isinstance(segment, AudioSegment) or segment.frame_count() == 0:
        raise EngineError(
            f"The speech engine '{engine_name}' returned no audio for this text.",
            engine=engine_name,
        )
    if segment.rms == 0:
        raise EngineError(
            f"The speech engine '{engine_name}' returned only silence for this text.",
            engine=engine_name,
        )
    return segment
