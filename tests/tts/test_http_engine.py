"""The configurable HTTP engine against local fakes shaped like commercial Vietnamese services."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator

import pytest

from tests.tts.fakes import FakeServer, Received, Reply, closed_port_url, tone_mp3
from tts import EngineError, HttpEngine, HttpEngineConfig, UnknownVoiceError, render
from tts.engine import register_engine, unregister_engine

MP3 = tone_mp3(800)


@pytest.fixture
def engines() -> Iterator[list[str]]:
    names: list[str] = []
    yield names
    for name in names:
        unregister_engine(name)


def add(engines: list[str], **cfg: object) -> HttpEngine:
    config = HttpEngineConfig.model_validate({"retries": 1, "backoff_s": 0.01, "timeout_s": 2, **cfg})
    engine = HttpEngine(config)
    register_engine(engine, replace=True)
    engines.append(engine.name)
    return engine


def test_json_in_audio_out_like_viettel(engines: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TTS_TOKEN", "s3cret")
    with FakeServer(lambda _: Reply(200, MP3, {"Content-Type": "audio/mpeg"})) as fake:
        add(
            engines,
            name="viettel-like",
            url=fake.url + "/tts/speech_synthesis",
            voices={"hn-quynhanh": "north", "hue-baoquoc": "central", "hcm-diemmy": "south"},
            payload={
                "text": "{text}",
                "voice": "{voice}",
                "speed": "{speed}",
                "tts_return_option": 3,
                "token": "${TTS_TOKEN}",
                "without_filter": False,
            },
            speed={"offset": 1.0, "scale": 1.0, "minimum": 0.7, "maximum": 1.3, "digits": 2},
        )
        audio = render("Lúc 7h30 ngày 22/11", engine="viettel-like", voice="hcm-diemmy", speed=1.2)
    (req,) = fake.received
    assert (req.method, req.path, req.headers["content-type"]) == (
        "POST",
        "/tts/speech_synthesis",
        "application/json",
    )
    assert req.json() == {
        "text": "Lúc bảy giờ ba mươi phút ngày hai mươi hai tháng mười một",
        "voice": "hcm-diemmy",
        "speed": 1.2,
        "tts_return_option": 3,
        "token": "s3cret",
        "without_filter": False,
    }
    assert (audio.engine, audio.voice) == ("viettel-like", "hcm-diemmy")
    assert 800 <= audio.duration_ms <= 1300


def test_text_body_and_async_link_like_fpt(engines: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FPT_KEY", "k-123")
    polls = {"n": 0}

    def handler(req: Received) -> Reply:
        if req.method == "POST":
            link = f"http://{req.headers['host']}/files/abc.mp3"
            return Reply(
                200,
                json.dumps({"async": link, "error": 0, "message": "ok"}).encode(),
                {"Content-Type": "application/json"},
            )
        polls["n"] += 1
        return Reply(404, b"not yet") if polls["n"] < 3 else Reply(200, MP3, {"Content-Type": "audio/mpeg"})

    with FakeServer(handler) as fake:
        add(
            engines,
            name="fpt-like",
            url=fake.url + "/hmi/tts/v5",
            body="text",
            response="json",
            link_field="async",
            poll_s=0.02,
            voices={"banmai": "north", "linhsan": "south"},
            headers={"api-key": "${FPT_KEY}", "voice": "{voice}", "speed": "{speed}"},
            speed={"offset": 0, "scale": 3, "minimum": -3, "maximum": 3, "digits": 0},
        )
        audio = render("Xin chào 105 hộ", engine="fpt-like", voice="linhsan", speed=0.5)
    post = fake.received[0]
    assert post.body.decode() == "Xin chào một trăm lẻ năm hộ"  # southern voice: "lẻ"
    assert (post.headers["api-key"], post.headers["voice"], post.headers["speed"]) == (
        "k-123",
        "linhsan",
        "-2",
    )
    assert [r.path for r in fake.received[1:]] == ["/files/abc.mp3"] * 3
    assert audio.engine == "fpt-like" and audio.duration_ms > 700


def test_base64_audio_in_json(engines: list[str]) -> None:
    body = json.dumps({"data": {"audio": base64.b64encode(MP3).decode()}}).encode()
    with FakeServer(lambda _: Reply(200, body, {"Content-Type": "application/json"})) as fake:
        add(
            engines,
            name="b64",
            url=fake.url,
            response="json",
            audio_field="data.audio",
            voices={"a": "north"},
        )
        assert render("Xin chào", engine="b64", voice="a").duration_ms > 700


def test_long_text_split_within_the_service_limit(engines: list[str]) -> None:
    with FakeServer(lambda _: Reply(200, MP3, {"Content-Type": "audio/mpeg"})) as fake:
        add(engines, name="small", url=fake.url, voices={"a": "north"}, max_chars=60)
        audio = render("Thông báo khẩn. " * 12 + "Bà con chú ý theo dõi.", engine="small", voice="a")
    texts = [r.json()["text"] for r in fake.received]
    assert len(texts) > 1 and all(len(t) <= 60 for t in texts)
    assert " ".join(texts) == audio.text


@pytest.mark.parametrize(
    ("reply", "message"),
    [
        (Reply(401, b'{"message":"invalid api key"}'), r"refused the request: HTTP 401 .*invalid api key"),
        (Reply(200, b'{"error":"quota"}', {"Content-Type": "application/json"}), "instead of audio"),
        (Reply(200, b"", {"Content-Type": "audio/mpeg"}), "empty audio file"),
        (Reply(200, b"\x13\x37 not audio at all" * 20, {"Content-Type": "audio/mpeg"}), "not audio"),
        (Reply(503, b"maintenance"), r"keeps failing \(HTTP 503\) after 2 attempts"),
    ],
)
def test_service_failures_are_clear(engines: list[str], reply: Reply, message: str) -> None:
    with FakeServer(lambda _: reply) as fake:
        add(engines, name="flaky", url=fake.url, voices={"a": "north"})
        with pytest.raises(EngineError, match=message) as info:
            render("Xin chào", engine="flaky", voice="a")
    assert info.value.engine == "flaky"


def test_json_without_audio_reports_the_service_message(engines: list[str]) -> None:
    body = b'{"error": 1, "message": "Text too long"}'
    with FakeServer(lambda _: Reply(200, body, {"Content-Type": "application/json"})) as fake:
        add(engines, name="fptish", url=fake.url, response="json", link_field="async", voices={"a": "north"})
        with pytest.raises(EngineError, match="answered without audio: Text too long"):
            render("Xin chào", engine="fptish", voice="a")


def test_missing_api_key_variable(engines: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_SUCH_KEY_X", raising=False)
    with FakeServer(lambda _: Reply(200, MP3)) as fake:
        add(engines, name="keyless", url=fake.url, voices={"a": "north"}, headers={"key": "${NO_SUCH_KEY_X}"})
        with pytest.raises(EngineError, match="NO_SUCH_KEY_X is not set"):
            render("Xin chào", engine="keyless", voice="a")
    assert fake.received == []


def test_unknown_voice_and_fallback_voice_by_accent(engines: list[str]) -> None:
    add(engines, name="down", url=closed_port_url(), retries=0, voices={"mien-nam": "south"})
    with pytest.raises(UnknownVoiceError, match="Valid voices: mien-nam"):
        render("Xin chào", engine="down", voice="vi", fallback=["espeak-ng"])
    audio = render("Có 105 hộ", engine="down", voice="mien-nam", fallback=["espeak-ng"])
    assert (audio.engine, audio.voice) == ("espeak-ng", "vi-vn-x-south")  # same accent
    assert audio.text == "Có một trăm lẻ năm hộ"
    assert audio.warnings[0].startswith("fell back from down to espeak-ng: Cannot reach down")


def test_config_is_validated() -> None:
    with pytest.raises(ValueError, match="at least one voice"):
        HttpEngineConfig(name="x", url="http://x", voices={})
    with pytest.raises(ValueError):
        HttpEngineConfig.model_validate({"name": "x", "url": "http://x", "voices": {"a": "west"}})
    with pytest.raises(ValueError):
        HttpEngineConfig.model_validate(
            {"name": "x", "url": "http://x", "voices": {"a": "north"}, "bogus": 1}
        )
