"""Speech over the HTTP API: preview, pronunciation dictionary, bulletins with warnings.

The real controller runs in-process (no broker needed: its MQTT link retries in the
background); gTTS points at an address where nothing listens, like a ward without internet.
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from controller.bulletins.speech_settings import GttsSettings, TtsSettings
from devices.broker import free_port
from tests.conftest import make_settings, running_controller
from tests.tts.fakes import closed_port_url
from tts.engine import register_engine
from tts.gtts_engine import GttsEngine

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    tts_cfg = TtsSettings(
        engine="gtts",
        voice="vi",
        fallback=["espeak-ng"],  # type: ignore[call-arg]
        gtts=GttsSettings(
            base_url=closed_port_url(),
            retries=0,  # type: ignore[call-arg]
            pause_s=0,
        ),
    )
    settings = make_settings(tmp_path, free_port()).model_copy(update={"tts": tts_cfg})
    async with running_controller(settings) as (_, client):
        yield client
    register_engine(GttsEngine(), replace=True)


async def test_bulletin_records_fallback_and_spoken_form(api: httpx.AsyncClient) -> None:
    r = await api.post("/api/bulletins", json={"text": "Họp lúc 7h30 ngày 22/11 tại UBND phường."})
    assert r.status_code == 201, r.text
    b = r.json()
    assert b["audio"]["engine"] == "espeak-ng" and b["requested_engine"] == "gtts"
    assert b["spoken_text"] == (
        "Họp lúc bảy giờ ba mươi phút ngày hai mươi hai tháng mười một tại ủy ban nhân dân phường."
    )
    assert len(b["warnings"]) == 1 and b["warnings"][0].startswith(
        "fell back from gtts to espeak-ng: Cannot reach"
    )
    again = (await api.get(f"/api/bulletins/{b['id']}")).json()
    assert again["warnings"] == b["warnings"] and again["spoken_text"] == b["spoken_text"]
    audio = await api.get(b["audio"]["url"])
    assert audio.status_code == 200 and audio.headers["content-type"] == "audio/mpeg"


async def test_emergency_bulletin_carries_the_attention_tone(api: httpx.AsyncClient) -> None:
    text = "Bão số 3 đổ bộ, đề nghị bà con ở trong nhà."
    normal = (await api.post("/api/bulletins", json={"text": text})).json()
    urgent = (await api.post("/api/bulletins", json={"text": text, "priority": "emergency"})).json()
    assert urgent["audio"]["duration_ms"] - normal["audio"]["duration_ms"] > 6000


async def test_preview_returns_spoken_text_and_playable_audio(api: httpx.AsyncClient) -> None:
    r = await api.post(
        "/api/speech/preview",
        json={
            "text": "Có 105 hộ, đạt 99,3%",
            "voice": "vi-vn-x-south",
            "engine": "espeak-ng",
            "inline": True,
        },
    )
    assert r.status_code == 200, r.text
    p = r.json()
    assert p["text"] == "Có một trăm lẻ năm hộ, đạt chín mươi chín phẩy ba phần trăm"
    assert (p["engine"], p["voice"], p["codec"], p["warnings"]) == ("espeak-ng", "vi-vn-x-south", "mp3", [])
    audio = await api.get(p["audio_url"])
    assert audio.status_code == 200 and audio.headers["content-type"] == "audio/mpeg"
    assert audio.content == base64.b64decode(p["audio_base64"]) and len(audio.content) == p["size"]
    assert p["duration_ms"] > 1000


async def test_preview_with_the_ward_chain_warns(api: httpx.AsyncClient) -> None:
    p = (await api.post("/api/speech/preview", json={"text": "Xin chào"})).json()
    assert p["engine"] == "espeak-ng" and p["requested_engine"] == "gtts"
    assert p["warnings"][0].startswith("fell back from gtts to espeak-ng") and p["audio_base64"] is None


@pytest.mark.parametrize(
    ("body", "status", "needle"),
    [
        ({"text": ""}, 422, "nothing to read aloud"),
        ({"text": "🔥🔥"}, 422, "nothing to read aloud"),
        ({"text": "a" * 5001}, 422, "limit is 5000"),
        ({"text": "Xin chào", "voice": "vi-hanoi", "engine": "espeak-ng"}, 422, "Unknown voice 'vi-hanoi'"),
        ({"text": "Xin chào", "engine": "festival"}, 422, "Unknown speech engine 'festival'"),
        ({"text": "Xin chào", "speed": 5}, 422, "less than or equal to 2"),
    ],
)
async def test_bad_previews(api: httpx.AsyncClient, body: dict[str, Any], status: int, needle: str) -> None:
    r = await api.post("/api/speech/preview", json=body)
    assert r.status_code == status and needle in r.text


async def test_dictionary_crud_and_its_effect(api: httpx.AsyncClient) -> None:
    assert (await api.get("/api/speech/dictionary")).json() == []
    r = await api.post(
        "/api/speech/dictionary", json={"term": "Kẻ Sặt", "spoken": "Kẻ Sặt", "note": "tên thôn"}
    )
    assert r.status_code == 201, r.text
    r2 = await api.post("/api/speech/dictionary", json={"term": "TDP", "spoken": "tổ dân phố số"})
    entry = r2.json()
    dup = await api.post("/api/speech/dictionary", json={"term": "kẻ sặt", "spoken": "x"})
    assert dup.status_code == 409 and "already in the dictionary" in dup.json()["detail"]
    bad = await api.post("/api/speech/dictionary", json={"term": "!!!", "spoken": "x"})
    assert bad.status_code == 422
    assert [e["term"] for e in (await api.get("/api/speech/dictionary")).json()] == ["Kẻ Sặt", "TDP"]

    before = (await api.post("/api/speech/normalize", json={"text": "TDP 3"})).json()
    assert before["text"] == "tổ dân phố số ba" and before["dictionary_hits"] == ["TDP"]
    preview = (
        await api.post("/api/speech/preview", json={"text": "Thôn kẻ sặt và TDP 3", "engine": "espeak-ng"})
    ).json()
    assert preview["dictionary_hits"] == ["Kẻ Sặt", "TDP"]
    assert preview["text"] == "Thôn Kẻ Sặt và tổ dân phố số ba"
    bulletin = (await api.post("/api/bulletins", json={"text": "Họp TDP 3"})).json()
    assert bulletin["spoken_text"] == "Họp tổ dân phố số ba" and bulletin["dictionary_hits"] == ["TDP"]

    assert (await api.delete(f"/api/speech/dictionary/{entry['id']}")).status_code == 204
    assert (await api.delete(f"/api/speech/dictionary/{entry['id']}")).status_code == 404
    after = (await api.post("/api/speech/normalize", json={"text": "TDP 3"})).json()
    assert after["text"] == "tổ dân phố ba" and after["dictionary_hits"] == []  # the built-in reading again


async def test_engines_and_login(api: httpx.AsyncClient) -> None:
    info = (await api.get("/api/speech/engines")).json()
    assert (info["engine"], info["fallback"]) == ("gtts", ["espeak-ng"])
    espeak = next(e for e in info["engines"] if e["name"] == "espeak-ng")
    assert [v["accent"] for v in espeak["voices"]] == ["north", "central", "south"]
    anon = httpx.BasicAuth("", "")
    for method, url in (
        ("GET", "/api/speech/dictionary"),
        ("POST", "/api/speech/preview"),
        ("GET", "/api/speech/engines"),
        ("GET", "/api/speech/audio/" + "0" * 64),
    ):
        r = await api.request(method, url, auth=anon, json={"text": "x"} if method == "POST" else None)
        assert r.status_code == 401
    assert (await api.get("/api/speech/audio/" + "0" * 64)).status_code == 404
    assert (await api.get("/api/speech/audio/..%2F..%2Fetc")).status_code == 404
