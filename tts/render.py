"""Turn bulletin text into encoded audio ready to push to loudspeaker nodes.

Pipeline: check the text (speakable, length) and options → for each engine of the
chain (the preferred one, then the fallbacks): Vietnamese normalisation in that
voice's dialect (ward dictionary first) → cache lookup → synthesis in chunks the
engine accepts → audio pipeline (:mod:`tts.pipeline`) → encode → exact duration →
cache store. An engine that fails hands over to the next one and the result carries
a warning saying so; only when every engine fails is an error raised.
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from tts.audio import OPUS_SAMPLE_RATE, SUPPORTED_CODECS, AudioSegment, encode
from tts.cache import DEFAULT_MAX_BYTES, AudioCache, cache_key
from tts.chunking import split_text
from tts.duration import duration_ms
from tts.engine import SpeechEngine, get_engine
from tts.errors import (
    EmptyTextError,
    EngineError,
    InvalidOptionError,
    SilentSpeechError,
    TextTooLongError,
    TTSError,
)
from tts.pipeline import AudioOptions, finish
from tts.vi import Normalized, normalize
from tts.vi.numbers import Dialect

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
MIN_SPEED, MAX_SPEED = 0.5, 2.0
# Bitrates valid for MPEG-2 layer III, i.e. for 22050/24000 Hz engine output.
MP3_BITRATES_KBPS: tuple[int, ...] = (8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160)
OPUS_BITRATES_KBPS = (6, 256)


@dataclass(frozen=True)
class RenderedAudio:
    """Encoded speech plus what is needed to schedule, verify and explain playback.

    ``text`` is the spoken (normalised) form that was synthesised; ``engine`` is the
    engine actually used, ``requested_engine`` the one asked for; ``warnings`` are for
    the staff (fallbacks, text the voice will misread).
    """

    data: bytes
    codec: str
    sample_rate: int
    bitrate_kbps: int
    duration_ms: int
    sha256: str
    engine: str
    voice: str
    text: str
    warnings: tuple[str, ...] = ()
    requested_engine: str = ""
    dictionary_hits: tuple[str, ...] = ()
    cached: bool = field(default=False, compare=False)

    def __repr__(self) -> str:  # keep logs readable: no raw bytes
        return (
            f"RenderedAudio({self.codec} {self.bitrate_kbps}kbps {self.sample_rate}Hz, "
            f"{self.duration_ms} ms, {len(self.data)} bytes, sha256={self.sha256[:12]}, "
            f"{self.engine}/{self.voice}, {len(self.warnings)} warning(s))"
        )


_STORED = ("codec", "sample_rate", "bitrate_kbps", "duration_ms", "sha256", "engine", "voice", "text")


def clean_text(text: str) -> str:
    """NFC-normalise, drop invisible control/format characters, collapse whitespace."""
    text = unicodedata.normalize("NFC", text)
    text = "".join(ch for ch in text if ch.isspace() or unicodedata.category(ch) not in ("Cc", "Cf"))
    return " ".join(text.split())


def prepare_text(text: str, *, dialect: Dialect = "north",
                 dictionary: Mapping[str, str] | None = None) -> str:
    """The spoken form of ``text`` (see :mod:`tts.vi`)."""
    return normalize(text, dialect=dialect, dictionary=dictionary).text


def _is_speakable(text: str) -> bool:
    return any(unicodedata.category(ch)[0] in ("L", "N") for ch in text)


def _check_options(speed: float, codec: str, bitrate_kbps: int, audio: AudioOptions) -> None:
    if not isinstance(speed, int | float) or not math.isfinite(speed):
        raise InvalidOptionError(f"Speech speed must be a number, got {speed!r}.")
    if not MIN_SPEED <= speed <= MAX_SPEED:
        raise InvalidOptionError(
            f"Speech speed must be between {MIN_SPEED} and {MAX_SPEED} (1.0 is normal), got {speed}."
        )
    if codec not in SUPPORTED_CODECS:
        raise InvalidOptionError(
            f"Unsupported audio codec '{codec}'. Supported: {', '.join(SUPPORTED_CODECS)}."
        )
    if codec == "mp3" and bitrate_kbps not in MP3_BITRATES_KBPS:
        raise InvalidOptionError(
            f"Unsupported MP3 bitrate {bitrate_kbps} kbps. "
            f"Choose one of: {', '.join(map(str, MP3_BITRATES_KBPS))}."
        )
    if codec == "opus" and not OPUS_BITRATES_KBPS[0] <= bitrate_kbps <= OPUS_BITRATES_KBPS[1]:
        raise InvalidOptionError(f"Opus bitrate must be between 6 and 256 kbps, got {bitrate_kbps}.")
    audio.validate()


def _from_cache(metadata: dict[str, Any], data: bytes) -> RenderedAudio | None:
    try:
        audio = RenderedAudio(data=data, **{k: metadata[k] for k in _STORED})
    except (KeyError, TypeError):
        return None
    if not all(isinstance(v, int) for v in (audio.sample_rate, audio.bitrate_kbps, audio.duration_ms)):
        return None
    return audio


@dataclass
class _Job:
    raw: str
    speed: float
    codec: str
    bitrate_kbps: int
    audio: AudioOptions
    dictionary: Mapping[str, str] | None
    cache: AudioCache | None
    normalized: dict[Dialect, Normalized] = field(default_factory=dict)

    def spoken(self, dialect: Dialect) -> Normalized:
        if dialect not in self.normalized:
            self.normalized[dialect] = normalize(self.raw, dialect=dialect, dictionary=self.dictionary)
        return self.normalized[dialect]


def render(
    text: str,
    *,
    voice: str = "vi",
    speed: float = 1.0,
    bitrate_kbps: int = 32,
    engine: str = "espeak-ng",
    cache_dir: Path | None = None,
    fallback: Sequence[str] = (),
    codec: str = "mp3",
    audio: AudioOptions | None = None,
    dictionary: Mapping[str, str] | None = None,
    max_chars: int = MAX_TEXT_CHARS,
    cache_max_bytes: int = DEFAULT_MAX_BYTES,
) -> RenderedAudio:
    """Normalise and synthesise ``text``, finish and encode it for the loudspeaker nodes.

    ``fallback`` names engines tried, in order, when ``engine`` fails. Raises
    :class:`EmptyTextError`, :class:`TextTooLongError`, :class:`UnknownVoiceError`
    (for the preferred engine), :class:`InvalidOptionError` or :class:`EngineError`
    (every engine failed); all are subclasses of :class:`TTSError`.
    """
    if not isinstance(text, str):
        raise TypeError(f"text must be str, got {type(text).__name__}")
    cleaned = clean_text(text)
    if not _is_speakable(cleaned):
        raise EmptyTextError()
    if len(cleaned) > max_chars:
        raise TextTooLongError(len(cleaned), max_chars)
    options = audio or AudioOptions()
    _check_options(speed, codec, bitrate_kbps, options)
    cache = AudioCache(cache_dir, max_bytes=cache_max_bytes) if cache_dir is not None else None
    job = _Job(text, speed, codec, bitrate_kbps, options, dictionary, cache)

    names = list(dict.fromkeys([engine, *fallback]))
    failures: list[tuple[str, TTSError]] = []
    accent: Dialect = "north"
    for position, name in enumerate(names):
        try:
            speech_engine = get_engine(name)
            if position == 0:
                voice_name = speech_engine.resolve_voice(voice)  # a wrong voice is the caller's error
                accent = speech_engine.accent(voice_name)
            else:
                voice_name = speech_engine.voice_for_accent(accent)
            result = _render_with(speech_engine, voice_name, job)
        except EngineError as exc:
            if len(names) == 1:
                raise
            logger.warning("speech engine %s failed: %s", name, exc)
            failures.append((name, exc))
            continue
        warnings = [*job.spoken(speech_engine.accent(voice_name)).warnings]
        if failures:
            warnings += [f"fell back from {n} to {speech_engine.name}: {e}" for n, e in failures]
        return replace(result, warnings=tuple(warnings), requested_engine=engine)
    if all(isinstance(e, SilentSpeechError) for _, e in failures):
        raise SilentSpeechError(engine)  # every engine read silence: the text's problem
    reasons = "; ".join(f"{n}: {e}" for n, e in failures)
    raise EngineError(f"No speech engine could read this bulletin ({reasons}).", engine=engine)


def _render_with(speech_engine: SpeechEngine, voice: str, job: _Job) -> RenderedAudio:
    spoken = job.spoken(speech_engine.accent(voice))
    if not _is_speakable(spoken.text):
        raise EmptyTextError()
    key = cache_key(
        text=spoken.text, engine=speech_engine.name, voice=voice, speed=job.speed, codec=job.codec,
        bitrate_kbps=job.bitrate_kbps, extra=job.audio.key(),
    )  # fmt: skip
    hits = spoken.dictionary_hits
    if job.cache is not None:
        entry = job.cache.get(key)
        hit = _from_cache(entry.metadata, entry.data) if entry else None
        if hit is not None:
            logger.info("tts cache hit %s (%d ms of audio)", key[:12], hit.duration_ms)
            return replace(hit, dictionary_hits=hits, cached=True)

    started = time.perf_counter()
    segment = _synthesize(speech_engine, spoken.text, voice, job.speed)
    synth_s = time.perf_counter() - started
    tempo = 1.0 if speech_engine.supports_speed else job.speed
    segment = finish(segment, job.audio, tempo=tempo)
    data = encode(segment, codec=job.codec, bitrate_kbps=job.bitrate_kbps)
    result = RenderedAudio(
        data=data, codec=job.codec,
        sample_rate=OPUS_SAMPLE_RATE if job.codec == "opus" else int(segment.frame_rate),
        bitrate_kbps=job.bitrate_kbps, duration_ms=duration_ms(data, job.codec),
        sha256=hashlib.sha256(data).hexdigest(), engine=speech_engine.name, voice=voice, text=spoken.text,
        dictionary_hits=hits,
    )  # fmt: skip
    logger.info(
        "rendered %d chars with %s/%s: %d ms audio, %d bytes, synth %.3f s, total %.3f s",
        len(spoken.text), result.engine, result.voice, result.duration_ms, len(data), synth_s,
        time.perf_counter() - started,
    )  # fmt: skip
    if job.cache is not None:
        meta = {k: v for k, v in asdict(result).items() if k in _STORED}
        try:
            job.cache.put(key, data, meta)
        except OSError as exc:  # a full or read-only disk must not stop the broadcast
            logger.warning("could not store rendered audio in cache %s: %s", job.cache.directory, exc)
    return result


def _synthesize(speech_engine: SpeechEngine, text: str, voice: str, speed: float) -> AudioSegment:
    engine_name = speech_engine.name
    pieces: list[AudioSegment] = []
    for chunk in split_text(text, speech_engine.max_chars):
        try:
            segment = speech_engine.synthesize(chunk, voice=voice, speed=speed)
        except TTSError:
            raise
        except Exception as exc:
            logger.exception("speech engine %s crashed", engine_name)
            raise EngineError(f"The speech engine '{engine_name}' failed: {exc}", engine=engine_name) from exc
        if not isinstance(segment, AudioSegment) or segment.frame_count() == 0:
            raise EngineError(
                f"The speech engine '{engine_name}' returned no audio for this text.", engine=engine_name
            )
        pieces.append(segment)
    if not pieces:
        raise EngineError(f"The speech engine '{engine_name}' got no text to read.", engine=engine_name)
    whole = pieces[0]
    for piece in pieces[1:]:
        whole = whole + piece
    if whole.rms == 0:
        raise SilentSpeechError(engine_name)
    return whole

