"""Tests for tts.render (text checks, real espeak-ng bulletin, errors) and tts.cache."""

from __future__ import annotations

import array
import hashlib
import json
import math
import time
import unicodedata
from collections.abc import Iterator
from pathlib import Path

import pytest

import tts
from tts import (
    MAX_TEXT_CHARS,
    EmptyTextError,
    EngineError,
    RenderedAudio,
    SpeechEngine,
    TextTooLongError,
    TTSError,
    UnknownVoiceError,
    render,
)
from tts.audio import AudioSegment, decode
from tts.cache import AudioCache, cache_key
from tts.engine import register_engine, unregister_engine
from tts.errors import InvalidOptionError
from tts.render import clean_text

SENTENCE = "Thông báo: sáng mai phường tổ chức tiêm phòng tại nhà văn hóa"


def tone(ms: int, rate: int = 22050) -> AudioSegment:
    n = rate * ms // 1000
    pcm = array.array("h", (int(12000 * math.sin(2 * math.pi * 330 * i / rate)) for i in range(n)))
    return AudioSegment(data=pcm.tobytes(), sample_width=2, frame_rate=rate, channels=1)


class ToneEngine(SpeechEngine):
    """A real (if unmusical) engine: a tone as long as the text; records every call."""

    name = "test-tone"
    voices = ("tone", "tone-low")

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, float]] = []

    def synthesize(self, text: str, *, voice: str, speed: float) -> AudioSegment:
        self.calls.append((text, voice, speed))
        return tone(300 + len(text) // 10)


class EmptyEngine(SpeechEngine):
    name = "test-empty"
    voices = ("x",)

    def synthesize(self, text: str, *, voice: str, speed: float) -> AudioSegment:
        return AudioSegment.empty()


class SilentEngine(SpeechEngine):
    name = "test-silent"
    voices = ("x",)

    def synthesize(self, text: str, *, voice: str, speed: float) -> AudioSegment:
        return AudioSegment.silent(duration=800, frame_rate=22050)


class CrashingEngine(SpeechEngine):
    name = "test-crash"
    voices = ("x",)

    def synthesize(self, text: str, *, voice: str, speed: float) -> AudioSegment:
        raise RuntimeError("segfault imminent")


@pytest.fixture
def tone_engine() -> Iterator[ToneEngine]:
    engine = ToneEngine()
    register_engine(engine, replace=True)
    yield engine
    unregister_engine(engine.name)


@pytest.fixture(scope="module")
def bulletin() -> RenderedAudio:
    return render(SENTENCE)


# --- real synthesis -------------------------------------------------------------------


def test_public_api() -> None:
    assert MAX_TEXT_CHARS == 5000
    assert "espeak-ng" in tts.available_engines()
    assert tts.get_engine("espeak-ng").name == "espeak-ng"
    for exc in (EmptyTextError, TextTooLongError, UnknownVoiceError, EngineError):
        assert issubclass(exc, TTSError)


def test_real_bulletin_is_valid_mp3(bulletin: RenderedAudio) -> None:
    assert (bulletin.codec, bulletin.bitrate_kbps, bulletin.sample_rate) == ("mp3", 32, 22050)
    assert (bulletin.engine, bulletin.voice, bulletin.text) == ("espeak-ng", "vi", SENTENCE)
    assert bulletin.sha256 == hashlib.sha256(bulletin.data).hexdigest()
    assert bulletin.data[0] == 0xFF and bulletin.data[1] & 0xE0 == 0xE0  # MPEG frame sync
    decoded = decode(bulletin.data)
    assert decoded.channels == 1
    assert len(decoded) >= 1000
    assert abs(len(decoded) - bulletin.duration_ms) <= 100
    assert decoded.dBFS > -50
    # 32 kbps = 4 bytes/ms, plus a little container overhead
    assert 3.5 * bulletin.duration_ms < len(bulletin.data) < 4.5 * bulletin.duration_ms + 1000
    assert "bytes" in repr(bulletin) and len(repr(bulletin)) < 200


def test_render_is_reproducible(bulletin: RenderedAudio) -> None:
    assert render(SENTENCE).data == bulletin.data


def test_nfd_input_renders_same_bytes_as_nfc(bulletin: RenderedAudio) -> None:
    nfd = unicodedata.normalize("NFD", SENTENCE)
    assert nfd != SENTENCE
    audio = render(nfd)
    assert audio.text == SENTENCE
    assert audio.data == bulletin.data and audio.sha256 == bulletin.sha256


def test_unknown_voice_lists_valid_voices() -> None:
    with pytest.raises(UnknownVoiceError) as info:
        render(SENTENCE, voice="vi-hanoi")
    assert "vi-hanoi" in str(info.value)
    for voice in ("vi", "vi-vn-x-central", "vi-vn-x-south"):
        assert voice in str(info.value)


# --- text checks ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    ["", "   ", "\n\t \u00a0", "...!?", "— «» …", "😀🎉👍🏽", "\u200b\ufeff", "*** !!! ###"],
)
def test_nothing_speakable(text: str) -> None:
    with pytest.raises(EmptyTextError, match="nothing to read aloud"):
        render(text)


def test_too_long_states_limit_and_length() -> None:
    with pytest.raises(TextTooLongError) as info:
        render("a" * (MAX_TEXT_CHARS + 1))
    message = str(info.value)
    assert "5000" in message and "5001" in message
    assert (info.value.limit, info.value.length) == (5000, 5001)


def test_limit_is_inclusive_and_counts_cleaned_text(tone_engine: ToneEngine) -> None:
    render("a" * MAX_TEXT_CHARS, engine=tone_engine.name, voice="tone")
    render("  " + "a" * MAX_TEXT_CHARS + "\n\n", engine=tone_engine.name, voice="tone")
    assert len(tone_engine.calls) == 2


