"""The APIs behind the phone's admin screens (issue 14): relay presets, the audio library, the
bulletin editor's duplicate and delete, acknowledged alerts; each refusal with its stable code."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from devices.broker import free_port
from tests.conftest import make_settings, running_controller
from tests.tts.test_recording import make_audio

pytestmark = pytest.mark.timeout(90)


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[tuple[Any, httpx.AsyncClient]]:
    settings = make_settings(tmp_path / "data", free_port())
    settings.tts.upload_max_mb = 1
    async with running_controller(settings) as pair:
        yield pair


async def test_relay_presets_are_kept_by_admins(api: tuple[Any, httpx.AsyncClient]) -> None:
    _, c = api
    r = await c.post("/api/relay-presets", json={"name": "VOV1", "url": "https://vov.example/vov1.m3u8"})
    assert r.status_code == 201, r.text
    pid = r.json()["id"]
    assert r.json()["mode"] == "node_fetch"
    r = await c.patch(f"/api/relay-presets/{pid}", json={"name": "VOV1 - Thời sự", "mode": "republish"})
    assert r.status_code == 200 and r.json()["name"] == "VOV1 - Thời sự" and r.json()["mode"] == "republish"
    bad = await c.post("/api/relay-presets", json={"name": "x", "url": "ftp://nope"})
    assert bad.status_code == 422 and bad.json()["code"] == "invalid"
    assert [p["name"] for p in (await c.get("/api/relay-presets")).json()] == ["VOV1 - Thời sự"]
    pw = (await c.post("/api/users", json={"username": "vanhanh", "role": "operator"})).json()["password"]
    async with httpx.AsyncClient(transport=c._transport, base_url="http://controller",
                                 auth=("vanhanh", pw)) as op:
        assert len((await op.get("/api/relay-presets")).json()) == 1  # everyone reads them
        denied = await op.post("/api/relay-presets", json={"name": "y", "url": "http://a.b/c"})
        assert denied.status_code == 403
    assert (await c.delete(f"/api/relay-presets/{pid}")).status_code == 204
    assert (await c.get("/api/relay-presets")).json() == []
    gone = await c.delete(f"/api/relay-presets/{pid}")
    assert gone.status_code == 404 and gone.json()["code"] == "not_found"


async def test_library_upload_preview_reuse_and_refusals(api: tuple[Any, httpx.AsyncClient],
                                                        tmp_path: Path) -> None:
    _, c = api
    for fmt, mime in (("mp3", "audio/mpeg"), ("wav", "audio/wav"), ("m4a", "audio/mp4")):
        data = make_audio(tmp_path, fmt, seconds=2)
        r = await c.post("/api/library", files={"file": (f"nhạc hiệu.{fmt}", data, mime)})
        assert r.status_code == 201, r.text
        assert r.json()["title"] == "nhạc hiệu" and r.json()["source_format"] == fmt
    items = (await c.get("/api/library")).json()
    assert len(items) == 3 and abs(items[0]["duration_ms"] - 2400) < 200
    audio = await c.get(f"/api/library/{items[0]['id']}/audio")
    assert audio.status_code == 200 and audio.headers["content-type"] == "audio/mpeg"
    r = await c.post(f"/api/library/{items[0]['id']}/bulletin", json={"title": "Nhạc hiệu buổi sáng"})
    assert r.status_code == 201, r.text
    b = r.json()
    assert b["title"] == "Nhạc hiệu buổi sáng" and b["voice"] == "recording" and b["approval"] == "approved"
    assert (await c.get(b["audio"]["url"])).content == audio.content  # the item's very audio
    refused = {
        "text.mp3": (b"this is not audio at all" * 10, 422, "audio_bad"),
        "big.wav": (make_audio(tmp_path, "wav", seconds=20), 413, "file_too_big"),
        "empty.wav": (b"", 422, "audio_bad"),
    }
    for name, (data, code, err) in refused.items():
        r = await c.post("/api/library", files={"file": (name, data, "application/octet-stream")})
        assert (r.status_code, r.json().get("code")) == (code, err), (name, r.text)
    assert len((await c.get("/api/library")).json()) == 3  # nothing written
    assert (await c.delete(f"/api/library/{items[0]['id']}")).status_code == 204
    assert (await c.get(b["audio"]["url"])).status_code == 200  # the bulletin keeps its audio


async def test_duplicate_delete_and_resubmit(api: tuple[Any, httpx.AsyncClient]) -> None:
    _, c = api
    pw = (await c.post("/api/users", json={"username": "bientap", "role": "editor"})).json()["password"]
    async with httpx.AsyncClient(transport=c._transport, base_url="http://controller",
                                 auth=("bientap", pw), timeout=60) as ed:
        r = await ed.post("/api/bulletins", json={"title": "Họp tổ", "text": "Mời bà con họp tổ lúc 19 giờ."})
        assert r.status_code == 201, r.text
        bid = r.json()["id"]
        assert (await ed.post(f"/api/bulletins/{bid}/submit")).status_code == 200
        r = await c.post(f"/api/bulletins/{bid}/reject", json={"note": "Ghi rõ địa điểm họp"})
        assert r.json()["approval"] == "rejected" and r.json()["decision_note"] == "Ghi rõ địa điểm họp"
        fixed = "Mời bà con họp tổ lúc 19 giờ tại nhà văn hóa."
        r = await ed.patch(f"/api/bulletins/{bid}", json={"text": fixed})
        assert r.json()["approval"] == "draft"  # edited after the rejection
        assert (await ed.post(f"/api/bulletins/{bid}/submit")).json()["approval"] == "submitted"
        dup = await ed.post(f"/api/bulletins/{bid}/duplicate")
        assert dup.status_code == 201, dup.text
        d = dup.json()
        assert d["title"] == "Họp tổ (bản sao)" and d["approval"] == "draft" and d["id"] != bid
        assert d["text"].endswith("tại nhà văn hóa.") and d["audio"]["sha256"] == r.json()["audio"]["sha256"]
        assert d["spoken_text"]
        assert (await ed.delete(f"/api/bulletins/{d['id']}")).status_code == 204
        assert (await ed.get(f"/api/bulletins/{d['id']}")).status_code == 404
    mine = (await c.post("/api/bulletins", json={"text": "Thông báo đã phát."})).json()
    await c.post("/api/zones", json={"id": "z1", "name": "Tổ 1"})
    await c.post("/api/nodes", json={"id": "z1-01", "zones": ["z1"]})
    assert (await c.post("/api/broadcasts", json={"bulletin_id": mine["id"], "target": {"zones": ["z1"]}})
            ).status_code == 201
    r = await c.delete(f"/api/bulletins/{mine['id']}")
    assert r.status_code == 409 and r.json()["code"] == "bulletin_aired"
    async with httpx.AsyncClient(transport=c._transport, base_url="http://controller",
                                 auth=("bientap", pw)) as ed:
        r = await ed.delete(f"/api/bulletins/{bid}")
        assert r.status_code == 204  # the author's own, never aired
        r = await ed.delete(f"/api/bulletins/{mine['id']}")
        assert r.status_code == 403 and r.json()["code"] == "author_only"


async def test_alert_ack_is_stored_once(api: tuple[Any, httpx.AsyncClient]) -> None:
    app, c = api
    for _ in range(2):
        r = await c.post("/api/alerts/ack", json={"keys": ["offline:a:1", "failed:b"]})
        assert r.status_code == 200 and r.json() == {"acknowledged": 2}
    assert (await c.post("/api/alerts/ack", json={"keys": []})).status_code == 422
