"""Fallback chain and bad input: never silence, never a silently dropped bulletin."""

from __future__ import annotations

import unicodedata
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.tts.fakes import tone_segment
from tts import (
    EmptyTextError,
    EngineError,
    SpeechEngine,
    TextTooLongError,
    UnknownVoiceError,
    normalize,
    render,
)
from tts.audio import AudioSegment
from tts.engine import register_engine, unregister_engine


class Recorder(SpeechEngine):
    """A working engine (a tone per chunk) with a small request limit; records what it was asked."""

    voices = ("bac", "nam")
    accents = {"bac": "north", "nam": "south"}  # noqa: RUF012

    def __init__(self, name: str, max_chars: int = 5000) -> None:
        self.name = name
        self.max_chars = max_chars
        self.calls: list[str] = []

    def synthesize(self, text: str, *, voice: str, speed: float) -> AudioSegment:
        self.calls.append(text)
        return tone_segment(200 + len(text))


class Garbage(SpeechEngine):
    name = "test-garbage"
    voices = ("x",)

    def synthesize(self, text: str, *, voice: str, speed: float) -> AudioSegment:
        return "not audio"  # type: ignore[return-value]


class Broken(SpeechEngine):
    name = "test-broken"
    voices = ("x",)

    def synthesize(self, text: str, *, voice: str, speed: float) -> AudioSegment:
        raise OSError("device busy")


@pytest.fixture
def chain() -> Iterator[tuple[Recorder, Recorder]]:
    a, b = Recorder("test-a", max_chars=80), Recorder("test-b")
    for e in (a, b, Garbage(), Broken()):
        register_engine(e, replace=True)
    yield a, b
    for n in ("test-a", "test-b", "test-garbage", "test-broken"):
        unregister_engine(n)


def test_garbage_and_crashes_fall_back_with_warnings(chain: tuple[Recorder, Recorder]) -> None:
    _, b = chain
    audio = render("Có 105 hộ", engine="test-garbage", voice="x", fallback=["test-broken", "test-b"])
    assert audio.engine == "test-b" and b.calls == ["Có một trăm linh năm hộ"]
    assert audio.warnings == (
        "fell back from test-garbage to test-b: "
        "The speech engine 'test-garbage' returned no audio for this text.",
        "fell back from test-broken to test-b: The speech engine 'test-broken' failed: device busy",
    )


def test_every_engine_failing_is_one_clear_error(chain: tuple[Recorder, Recorder]) -> None:
    with pytest.raises(EngineError) as info:
        render("Xin chào", engine="test-garbage", voice="x", fallback=["test-broken", "no-such-engine"])
    message = str(info.value)
    assert message.startswith("No speech engine could read this bulletin (test-garbage: ")
    assert "test-broken: The speech engine 'test-broken' failed: device busy" in message
    assert "no-such-engine: Unknown speech engine 'no-such-engine'" in message


def test_fallback_keeps_the_accent_and_its_number_reading(chain: tuple[Recorder, Recorder]) -> None:
    _, b = chain
    audio = render("Có 105 hộ", engine="test-broken", voice="x", fallback=["test-b"])
    assert audio.voice == "bac"  # unknown accent → north → first northern voice
    b.calls.clear()
    audio = render("Có 105 hộ", engine="test-a", voice="nam")
    assert audio.text == "Có một trăm lẻ năm hộ"


def test_text_is_split_for_a_small_engine(chain: tuple[Recorder, Recorder]) -> None:
    a, _ = chain
    text = "Thông báo lịch tiêm phòng. " * 10 + "Đề nghị bà con chú ý."
    audio = render(text, engine="test-a", voice="bac")
    assert len(a.calls) > 3 and all(len(c) <= 80 for c in a.calls)
    assert " ".join(a.calls) == audio.text


