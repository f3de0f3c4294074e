"""Tests for tts.audio: WAV parsing, silence trimming/padding, MP3 encode/decode."""

from __future__ import annotations

import array
import math
import os
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from tts.audio import PAD_MS, AudioSegment, decode, encode, ffmpeg_path, segment_from_wav, tidy
from tts.errors import EngineError, InvalidOptionError

RATE = 22050


def tone(ms: int, *, rate: int = RATE, amplitude: int = 16000) -> AudioSegment:
    """440 Hz mono 16-bit sine."""
    n = rate * ms // 1000
    samples = array.array("h", (int(amplitude * math.sin(2 * math.pi * 440 * i / rate)) for i in range(n)))
    return AudioSegment(data=samples.tobytes(), sample_width=2, frame_rate=rate, channels=1)


def streaming_wav(pcm: bytes, *, rate: int = RATE, channels: int = 1) -> bytes:
    """WAV as written to a pipe: RIFF and data sizes unknown (0xFFFFFFFF)."""
    fmt = struct.pack("<HHIIHH", 1, channels, rate, rate * channels * 2, channels * 2, 16)
    return (
        b"RIFF" + struct.pack("<I", 0xFFFFFFFF) + b"WAVE"
        + b"fmt " + struct.pack("<I", len(fmt)) + fmt
        + b"LIST" + struct.pack("<I", 4) + b"INFO"
        + b"data" + struct.pack("<I", 0xFFFFFFFF) + pcm
    )  # fmt: skip


def test_segment_from_wav_tolerates_streaming_header() -> None:
    seg = tone(500)
    parsed = segment_from_wav(streaming_wav(seg.raw_data + b"\x01"))  # odd trailing byte dropped
    assert (parsed.channels, parsed.sample_width, parsed.frame_rate) == (1, 2, RATE)
    assert parsed.raw_data == seg.raw_data


@pytest.mark.parametrize("blob", [b"", b"not a wav file at all", b"RIFF\x00\x00\x00\x00WAVEjunk"])
def test_segment_from_wav_rejects_garbage(blob: bytes) -> None:
    with pytest.raises(EngineError):
        segment_from_wav(blob)


def test_tidy_trims_edges_and_pads() -> None:
    silence = AudioSegment.silent(duration=1000, frame_rate=RATE)
    seg = silence + tone(800) + silence
    out = tidy(seg)
    assert (out.channels, out.sample_width, out.frame_rate) == (1, 2, RATE)
    # 800 ms of tone, <= 20 ms kept each side, plus 200 ms pads
    assert 800 + 2 * PAD_MS <= len(out) <= 800 + 2 * PAD_MS + 50
    assert out[:PAD_MS].rms == 0 and out[-PAD_MS:].rms == 0


def test_tidy_converts_stereo_to_mono() -> None:
    stereo = AudioSegment.from_mono_audiosegments(tone(300), tone(300))
    assert tidy(stereo).channels == 1


def test_encode_decode_roundtrip_is_real_mp3() -> None:
    seg = tidy(tone(1500))
    data = encode(seg, bitrate_kbps=32)
    assert data[0] == 0xFF and data[1] & 0xE0 == 0xE0  # MPEG audio frame sync, no ID3 tag
    decoded = decode(data)
    assert decoded.channels == 1
    assert decoded.frame_rate == RATE
    assert abs(len(decoded) - len(seg)) <= 100
    assert decoded.dBFS > -50
    # ~32 kbps: 1.9 s -> ~7.6 kB (allow container overhead)
    assert 5_000 < len(data) < 12_000


def test_encode_rejects_unknown_codec() -> None:
    with pytest.raises(InvalidOptionError, match="mp3"):
        encode(tone(100), codec="flac")


def test_decode_rejects_garbage() -> None:
    with pytest.raises(EngineError):
        decode(b"\x00" * 64)


def test_ffmpeg_path_configures_pydub() -> None:
    path = ffmpeg_path()
    assert Path(path).is_file() and os.access(path, os.X_OK)
    assert AudioSegment.converter == path


def test_import_emits_no_ffmpeg_warning(tmp_path: Path) -> None:
    """With no ffmpeg on PATH, importing tts.audio must not print pydub's warning."""
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PATH": str(tmp_path), "PYTHONPATH": str(root)}
    proc = subprocess.run(
        [sys.executable, "-W", "error", "-c", "import tts.audio"],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "ffmpeg" not in proc.stderr
