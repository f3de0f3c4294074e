"""PCM handling and MP3 encoding/decoding for loudspeaker nodes.

ffmpeg is taken from ``PATH`` if present, otherwise from the ``imageio-ffmpeg``
wheel. pydub is imported here (with its "ffmpeg not found" import warning
silenced) and the rest of the package imports ``AudioSegment`` from this module.
"""

from __future__ import annotations

import functools
import io
import logging
import shutil
import struct
import subprocess
import warnings
from typing import cast

from tts.errors import EngineError, InvalidOptionError

with warnings.catch_warnings():
    # pydub looks for ffmpeg at import time and warns when it is not on PATH;
    # we point it at a real binary ourselves in ffmpeg_path().
    warnings.filterwarnings("ignore", message="Couldn't find ffmpeg or avconv", category=RuntimeWarning)
    warnings.filterwarnings("ignore", message="'audioop' is deprecated", category=DeprecationWarning)
    from pydub import AudioSegment
    from pydub.exceptions import CouldntEncodeError
    from pydub.silence import detect_leading_silence

__all__ = [
    "OPUS_SAMPLE_RATE",
    "PAD_MS",
    "SUPPORTED_CODECS",
    "AudioSegment",
    "change_tempo",
    "decode",
    "decode_audio",
    "encode",
    "ffmpeg_path",
    "segment_from_wav",
    "tidy",
]

logger = logging.getLogger(__name__)

SUPPORTED_CODECS: tuple[str, ...] = ("mp3", "opus")
OPUS_SAMPLE_RATE = 24000
"""libopus takes 8/12/16/24/48 kHz input; speech engines give 16–24 kHz."""
PAD_MS = 200
"""Silence added at each end so node amplifiers can wake up without clipping speech."""
SILENCE_THRESHOLD_DBFS = -50.0
KEEP_EDGE_MS = 20
"""Part of the detected leading/trailing silence that is kept (soft onsets)."""
FFMPEG_TIMEOUT_S = 120.0
_WAV_UNKNOWN_SIZES = (0, 0xFFFFFFFF, 0x7FFFFFFF)


@functools.cache
def ffmpeg_path() -> str:
    """Locate ffmpeg (PATH first, then imageio-ffmpeg) and configure pydub to use it."""
    path = shutil.which("ffmpeg")
    source = "PATH"
    if path is None:
        try:
            import imageio_ffmpeg

            path = str(imageio_ffmpeg.get_ffmpeg_exe())
            source = "imageio-ffmpeg"
        except (ImportError, RuntimeError) as exc:
            raise EngineError(
                "No ffmpeg found to encode audio. Install it with "
                "'pip install imageio-ffmpeg' or 'apt-get install ffmpeg'."
            ) from exc
    AudioSegment.converter = path
    logger.info("using ffmpeg from %s: %s", source, path)
    return path


def _as_pcm16_mono(segment: AudioSegment) -> AudioSegment:
    if segment.channels != 1:
        segment = segment.set_channels(1)
    if segment.sample_width != 2:
        segment = segment.set_sample_width(2)
    return segment


def tidy(segment: AudioSegment, *, pad_ms: int = PAD_MS) -> AudioSegment:
    """Return mono 16-bit audio with edge silence trimmed and ``pad_ms`` added each side."""
    segment = _as_pcm16_mono(segment)
    total = len(segment)
    lead = detect_leading_silence(segment, silence_threshold=SILENCE_THRESHOLD_DBFS)
    if lead >= total:
        trimmed = segment[:0]
    else:
        trail = detect_leading_silence(segment.reverse(), silence_threshold=SILENCE_THRESHOLD_DBFS)
        start = max(0, lead - KEEP_EDGE_MS)
        end = min(total, total - trail + KEEP_EDGE_MS)
        trimmed = segment[start:end]
    pad = AudioSegment.silent(duration=pad_ms, frame_rate=segment.frame_rate)
    return cast(AudioSegment, pad + trimmed + pad)


def encode(segment: AudioSegment, *, codec: str = "mp3", bitrate_kbps: int = 32) -> bytes:
    """Encode ``segment`` as-is (call :func:`tidy` first) to mono ``codec`` bytes.

    ``mp3``: MPEG layer III, no ID3 tag. ``opus``: Ogg Opus at 24 kHz, tuned for speech.
    """
    if codec not in SUPPORTED_CODECS:
        raise InvalidOptionError(
            f"Unsupported audio codec '{codec}'. Supported: {', '.join(SUPPORTED_CODECS)}."
        )
    ffmpeg_path()
    out = io.BytesIO()
    if codec == "mp3":
        # mono; no ID3 tag (it only carries the encoder version, and would make
        # the bytes depend on the ffmpeg build more than necessary)
        fmt, params = "mp3", ["-ac", "1", "-id3v2_version", "0"]
    else:
        fmt = "ogg"
        params = ["-ac", "1", "-ar", str(OPUS_SAMPLE_RATE), "-c:a", "libopus", "-application", "voip",
                  "-map_metadata", "-1", "-fflags", "+bitexact", "-flags:a", "+bitexact"]
    try:
        segment.export(out, format=fmt, bitrate=f"{bitrate_kbps}k", parameters=params)
    except (CouldntEncodeError, OSError) as exc:
        raise EngineError(f"Could not encode audio to {codec} at {bitrate_kbps} kbps: {exc}") from exc
    data = out.getvalue()
    if not data:
        raise EngineError(f"The {codec} encoder produced no data.")
    return data


