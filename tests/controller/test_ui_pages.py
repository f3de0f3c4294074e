"""The phone screens render (logged in through the cookie session), escape user text, stay under
150 KB, and the exports and the SSE stream answer. No broker runs here."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from devices.broker import free_port
from tests.conftest import make_settings, running_controller

pytestmark = pytest.mark.timeout(90)

XSS = '<script>alert("x")</script><img src=x onerror=alert(1)>'
SCREENS = ["/", "/units", "/units?zone=z1&state=offline", "/units/n1", "/compose", "/bulletins", "/schedule",
           "/history", "/history?status=done&from=2026-01-01&to=2030-01-01", "/emergency", "/calendar",
           "/calendar?view=month", "/dictionary", "/audit"]


def client(app: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://controller", timeout=60)


@pytest.fixture
async def ui(tmp_path: Path) -> AsyncIterator[tuple[Any, httpx.AsyncClient, httpx.AsyncClient]]:
    async with running_controller(make_settings(tmp_path, free_port())) as (app, admin):
        assert (await admin.post("/api/zones", json={"id": "z1", "name": "Tổ 1 " + XSS})).status_code == 201
        unit = {"id": "n1", "zones": ["z1"], "name": XSS, "lat": 21.0, "lon": 105.8}
        r = await admin.post("/api/nodes", json=unit)
        assert r.status_code == 201
        c = client(app)
        r = await c.post("/api/login", json={"username": "admin", "password": "test-password-1"})
        assert r.status_code == 200
        c.headers["X-CSRF-Token"] = r.json()["csrf_token"]
        yield app, admin, c
        await c.aclose()


async def test_screens_render_escaped_and_small(ui: tuple[Any, httpx.AsyncClient, httpx.AsyncClient]) -> None:
    app, admin, c = ui
    r = await c.post("/api/bulletins", json={"title": XSS, "text": "Họp tổ dân phố " + XSS})
    assert r.status_code == 201, r.text
    bid = r.json()["id"]
    r = await c.post("/api/broadcasts", json={"bulletin_id": bid, "target": {"zones": ["z1"]}})
    assert r.status_code == 201, r.text
    screens = [*SCREENS, f"/broadcasts/{r.json()['id']}"]
    assets = len((await c.get("/app.css")).content) + len((await c.get("/app.js")).content)
    for url in screens:
        page = await c.get(url)
        assert page.status_code == 200, (url, page.text[:300])
        assert "<script>alert" not in page.text and "<img src=x" not in page.text, url
        assert len(page.content) + assets <= 150_000, url
    home = (await c.get("/")).text
    assert "Tổng quan" in home and "Trực tuyến" in home  # Vietnamese with diacritics by default
    c.cookies.set("lang", "en")
    assert "Dashboard" in (await c.get("/")).text


async def test_pages_need_a_session(ui: tuple[Any, httpx.AsyncClient, httpx.AsyncClient]) -> None:
    app, _, _ = ui
    async with client(app) as anon:
        for url in SCREENS:
            r = await anon.get(url)
            assert r.status_code == 303 and r.headers["location"].startswith("/login"), url
        for bad in ("//evil.example", "/\\evil.example", "https://evil.example"):
            login = await anon.get("/login", params={"next": bad})
            assert login.status_code == 200 and "Đăng nhập" in login.text and "evil.example" not in login.text


async def test_a_province_of_units_is_paged(ui: tuple[Any, httpx.AsyncClient, httpx.AsyncClient]) -> None:
    from controller.fleet.models import Node, NodeZone

    app, _, c = ui
    with app.state.services.db.session() as s:
        for i in range(2000):
            s.add(Node(id=f"u{i:04d}", name=f"Loa thôn {i}"))
            s.add(NodeZone(node_id=f"u{i:04d}", zone_id="z1"))
        s.commit()
    first = await c.get("/units")
    assert first.status_code == 200 and "1 / 21" in first.text and len(first.content) < 100_000
    last = await c.get("/units", params={"page": 21})
    assert "u1999" in last.text and "21 / 21" in last.text


async def test_exports(ui: tuple[Any, httpx.AsyncClient, httpx.AsyncClient]) -> None:
    from openpyxl import load_workbook

    _, admin, c = ui
    r = await c.post("/api/bulletins", json={"title": "=HYPERLINK(1)", "text": "Họp tổ dân phố."})
    r = await c.post("/api/broadcasts", json={"bulletin_id": r.json()["id"], "target": {"all": True}})
    assert r.status_code == 201
    r = await admin.get("/api/reports/broadcasts.csv")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    lines = r.text.lstrip("\ufeff").splitlines()
    assert lines[0].startswith("STT,Thời gian phát,Tiêu đề bản tin") and len(lines) == 2
    assert ",'=HYPERLINK(1)," in lines[1]  # no formula injection
    r = await admin.get("/api/reports/broadcasts.xlsx", params={"zone": "z1"})
    ws = load_workbook(io.BytesIO(r.content))["Lượt phát"]
    assert ws["A4"].value == "STT" and ws["C5"].value == "'=HYPERLINK(1)" and ws["C6"].value is None


async def test_compose_records_and_uploads_webm(ui: tuple[Any, httpx.AsyncClient, httpx.AsyncClient],
                                              tmp_path: Path) -> None:
    from tests.tts.test_recording import make_audio

    _, _, c = ui
    page = (await c.get("/compose")).text
    assert 'id="record"' in page and "Ghi âm" in page and "MediaRecorder" in page
    assert '"/api/bulletins/recordings"' in page and '"X-CSRF-Token": CSRF' in page
    webm = make_audio(tmp_path, "webm", seconds=2)  # what a phone's MediaRecorder sends
    files = {"file": ("ghi-am.webm", webm, "audio/webm")}
    token = c.headers.pop("X-CSRF-Token")
    assert (await c.post("/api/bulletins/recordings", files=files)).status_code == 403  # no CSRF header
    c.headers["X-CSRF-Token"] = token
    r = await c.post("/api/bulletins/recordings", files=files, data={"priority": "normal"})
    assert r.status_code == 201, r.text
    audio = await c.get(r.json()["audio"]["url"])
    assert audio.status_code == 200 and audio.headers["content-type"] == "audio/mpeg"