def test_unknown_voice_is_refused_even_with_a_fallback(chain: tuple[Recorder, Recorder]) -> None:
    with pytest.raises(UnknownVoiceError, match=r"Unknown voice 'mien-trung'.*Valid voices: bac, nam"):
        render("Xin chào", engine="test-a", voice="mien-trung", fallback=["test-b"])
    assert chain[0].calls == chain[1].calls == []


@pytest.mark.parametrize("text", ["", "   \n\t", "... !!! ???", "🔥📢😀", "— « » …", "\u200b\u200d"])
def test_nothing_to_say(text: str) -> None:
    with pytest.raises(EmptyTextError, match="nothing to read aloud"):
        render(text, fallback=["espeak-ng"])


def test_twenty_thousand_characters_are_refused_with_the_limit() -> None:
    text = ("Ủy ban nhân dân phường thông báo lịch cắt điện tổ dân phố số 3. " * 320)[:20_000]
    with pytest.raises(TextTooLongError) as info:
        render(text)
    assert (info.value.length, info.value.limit) == (20_000, 5000)
    assert "limit is 5000 characters" in str(info.value) and "split it into several bulletins" in str(
        info.value
    )


def test_five_thousand_characters_render(chain: tuple[Recorder, Recorder]) -> None:
    a, _ = chain
    text = ("Họp tổ dân phố lúc 19h ngày 22/11 tại nhà văn hóa, đề nghị các hộ tham dự đầy đủ. " * 70)[:5000]
    audio = render(text, engine="test-a", voice="bac")
    assert len(a.calls) >= 80 and audio.duration_ms > 0


def test_text_without_diacritics_renders_with_a_warning(chain: tuple[Recorder, Recorder]) -> None:
    audio = render(
        "Thong bao: sang mai phuong to chuc tiem phong tai nha van hoa", engine="test-b", voice="bac"
    )
    assert len(audio.warnings) == 1 and "without diacritics" in audio.warnings[0]
    plain = normalize("Thông báo: sáng mai phường tổ chức tiêm phòng tại nhà văn hóa")
    assert plain.warnings == ()


def test_mixed_scripts_are_kept_and_flagged(chain: tuple[Recorder, Recorder]) -> None:
    audio = render("Đoàn khách Hàn Quốc 한국 và Nga Россия thăm phường", engine="test-b", voice="bac")
    assert "한국" in audio.text and "Россия" in audio.text
    assert "other scripts (cyrillic, hangul" in audio.warnings[0]


def test_decomposed_unicode_reads_like_composed(chain: tuple[Recorder, Recorder]) -> None:
    _, b = chain
    text = "Ủy ban nhân dân phường thông báo: họp lúc 7h30 ở nhà văn hóa"
    first = render(text, engine="test-b", voice="bac")
    second = render(unicodedata.normalize("NFD", text), engine="test-b", voice="bac")
    assert b.calls[0] == b.calls[1] and first.sha256 == second.sha256


def test_ward_dictionary_comes_first_and_reports_hits(
    chain: tuple[Recorder, Recorder], tmp_path: Path
) -> None:
    _, b = chain
    words = {"Kẻ Sặt": "Kẻ Sặt", "HTX": "hợp tác xã nông nghiệp", "tổ 5A": "tổ năm a"}
    audio = render(
        "HTX Kẻ sặt họp ở Tổ 5A; htx mới", engine="test-b", voice="bac", dictionary=words, cache_dir=tmp_path
    )
    assert b.calls == ["hợp tác xã nông nghiệp Kẻ Sặt họp ở tổ năm a; hợp tác xã nông nghiệp mới"]
    assert audio.dictionary_hits == ("HTX", "Kẻ Sặt", "tổ 5A")
    again = render("HTX Kẻ sặt họp ở Tổ 5A; htx mới", engine="test-b", voice="bac", cache_dir=tmp_path)
    assert again.sha256 != audio.sha256 and again.dictionary_hits == ()  # the dictionary changes the audio
    assert normalize("Anh Hùng", dictionary={"An": "an"}).text == "Anh Hùng"  # whole words only
