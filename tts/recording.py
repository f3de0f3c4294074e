"""Recorded bulletins: an uploaded or phone-recorded file turned into node-ready audio.

The upload is checked by its leading bytes (MP3, WAV, M4A/MP4, Ogg, WebM — what phones and
MediaRecorder produce), decoded by ffmpeg to mono 16-bit PCM, trimmed, brought to the same
loudness target as synthesised speech (:func:`tts.pipeline.normalize_loudness`), padded so the
amplifiers wake without clipping, and encoded in the node codec by :func:`tts.audio.encode`.
Anything that is not such audio raises :class:`RecordingError` with a message a ward officer
can act on.
"""

from __future__ import annotations

import hashlib
import logging
import math
import subprocess
import tempfile
from dataclasses import dataclass

from tts.audio import (
    OPUS_SAMPLE_RATE,
    PAD_MS,
    AudioSegment,
    encode,
    ffmpeg_path,
    segment_from_wav,
    tidy,
)
from tts.duration import duration_ms
from tts.errors import EngineError, TTSError
from tts.pipeline import loudness_dbfs, normalize_loudness

__all__ = ["ACCEPTED_FORMATS", "RECORDING_SAMPLE_RATE", "PreparedRecording", "RecordingError",
           "prepare_recording", "sniff_format"]

logger = logging.getLogger(__name__)

ACCEPTED_FORMATS = ("mp3", "wav", "m4a", "ogg", "webm")
RECORDING_SAMPLE_RATE = 24000
"""Decoded rate: enough for speech and announcements, and a rate both MP3 and Opus take."""
SILENT_BELOW_DBFS = -60.0
DECODE_TIMEOUT_S = 120.0


class RecordingError(TTSError):
    """The upload is not audio we can air; ``str()`` says why."""


@dataclass(frozen=True)
class PreparedRecording:
    data: bytes
    codec: str
    sample_rate: int
    bitrate_kbps: int
    duration_ms: int
    source_format: str
    source_duration_ms: int
    sha256: str


def sniff_format(data: bytes) -> str | None:
    """The container of ``data`` by its magic bytes, or None when it is none we accept."""
    head = data[:16]
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return "wav"
    if head[:4] == b"OggS":
        return "ogg"
    if head[4:8] == b"ftyp":
        return "m4a"
    if head[:4] == b"\x1a\x45\xdf\xa3":
        return "webm"
    if head[:3] == b"ID3":
        return "mp3"
    if len(head) >= 2 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0 and head[1] & 0x06 != 0:
        return "mp3"  # an MPEG audio frame sync (layer I/II/III) with no ID3 tag
    return None


def _decode(data: bytes, max_s: float) -> AudioSegment:
    # from a file, not a pipe: phone M4A files keep their index (moov) at the end
    with tempfile.NamedTemporaryFile(prefix="loaphuong-upload-") as src:
        src.write(data)
        src.flush()
        return _decode_file(src.name, max_s)


def _decode_file(path: str, max_s: float) -> AudioSegment:
    cmd = [
        ffmpeg_path(), "-hide_banner", "-nostdin", "-loglevel", "error", "-i", path,
        "-vn", "-t", f"{max_s + 1:.0f}", "-ac", "1", "-ar", str(RECORDING_SAMPLE_RATE),
        "-f", "wav", "-acodec", "pcm_s16le", "pipe:1",
    ]  # fmt: skip
    try:
        proc = subprocess.run(cmd, capture_output=True, timeout=DECODE_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired:
        raise RecordingError("the recording took too long to decode; it may be damaged") from None
    except OSError as exc:
        raise EngineError(f"ffmpeg could not run: {exc}") from exc
    detail = proc.stderr.decode("utf-8", "replace").strip().splitlines()
    if proc.returncode != 0:
        logger.info("ffmpeg refused an upload: %s", " | ".join(detail[-3:]))
        raise RecordingError("the file is damaged or not audio (it could not be decoded)")
    try:
        return segment_from_wav(proc.stdout)
    except EngineError:
        raise RecordingError("the file is damaged or not audio (no sound could be decoded)") from None


def prepare_recording(data: bytes, *, codec: str = "mp3", bitrate_kbps: int = 32,
                      loudness_target_dbfs: float = -18.0, max_duration_s: float = 1800.0,
                      min_duration_ms: int = 300) -> PreparedRecording:
    """Validate, decode, normalise and encode an uploaded recording (blocking: run in a thread)."""
    if not data:
        raise RecordingError("the file is empty")
    fmt = sniff_format(data)
    if fmt is None:
        raise RecordingError(
            f"this is not an audio file we accept (starts {data[:8]!r}); "
            f"send {', '.join(f.upper() for f in ACCEPTED_FORMATS)}")
    segment = _decode(data, max_duration_s)
    source_ms = len(segment)
    if source_ms > max_duration_s * 1000:
        raise RecordingError(f"the recording is longer than the limit of {max_duration_s / 60:.0f} minutes")
    if source_ms < min_duration_ms:
        raise RecordingError(f"the recording is too short ({source_ms} ms of sound could be decoded)")
    level = loudness_dbfs(segment)
    if not math.isfinite(level) or level < SILENT_BELOW_DBFS:
        raise RecordingError("the recording is silent (check the microphone)")
    # level first, then trim: a quiet phone recording must not be taken for silence by tidy()
    body = tidy(normalize_loudness(segment, loudness_target_dbfs), pad_ms=0)
    pad = AudioSegment.silent(duration=PAD_MS, frame_rate=RECORDING_SAMPLE_RATE)
    encoded = encode(pad + body + pad, codec=codec, bitrate_kbps=bitrate_kbps)
    result = PreparedRecording(
        data=encoded, codec=codec,
        sample_rate=OPUS_SAMPLE_RATE if codec == "opus" else RECORDING_SAMPLE_RATE,
        bitrate_kbps=bitrate_kbps, duration_ms=duration_ms(encoded, codec), source_format=fmt,
        source_duration_ms=source_ms, sha256=hashlib.sha256(encoded).hexdigest(),
    )  # fmt: skip
    logger.info("recording %s of %d ms (level %.1f dBFS) → %s %d ms, %d bytes", fmt, source_ms, level,
                codec, result.duration_ms, len(encoded))
    return result