def change_tempo(segment: AudioSegment, factor: float) -> AudioSegment:
    """Speed speech up or down by ``factor`` (0.5–2.0) keeping its pitch (ffmpeg atempo)."""
    if abs(factor - 1.0) < 1e-3:
        return segment
    if not 0.5 <= factor <= 2.0:
        raise InvalidOptionError(f"Tempo factor must be between 0.5 and 2.0, got {factor}.")
    buf = io.BytesIO()
    segment.export(buf, format="wav")
    cmd = [
        ffmpeg_path(), "-hide_banner", "-nostdin", "-loglevel", "error", "-i", "pipe:0",
        "-filter:a", f"atempo={factor:.4f}", "-f", "wav", "-acodec", "pcm_s16le", "pipe:1",
    ]  # fmt: skip
    try:
        proc = subprocess.run(cmd, input=buf.getvalue(), capture_output=True, timeout=FFMPEG_TIMEOUT_S,
                              check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise EngineError(f"ffmpeg could not change the speed: {exc}") from exc
    if proc.returncode != 0:
        raise EngineError(f"ffmpeg could not change the speed: {proc.stderr.decode('utf-8', 'replace')}")
    return segment_from_wav(proc.stdout)


def decode_audio(data: bytes, *, engine: str) -> AudioSegment:
    """Audio an engine sent back (WAV, MP3, ...) as PCM; :class:`EngineError` if empty or not audio."""
    if not data:
        raise EngineError(f"The speech engine '{engine}' returned an empty audio file.", engine=engine)
    try:
        if data[:4] == b"RIFF":
            return segment_from_wav(data)
        return decode(data)
    except EngineError as exc:
        raise EngineError(
            f"The speech engine '{engine}' returned data that is not audio ({len(data)} bytes "
            f"starting {data[:16]!r}): {exc}", engine=engine,
        ) from exc


def decode(data: bytes) -> AudioSegment:
    """Decode encoded audio (any format ffmpeg reads) to 16-bit PCM, keeping channels."""
    cmd = [
        ffmpeg_path(), "-hide_banner", "-nostdin", "-loglevel", "error",
        "-i", "pipe:0", "-f", "wav", "-acodec", "pcm_s16le", "pipe:1",
    ]  # fmt: skip
    try:
        proc = subprocess.run(cmd, input=data, capture_output=True, timeout=FFMPEG_TIMEOUT_S, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise EngineError(f"ffmpeg could not decode audio: {exc}") from exc
    if proc.returncode != 0:
        detail = proc.stderr.decode("utf-8", "replace").strip()
        raise EngineError(f"ffmpeg could not decode audio (exit {proc.returncode}): {detail}")
    return segment_from_wav(proc.stdout)


def segment_from_wav(data: bytes) -> AudioSegment:
    """Parse PCM WAV bytes, tolerating the bogus sizes streaming writers put in headers."""
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise EngineError("Audio output is not a WAV file.")
    pos = 12
    fmt: tuple[int, int, int, int] | None = None
    while pos + 8 <= len(data):
        chunk_id = data[pos : pos + 4]
        (size,) = struct.unpack_from("<I", data, pos + 4)
        body = pos + 8
        if chunk_id == b"fmt ":
            if size < 16 or body + 16 > len(data):
                raise EngineError("WAV audio has a truncated format header.")
            tag, channels, rate, _, _, bits = struct.unpack_from("<HHIIHH", data, body)
            fmt = (tag, channels, rate, bits)
        elif chunk_id == b"data":
            if fmt is None:
                raise EngineError("WAV audio has no format header before its data.")
            tag, channels, rate, bits = fmt
            if tag not in (1, 0xFFFE) or bits not in (8, 16, 24, 32) or channels < 1 or rate < 1:
                raise EngineError(f"Unsupported WAV format: tag={tag} bits={bits} channels={channels}.")
            end = len(data) if size in _WAV_UNKNOWN_SIZES else min(len(data), body + size)
            frame_width = channels * bits // 8
            pcm = data[body:end]
            pcm = pcm[: len(pcm) - len(pcm) % frame_width]
            return AudioSegment(data=pcm, sample_width=bits // 8, frame_rate=rate, channels=channels)
        pos = body + size + (size & 1)
    raise EngineError("WAV audio contains no data chunk.")
