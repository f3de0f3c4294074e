"""Audio pipeline: loudness, chimes, attention tone, repeats, tempo, Opus, exact durations."""

from __future__ import annotations

import pytest

from tests.tts.fakes import tone_segment
from tts import AudioOptions, InvalidOptionError, render
from tts.audio import AudioSegment, change_tempo, decode, encode
from tts.chunking import split_text
from tts.duration import duration_ms
from tts.pipeline import finish, loudness_dbfs, normalize_loudness
from tts.sounds import attention_tone, intro_chime, outro_chime

RATE = 22050


def quiet_speechlike() -> AudioSegment:
    """Tone bursts with pauses at about -30 dBFS."""
    burst = tone_segment(400, rate=RATE).apply_gain(-20)
    pause = AudioSegment.silent(duration=300, frame_rate=RATE)
    return (burst + pause) * 4 + burst


def test_loudness_reaches_target_on_the_speech_not_the_pauses() -> None:
    seg = quiet_speechlike()
    assert loudness_dbfs(seg) == pytest.approx(seg[:400].dBFS, abs=0.5)  # pauses do not count
    out = normalize_loudness(seg, -18.0)
    assert loudness_dbfs(out) == pytest.approx(-18.0, abs=0.3)
    assert len(out) == len(seg)


def test_loudness_never_clips() -> None:
    spiky = quiet_speechlike().overlay(tone_segment(20, rate=RATE).apply_gain(12), position=100)
    out = normalize_loudness(spiky, -10.0)
    assert out.max_dBFS <= -0.99


def test_chime_and_attention_tone_frame_the_speech() -> None:
    speech = tone_segment(1000, rate=RATE)
    plain = finish(speech, AudioOptions())
    chimed = finish(speech, AudioOptions(chime=True))
    alert = finish(speech, AudioOptions(attention=True, chime=True))
    intro, outro, attention = intro_chime(RATE), outro_chime(RATE), attention_tone(RATE)
    assert len(chimed) == len(plain) + len(intro) + 400 + len(outro)
    assert len(alert) == len(plain) + len(attention) + 500 + 400 + len(outro)  # attention replaces the intro
    assert chimed[200:700].rms > 0 and plain[200:700].rms > 0
    assert intro.raw_data != outro.raw_data and len(intro) == len(outro) > 2000
    assert 6000 <= len(attention) <= 7000
    assert abs(loudness_dbfs(attention) - (-18.0)) < 1.5  # as loud as the speech


def test_repeat_with_gap_and_padding() -> None:
    speech = tone_segment(1000, rate=RATE)
    once = finish(speech, AudioOptions(pad_ms=0))
    thrice = finish(speech, AudioOptions(repeat=3, gap_ms=700, pad_ms=250))
    assert len(thrice) == 3 * len(once) + 2 * 700 + 2 * 250
    assert thrice[:250].rms == 0 and thrice[-250:].rms == 0


@pytest.mark.parametrize(
    "bad",
    [
        AudioOptions(repeat=0),
        AudioOptions(repeat=9),
        AudioOptions(loudness_dbfs=0),
        AudioOptions(gap_ms=-1),
        AudioOptions(loudness_dbfs=float("nan")),
    ],
)
def test_bad_audio_options(bad: AudioOptions) -> None:
    with pytest.raises(InvalidOptionError):
        render("Xin chào", audio=bad)


def test_tempo_keeps_content_and_changes_length() -> None:
    seg = tone_segment(2000, rate=RATE)
    fast, slow = change_tempo(seg, 2.0), change_tempo(seg, 0.5)
    assert len(fast) == pytest.approx(1000, abs=40) and len(slow) == pytest.approx(4000, abs=80)
    assert fast.dBFS == pytest.approx(seg.dBFS, abs=1.0)
    with pytest.raises(InvalidOptionError):
        change_tempo(seg, 3.0)


@pytest.mark.parametrize(
    ("codec", "bitrate", "magic"), [("mp3", 32, b"\xff"), ("mp3", 48, b"\xff"), ("opus", 24, b"OggS")]
)
def test_duration_is_exact(codec: str, bitrate: int, magic: bytes) -> None:
    seg = finish(tone_segment(1234, rate=RATE), AudioOptions())
    data = encode(seg, codec=codec, bitrate_kbps=bitrate)
    assert data.startswith(magic)
    assert duration_ms(data, codec) == pytest.approx(len(seg), abs=1)  # what a gapless decoder plays
    assert len(decode(data)) == pytest.approx(len(seg), abs=30)


def test_opus_render() -> None:
    audio = render("Thông báo họp tổ dân phố", codec="opus", bitrate_kbps=24)
    assert audio.data[:4] == b"OggS" and audio.codec == "opus" and audio.sample_rate == 24000
    assert audio.duration_ms == pytest.approx(len(decode(audio.data)), abs=5)
    with pytest.raises(InvalidOptionError, match="Opus bitrate"):
        render("Xin chào", codec="opus", bitrate_kbps=2)
    with pytest.raises(InvalidOptionError, match="codec 'flac'"):
        render("Xin chào", codec="flac")


def test_emergency_render_is_longer_by_the_tone() -> None:
    normal = render("Bão số 3 đổ bộ")
    emergency = render("Bão số 3 đổ bộ", audio=AudioOptions(attention=True))
    assert emergency.duration_ms - normal.duration_ms == pytest.approx(
        len(attention_tone(22050)) + 500, abs=60
    )
    assert emergency.sha256 != normal.sha256


@pytest.mark.parametrize(
    ("text", "limit"),
    [
        ("Câu một. Câu hai dài hơn một chút. Câu ba!", 20),
        ("không có dấu chấm nào cả nhưng rất là dài " * 5, 30),
        ("a" * 250, 100),
        ("Xin chào, bà con; hôm nay: họp. " * 40, 100),
    ],
)
def test_split_text(text: str, limit: int) -> None:
    chunks = split_text(text, limit)
    assert all(0 < len(c) <= limit for c in chunks)
    assert " ".join(chunks).split() == text.split() or "".join(chunks) == text.strip()


def test_split_prefers_sentence_ends() -> None:
    assert split_text("Một hai ba. Bốn năm sáu. Bảy tám.", 25) == ["Một hai ba. Bốn năm sáu.", "Bảy tám."]
    assert split_text("", 10) == [] and split_text("ngắn", 10) == ["ngắn"]
