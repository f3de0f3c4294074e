"""Tests for the espeak-ng engine: library backend, binary backend, voices, errors."""

from __future__ import annotations

import json
import shutil
import sys
import textwrap
from pathlib import Path

import pytest

from tts.engine import available_engines, get_engine
from tts.errors import EngineError, UnknownVoiceError
from tts.espeak import BASE_WPM, VOICES, EspeakEngine, words_per_minute

SENTENCE = "Xin chào bà con tổ dân phố số năm"
SYSTEM_ESPEAK = shutil.which("espeak-ng")


@pytest.fixture
def no_binary_on_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))


def test_registered_under_its_name() -> None:
    assert "espeak-ng" in available_engines()
    engine = get_engine("espeak-ng")
    assert isinstance(engine, EspeakEngine)
    assert engine.voices == VOICES


def test_words_per_minute() -> None:
    assert words_per_minute(1.0) == BASE_WPM
    assert words_per_minute(1.5) == 262
    assert words_per_minute(0.1) == 80  # clamped to espeak's range
    with pytest.raises(ValueError):
        words_per_minute(0)


@pytest.mark.usefixtures("no_binary_on_path")
def test_library_backend_used_when_binary_absent() -> None:
    engine = EspeakEngine()
    seg = engine.synthesize(SENTENCE, voice="vi", speed=1.0)
    assert engine.last_backend == "library"
    assert (seg.channels, seg.sample_width, seg.frame_rate) == (1, 2, 22050)
    assert len(seg) > 1000
    assert seg.dBFS > -50


@pytest.mark.usefixtures("no_binary_on_path")
def test_regional_voices_resolve_and_differ() -> None:
    engine = EspeakEngine(backend="library")
    outputs = {v: engine.synthesize(SENTENCE, voice=v, speed=1.0).raw_data for v in VOICES}
    assert all(len(pcm) > 22050 for pcm in outputs.values())
    assert len(set(outputs.values())) == len(VOICES)  # no silent fallback to one accent
    # voice names are case-insensitive (espeak's own file is vi-VN-x-south)
    upper = engine.synthesize(SENTENCE, voice="vi-VN-x-south", speed=1.0).raw_data
    assert upper == outputs["vi-vn-x-south"]


@pytest.mark.usefixtures("no_binary_on_path")
def test_library_output_is_deterministic() -> None:
    """Same text/voice/speed -> identical PCM, whatever was synthesised before."""
    engine = EspeakEngine(backend="library")
    first = engine.synthesize(SENTENCE, voice="vi", speed=1.0).raw_data
    assert engine.synthesize(SENTENCE, voice="vi", speed=1.0).raw_data == first
    engine.synthesize("Một hai ba", voice="vi-vn-x-central", speed=1.3)
    assert engine.synthesize(SENTENCE, voice="vi", speed=1.0).raw_data == first


@pytest.mark.usefixtures("no_binary_on_path")
def test_speed_changes_duration() -> None:
    engine = EspeakEngine(backend="library")
    normal = engine.synthesize(SENTENCE, voice="vi", speed=1.0)
    fast = engine.synthesize(SENTENCE, voice="vi", speed=2.0)
    assert len(fast) < 0.75 * len(normal)


def test_unknown_voice_lists_valid_ones() -> None:
    with pytest.raises(UnknownVoiceError) as info:
        EspeakEngine().synthesize(SENTENCE, voice="en-us", speed=1.0)
    for voice in VOICES:
        assert voice in str(info.value)


def test_neither_backend_available(no_binary_on_path: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "espeakng_loader", None)  # makes the import fail
    with pytest.raises(EngineError) as info:
        EspeakEngine().synthesize(SENTENCE, voice="vi", speed=1.0)
    message = str(info.value)
    assert "pip install espeakng-loader" in message
    assert "apt-get install espeak-ng" in message


def test_binary_backend_required_but_missing(no_binary_on_path: None) -> None:
    with pytest.raises(EngineError, match="apt-get install espeak-ng"):
        EspeakEngine(backend="binary").synthesize(SENTENCE, voice="vi", speed=1.0)


@pytest.mark.skipif(SYSTEM_ESPEAK is None, reason="no system espeak-ng binary on PATH")
def test_system_binary_backend() -> None:
    engine = EspeakEngine(backend="binary")
    seg = engine.synthesize("-v " + SENTENCE, voice="vi-vn-x-central", speed=1.0)
    assert engine.last_backend == "binary"
    assert seg.channels == 1 and seg.sample_width == 2
    assert len(seg) > 1000 and seg.dBFS > -50


# A stand-in executable exercising the subprocess path (argv, stdin, streamed WAV
# output, exit codes) on machines without espeak-ng. It emits a 300 ms tone.
_SHIM = """\
#!{python}
import json, math, os, struct, sys
text = sys.stdin.buffer.read().decode("utf-8")
with open(os.environ["SHIM_LOG"], "w", encoding="utf-8") as fh:
    json.dump({{"argv": sys.argv[1:], "stdin": text}}, fh)
if os.environ.get("SHIM_FAIL"):
    sys.stderr.write("Failed to read voice 'vi'\\n")
    sys.exit(1)
rate = 22050
pcm = b"".join(struct.pack("<h", int(8000 * math.sin(2 * math.pi * 440 * i / rate)))
               for i in range(rate * 3 // 10))
fmt = struct.pack("<HHIIHH", 1, 1, rate, rate * 2, 2, 16)
sys.stdout.buffer.write(b"RIFF" + struct.pack("<I", 0x7FFFFFFF) + b"WAVEfmt "
                        + struct.pack("<I", 16) + fmt + b"data"
                        + struct.pack("<I", 0x7FFFFFFF) + pcm)
"""


@pytest.fixture
def shim(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    exe = bindir / "espeak-ng"
    exe.write_text(textwrap.dedent(_SHIM.format(python=sys.executable)), encoding="utf-8")
    exe.chmod(0o755)
    log = tmp_path / "shim.json"
    monkeypatch.setenv("PATH", str(bindir))
    monkeypatch.setenv("SHIM_LOG", str(log))
    return log


def test_binary_backend_command_line(shim: Path) -> None:
    engine = EspeakEngine()  # auto: a binary on PATH wins over the library
    text = "-s 999 Thông báo"  # must not be parsed as options
    seg = engine.synthesize(text, voice="vi-VN-x-south", speed=1.5)
    assert engine.last_backend == "binary"
    call = json.loads(shim.read_text(encoding="utf-8"))
    argv = call["argv"]
    assert "--stdout" in argv and "--stdin" in argv
    assert argv[argv.index("-v") + 1] == "vi-vn-x-south"
    assert argv[argv.index("-s") + 1] == "262"
    assert text not in argv
    assert call["stdin"] == text + "\n"
    assert (seg.channels, seg.frame_rate) == (1, 22050)
    assert len(seg) == 300


def test_binary_backend_failure_is_engine_error(shim: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHIM_FAIL", "1")
    with pytest.raises(EngineError, match=r"exit code 1.*Failed to read voice"):
        EspeakEngine().synthesize(SENTENCE, voice="vi", speed=1.0)
