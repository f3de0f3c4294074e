"""Recorded bulletins: every container phones and PCs produce is accepted; garbage is refused."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tts.audio import decode, ffmpeg_path
from tts.pipeline import loudness_dbfs
from tts.recording import RecordingError, prepare_recording, sniff_format

ENCODERS = {
    "mp3": ["-f", "mp3"],
    "wav": ["-f", "wav"],
    "m4a": ["-c:a", "aac", "-f", "ipod"],  # ipod = .m4a, index at the end like phone recordings
    "ogg": ["-c:a", "libvorbis", "-f", "ogg"],
    "webm": ["-c:a", "libopus", "-f", "webm"],  # what MediaRecorder gives in Chrome
}


def make_audio(tmp_path: Path, fmt: str, *, seconds: float = 2.0, volume: float = 0.1,
               source: str = "sine=frequency=440") -> bytes:
    out = tmp_path / f"in.{fmt}"
    subprocess.run([ffmpeg_path(), "-loglevel", "error", "-y", "-f", "lavfi", "-i",
                    f"{source}:duration={seconds}", "-af", f"volume={volume}", "-ac", "2",
                    *ENCODERS[fmt], str(out)], check=True)
    return out.read_bytes()


@pytest.mark.parametrize("fmt", sorted(ENCODERS))
def test_each_format_becomes_loudness_normalised_node_mp3(tmp_path: Path, fmt: str) -> None:
    data = make_audio(tmp_path, fmt)
    assert sniff_format(data) == ("mp3" if fmt == "mp3" else fmt)
    rec = prepare_recording(data, codec="mp3", bitrate_kbps=32, loudness_target_dbfs=-18.0)
    assert rec.source_format == fmt and rec.codec == "mp3"
    assert abs(rec.source_duration_ms - 2000) < 120
    assert abs(rec.duration_ms - (2000 + 400)) < 120  # 200 ms of wake-up padding each side
    out = decode(rec.data)
    assert out.channels == 1 and out.frame_rate == rec.sample_rate
    assert abs(loudness_dbfs(out) - -18.0) < 1.5  # a quiet (-41 dBFS) recording brought up


def test_opus_node_format(tmp_path: Path) -> None:
    rec = prepare_recording(make_audio(tmp_path, "wav"), codec="opus", bitrate_kbps=32)
    assert rec.data[:4] == b"OggS" and rec.sample_rate == 24000 and rec.duration_ms > 2000


@pytest.mark.parametrize(("blob", "needle"), [
    (b"", "empty"),
    (b"Thong bao hop to dan pho", "not an audio file"),
    (b"%PDF-1.7\n" + b"x" * 2000, "not an audio file"),
    (b"\x89PNG\r\n\x1a\n" + b"\x00" * 100, "not an audio file"),
    (b"RIFF\x00\x00\x00\x00WAVEjunkjunkjunk", "damaged or not audio"),
    (b"\xff\xfb\x90\x00" + b"\x00" * 3000, "damaged or not audio"),
    (b"OggS" + bytes(range(256)) * 4, "damaged or not audio"),
])
def test_garbage_is_refused_with_a_reason(blob: bytes, needle: str) -> None:
    with pytest.raises(RecordingError, match=needle):
        prepare_recording(blob)


def test_silent_short_and_long_recordings_are_refused(tmp_path: Path) -> None:
    with pytest.raises(RecordingError, match="silent"):
        prepare_recording(make_audio(tmp_path, "wav", source="anullsrc=r=16000", volume=1.0))
    with pytest.raises(RecordingError, match="too short"):
        prepare_recording(make_audio(tmp_path, "wav", seconds=0.1))
    with pytest.raises(RecordingError, match="longer than the limit"):
        prepare_recording(make_audio(tmp_path, "mp3", seconds=5), max_duration_s=3)


def test_truncated_upload_is_still_refused_or_aired_whole(tmp_path: Path) -> None:
    """Half an M4A (index lost) is refused; half an MP3 plays what arrived."""
    m4a = make_audio(tmp_path, "m4a")
    with pytest.raises(RecordingError):
        prepare_recording(m4a[: len(m4a) // 2])
    mp3 = make_audio(tmp_path, "mp3", seconds=4)
    rec = prepare_recording(mp3[: len(mp3) // 2])
    assert 1500 < rec.source_duration_ms < 2500
