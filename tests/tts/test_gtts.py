"""gTTS against a local fake of Google's endpoint: chunking, retries, timeouts, errors."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.tts.fakes import FakeServer, Received, Reply, closed_port_url, google_reply, scripted, tone_mp3
from tts import EngineError, render
from tts.engine import register_engine
from tts.gtts_engine import RPC_PATH, GttsEngine
from tts.http import RetryPolicy

LONG = (
    "Thông báo: Ủy ban nhân dân phường tổ chức tiêm phòng vắc xin cho trẻ em dưới 5 tuổi tại nhà văn hóa "
    "tổ dân phố số 3, từ 7h30 đến 11h ngày 22/11/2026. Đề nghị các gia đình đưa trẻ đi tiêm đúng giờ, "
    "mang theo sổ tiêm chủng và thẻ BHYT. Mọi thắc mắc xin liên hệ trạm y tế phường qua số 0912.345.678."
)
MP3 = tone_mp3(600)


def use(url: str, *, retries: int = 2, timeout_s: float = 2.0) -> GttsEngine:
    engine = GttsEngine(
        base_url=url, policy=RetryPolicy(timeout_s=timeout_s, retries=retries, backoff_s=0.01), pause_s=0.0
    )
    register_engine(engine, replace=True)
    return engine


@pytest.fixture(autouse=True)
def restore_default_gtts() -> Iterator[None]:
    yield
    register_engine(GttsEngine(), replace=True)


def test_long_text_is_chunked_and_sent_as_gtts_does() -> None:
    with FakeServer(lambda _: google_reply(MP3)) as fake:
        use(fake.url)
        audio = render(LONG, engine="gtts", voice="vi")
    texts = [r.gtts_text() for r in fake.received]
    assert all(r.method == "POST" and r.path == RPC_PATH for r in fake.received)
    assert all(
        r.headers["content-type"].startswith("application/x-www-form-urlencoded") for r in fake.received
    )
    assert {lang for _, lang in texts} == {"vi"}
    assert all(len(t) <= 100 for t, _ in texts)
    assert " ".join(t for t, _ in texts) == audio.text  # nothing lost, nothing repeated
    minimum = -(-len(audio.text) // 100)
    assert minimum <= len(texts) <= 2 * minimum  # packed up to the limit, not one request per clause
    assert "bảy giờ ba mươi phút" in audio.text and "bảo hiểm y tế" in audio.text
    assert (audio.engine, audio.voice, audio.warnings) == ("gtts", "vi", ())
    assert audio.duration_ms > 600 * len(texts)  # every chunk's audio is in the result


def test_http_429_and_5xx_are_retried_with_backoff() -> None:
    replies = [Reply(429, b"Too Many Requests", {"Retry-After": "0"}), Reply(503, b"busy")]
    with FakeServer(scripted(replies, google_reply(MP3))) as fake:
        use(fake.url, retries=2)
        audio = render("Xin chào bà con", engine="gtts")
    assert len(fake.received) == 3 and audio.engine == "gtts"


def test_persistent_429_gives_a_clear_error() -> None:
    with FakeServer(lambda _: Reply(429, b"Too Many Requests", {"Retry-After": "0"})) as fake:
        use(fake.url, retries=2)
        with pytest.raises(EngineError, match=r"rate-limiting us \(HTTP 429\) after 3 attempts"):
            render("Xin chào bà con", engine="gtts")
    assert len(fake.received) == 3


def test_unreachable_service_says_so() -> None:
    use(closed_port_url(), retries=1)
    with pytest.raises(
        EngineError,
        match=r"Cannot reach Google Translate text-to-speech at 127\.0\.0\.1:\d+ "
        r"after 2 attempts.*offline espeak-ng",
    ) as info:
        render("Xin chào bà con", engine="gtts")
    assert info.value.engine == "gtts"


def test_timeout_is_bounded_and_retried() -> None:
    with FakeServer(lambda _: Reply(200, b"late", delay_s=1.0)) as fake:
        use(fake.url, retries=1, timeout_s=0.2)
        with pytest.raises(EngineError, match=r"did not answer within 0\.2 s \(2 attempts\)"):
            render("Xin chào bà con", engine="gtts")
    assert len(fake.received) == 2


@pytest.mark.parametrize(
    ("reply", "message"),
    [
        (Reply(200, b"<html>captcha</html>", {"Content-Type": "text/html"}), "answered without audio"),
        (google_reply(b"\x00garbage, not mp3\x00" * 10), "not audio"),
        (google_reply(b""), "empty audio file"),
        (Reply(400, b"bad request"), r"refused the request: HTTP 400 bad request"),
    ],
)
def test_bad_answers_are_engine_errors(reply: Reply, message: str) -> None:
    with FakeServer(lambda _: reply) as fake:
        use(fake.url, retries=0)
        with pytest.raises(EngineError, match=message):
            render("Xin chào bà con", engine="gtts")


def test_falls_back_to_espeak_with_a_visible_warning() -> None:
    use(closed_port_url(), retries=0)
    audio = render("Họp lúc 7h30", engine="gtts", fallback=["espeak-ng"])
    assert (audio.engine, audio.voice, audio.requested_engine) == ("espeak-ng", "vi", "gtts")
    assert len(audio.warnings) == 1
    assert audio.warnings[0].startswith("fell back from gtts to espeak-ng: Cannot reach Google Translate")
    assert audio.duration_ms > 500


def test_speed_is_applied_by_time_stretch(tmp_path: Path) -> None:
    with FakeServer(lambda _: google_reply(tone_mp3(3000))) as fake:
        use(fake.url)
        normal = render("Xin chào", engine="gtts", audio=None)
        fast = render("Xin chào", engine="gtts", speed=1.5)
    assert len(fake.received) == 2  # the service is asked the same either way
    assert fast.duration_ms == pytest.approx(normal.duration_ms / 1.5, abs=300)


def test_cached_audio_is_served_when_the_service_is_down(tmp_path: Path) -> None:
    with FakeServer(lambda _: google_reply(MP3)) as fake:
        use(fake.url)
        first = render("Xin chào bà con", engine="gtts", fallback=["espeak-ng"], cache_dir=tmp_path)
    use(closed_port_url(), retries=0)
    again = render("Xin chào bà con", engine="gtts", fallback=["espeak-ng"], cache_dir=tmp_path)
    assert again == first and again.cached and again.warnings == ()


def test_gtts_wire_format_matches_the_library(tmp_path: Path) -> None:
    from gtts import gTTS

    seen: list[Received] = []

    def handler(req: Received) -> Reply:
        seen.append(req)
        return google_reply(MP3)

    with FakeServer(handler) as fake:
        use(fake.url).synthesize("Xin chào bà con", voice="vi", speed=1.0)
    assert seen[0].body.decode() == gTTS("Xin chào bà con", lang="vi", lang_check=False).get_bodies()[0]