def test_clean_text() -> None:
    assert clean_text("  Xin\u00a0 chào\n\nbà\tcon \u200b ") == "Xin chào bà con"
    assert clean_text(unicodedata.normalize("NFD", "phường")) == "phường"
    assert clean_text("a\x00b") == "ab"


def test_engine_receives_normalised_text(tone_engine: ToneEngine) -> None:
    audio = render("  Mất   điện\n từ 8 giờ ", engine=tone_engine.name, voice="TONE-low", speed=1.25)
    assert tone_engine.calls == [("Mất điện từ tám giờ", "tone-low", 1.25)]
    assert (audio.text, audio.voice, audio.engine) == ("Mất điện từ tám giờ", "tone-low", "test-tone")
    assert (audio.requested_engine, audio.warnings) == ("test-tone", ())


@pytest.mark.parametrize(("speed", "bitrate"), [(0.1, 32), (3.0, 32), (float("nan"), 32), (1.0, 33)])
def test_invalid_options(tone_engine: ToneEngine, speed: float, bitrate: int) -> None:
    with pytest.raises(InvalidOptionError):
        render("Xin chào", engine=tone_engine.name, voice="tone", speed=speed, bitrate_kbps=bitrate)
    assert tone_engine.calls == []


# --- engine failures ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("engine", "message"),
    [(EmptyEngine(), "returned no audio"), (SilentEngine(), "as silence"), (CrashingEngine(), "failed")],
)
def test_engine_failures_become_engine_error(engine: SpeechEngine, message: str) -> None:
    register_engine(engine, replace=True)
    try:
        with pytest.raises(EngineError, match=message) as info:
            render("Xin chào", engine=engine.name, voice="x")
        assert info.value.engine == engine.name
    finally:
        unregister_engine(engine.name)


def test_unknown_engine() -> None:
    with pytest.raises(EngineError, match=r"Unknown speech engine 'festival'.*espeak-ng"):
        render("Xin chào", engine="festival")


def test_duplicate_registration_needs_replace(tone_engine: ToneEngine) -> None:
    with pytest.raises(ValueError, match="already registered"):
        register_engine(ToneEngine())


# --- cache ----------------------------------------------------------------------------


def test_cache_hit_skips_synthesis(tone_engine: ToneEngine, tmp_path: Path) -> None:
    cache_dir = tmp_path / "cache"  # created on first use

    def cached(text: str, speed: float = 1.0, bitrate_kbps: int = 32) -> RenderedAudio:
        return render(
            text, engine=tone_engine.name, voice="tone", speed=speed, bitrate_kbps=bitrate_kbps,
            cache_dir=cache_dir,
        )  # fmt: skip

    first = cached("Họp tổ dân phố lúc 19 giờ")
    second = cached(unicodedata.normalize("NFD", " Họp tổ dân phố  lúc 19 giờ"))
    assert len(tone_engine.calls) == 1
    assert second == first
    cached("Họp tổ dân phố lúc 19 giờ", speed=1.5)
    cached("Họp tổ dân phố lúc 19 giờ", bitrate_kbps=48)
    assert len(tone_engine.calls) == 3
    meta = json.loads(next(cache_dir.glob("*.json")).read_text(encoding="utf-8"))
    assert meta["engine"] == "test-tone" and "data" not in meta


def test_corrupt_cache_entry_is_rerendered(tone_engine: ToneEngine, tmp_path: Path) -> None:
    first = render("Xin chào", engine=tone_engine.name, voice="tone", cache_dir=tmp_path)
    for path in tmp_path.glob("*.bin"):
        path.write_bytes(b"garbage")
    again = render("Xin chào", engine=tone_engine.name, voice="tone", cache_dir=tmp_path)
    assert len(tone_engine.calls) == 2
    assert again.data == first.data
    assert render("Xin chào", engine=tone_engine.name, voice="tone", cache_dir=tmp_path) == first
    assert len(tone_engine.calls) == 2


def _key(n: int) -> str:
    return cache_key(text=f"t{n}", engine="e", voice="v", speed=1.0, codec="mp3", bitrate_kbps=32)


def test_cache_lru_eviction(tmp_path: Path) -> None:
    cache = AudioCache(tmp_path, max_bytes=3500)
    keys = [_key(n) for n in range(4)]
    for key in keys[:3]:
        cache.put(key, bytes(1000), {"n": key})
        time.sleep(0.002)
    assert cache.total_bytes() <= 3500
    assert cache.get(keys[0]) is not None  # refreshes entry 0
    time.sleep(0.002)
    cache.put(keys[3], bytes(1000), {})
    assert cache.get(keys[1]) is None  # least recently used went first
    for key in (keys[0], keys[2], keys[3]):
        assert cache.get(key) is not None
    assert cache.total_bytes() <= 3500
    assert not list(tmp_path.glob(".tmp-*"))


def test_cache_miss_and_oversized_entry(tmp_path: Path) -> None:
    cache = AudioCache(tmp_path, max_bytes=500)
    assert cache.get(_key(0)) is None
    cache.put(_key(0), bytes(1000), {})
    assert cache.get(_key(0)) is None
    entry_key = _key(1)
    cache.put(entry_key, b"abc", {"codec": "mp3"})
    entry = cache.get(entry_key)
    assert entry is not None and entry.data == b"abc"
    assert entry.metadata["sha256"] == hashlib.sha256(b"abc").hexdigest()
    with pytest.raises(ValueError):
        cache.get("../../etc/passwd")
