"""The history shows and exports the live sessions (livelog) and the relays (relay) next to the
broadcasts: period filter, ward scoping, formula-safe cells, an audio player for archived sessions.
Rows are put straight into the database; no broker runs here."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest

from controller.live.models import LiveLog
from controller.relays.models import Relay
from devices.broker import free_port
from devices.protocol import now_ms
from scheduler import TIMEZONE
from tests.conftest import make_settings, running_controller

pytestmark = pytest.mark.timeout(60)

DAY = 86_400_000


def client(app: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://controller", timeout=30)


@asynccontextmanager
async def login(app: Any, admin: httpx.AsyncClient, name: str, org: str | None,
                ) -> AsyncIterator[httpx.AsyncClient]:
    """A browser logged in (cookie session) as a new operator of ``org``."""
    r = await admin.post("/api/users", json={"username": name, "role": "operator", "org_unit_id": org})
    assert r.status_code == 201, r.text
    async with client(app) as c:
        one_time = r.json()["password"]
        r = await c.post("/api/login", json={"username": name, "password": one_time})
        assert r.status_code == 200, r.text
        r = await c.post("/api/me/password", json={"current": one_time, "new": "Chosen-pass-4812x"},
                         headers={"X-CSRF-Token": r.json()["csrf_token"]})  # the pages ask for it first
        assert r.status_code == 200, r.text
        yield c


@pytest.fixture
async def ward(tmp_path: Any) -> AsyncIterator[tuple[Any, httpx.AsyncClient]]:
    async with running_controller(make_settings(tmp_path, free_port())) as (app, admin):
        for org, parent in (("hn", None), ("wa", "hn"), ("wb", "hn")):
            r = await admin.post("/api/org-units", json={"id": org, "name": org, "parent_id": parent})
            assert r.status_code == 201, r.text
        for zone, org in (("za", "wa"), ("zb", "wb")):
            assert (await admin.post("/api/zones", json={"id": zone, "name": zone, "org_unit_id": org})
                    ).status_code == 201
            r = await admin.post("/api/nodes", json={"id": f"{zone}-1", "zones": [zone]})
            assert r.status_code == 201, r.text
        now = now_ms()
        archive = tmp_path / "audio" / "live" / "2026-01" / "live-a.mp3"
        archive.parent.mkdir(parents=True)
        archive.write_bytes(b"\xff\xf3" + bytes(400))
        with app.state.services.db.session() as s:
            s.add(LiveLog(id="live-a", user="=cmd|' /C calc'!A0", target={"zones": ["za"]}, nodes=["za-1"],
                          state="ended", reason="stopped", opened_at=now - 60_000, started_at=now - 59_000,
                          ended_at=now - 1_000, frames=1450, units_heard=["za-1"],
                          archive="live/2026-01/live-a.mp3", archive_duration_ms=58_000))
            s.add(LiveLog(id="live-b", user="opb", target={"zones": ["zb"]}, nodes=["zb-1"], state="ended",
                          reason="disconnected", opened_at=now - 30_000, started_at=now - 29_000,
                          ended_at=now - 20_000, frames=200))
            s.add(LiveLog(id="live-old", user="admin", target={"all": True}, nodes=["za-1", "zb-1"],
                          state="ended", reason="silent", opened_at=now - 40 * DAY, ended_at=now - 40 * DAY))
            s.add(Relay(id="relay-a", url="http://radio.example/vov1.mp3", mode="node_fetch",
                        target={"zones": ["za"]}, nodes=["za-1"], state="ended", reason="finished",
                        started_at=now - 3_600_000, ended_at=now - 1_800_000, created_by="@admin"))
            s.add(Relay(id="relay-b", url="http://radio.example/vov2.mp3", mode="republish",
                        target={"zones": ["zb"]}, nodes=["zb-1"], state="playing", started_at=now - 5_000,
                        created_by="opb"))
            s.commit()
        yield app, admin


async def test_history_page_and_exports_show_live_sessions_and_relays(ward: tuple[Any, httpx.AsyncClient],
                                                                        ) -> None:
    from openpyxl import load_workbook

    app, admin = ward
    async with login(app, admin, "root", None) as c:
        page = await c.get("/history")
        assert page.status_code == 200
        html = page.text
        assert "Phát trực tiếp (3)" in html and "Tiếp sóng (2)" in html
        assert '<audio controls preload="none" src="/api/live/sessions/live-a/audio"' in html
        assert "Người phát dừng" in html and "Điện thoại mất kết nối" in html and "Hết thời lượng" in html
        assert "http://radio.example/vov1.mp3" in html and "0′58″" in html
        assets = len((await c.get("/app.css")).content) + len((await c.get("/app.js")).content)
        assert len(page.content) + assets <= 150_000
        c.cookies.set("lang", "en")
        en = (await c.get("/history", params={"zone": "za"})).text
        assert "Live broadcast (2)" in en and "Relays (1)" in en and "Stopped" in en  # live-old: all
        # from the day of 2 h ago (relay-a started an hour ago: yesterday, just after ward midnight)
        now_vn = datetime.now(tz=TIMEZONE)
        since, today = (now_vn - timedelta(hours=2)).date().isoformat(), now_vn.date().isoformat()
        recent = (await c.get("/history", params={"from": since, "to": today})).text
        assert "Live broadcast (2)" in recent and "Relays (2)" in recent  # not live-old (40 days ago)

    r = await admin.get("/api/reports/live.csv")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(r.text.lstrip("\ufeff"))))
    assert rows[0][:6] == ["STT", "Mở lúc", "Bắt đầu", "Kết thúc", "Thời lượng (giây)", "Người phát"]
    assert len(rows) == 4
    live_a = next(dict(zip(rows[0], row, strict=True)) for row in rows[1:] if row[-1] == "live-a")
    assert live_a["Người phát"] == "'=cmd|' /C calc'!A0"  # no formula
    assert live_a["Khu vực phát"] == "za" and live_a["Cụm loa đã phát"] == "za-1"  # names (here = ids)
    assert live_a["Trạng thái"] == "Kết thúc" and live_a["Lý do kết thúc"] == "Người phát dừng"
    assert live_a["Bản ghi âm"] == "/api/live/sessions/live-a/audio" and live_a["Bản ghi (giây)"] == "58"
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d", live_a["Bắt đầu"])  # ISO, ward time
    r = await admin.get("/api/reports/relays.csv", params={"from": "2000-01-01"})
    rows = list(csv.reader(io.StringIO(r.text.lstrip("\ufeff"))))
    assert rows[0][:4] == ["STT", "Bắt đầu", "Kết thúc", "Thời lượng (giây)"] and len(rows) == 3
    relay_a = next(dict(zip(rows[0], row, strict=True)) for row in rows[1:] if row[-1] == "relay-a")
    assert relay_a["Nguồn phát (URL)"] == "http://radio.example/vov1.mp3"
    assert relay_a["Cách tiếp sóng"] == "Loa tự lấy luồng" and relay_a["Loại tin"] == "Thường"
    assert relay_a["Lý do kết thúc"] == "Hết thời lượng" and relay_a["Thời lượng (giây)"] == "1800"
    assert relay_a["Người thực hiện"] == "'@admin"
    r = await admin.get("/api/reports/broadcasts.xlsx", params={"zone": "za"})
    wb = load_workbook(io.BytesIO(r.content))
    assert wb.sheetnames == ["Lượt phát", "Phát trực tiếp", "Tiếp sóng"]
    live = wb["Phát trực tiếp"]
    assert [row[-1].value for row in live.iter_rows(min_row=5, max_row=6)] == ["live-a", "live-old"]
    assert live["F5"].value == "'=cmd|' /C calc'!A0" and isinstance(live["C5"].value, datetime)
    assert [row[-1].value for row in wb["Tiếp sóng"].iter_rows(min_row=5, max_row=5)] == ["relay-a"]


async def test_a_ward_sees_only_its_own_sessions_and_relays(ward: tuple[Any, httpx.AsyncClient]) -> None:
    app, admin = ward
    async with login(app, admin, "opb", "wb") as b:
        html = (await b.get("/history")).text
        assert "live-a/audio" not in html and "vov1.mp3" not in html and "vov2.mp3" in html
        assert "Phát trực tiếp (1)" in html  # live-old reached ward A's unit too
        csv_text = (await b.get("/api/reports/live.csv", params={"from": "2000-01-01"})).text
        assert "live-b" in csv_text and "live-a" not in csv_text and "live-old" not in csv_text
        assert "vov1" not in (await b.get("/api/reports/relays.csv")).text
        listing = (await b.get("/api/live/sessions")).json()
        assert [i["id"] for i in listing["items"]] == ["live-b"]
        assert (await b.get("/api/live/sessions/live-a")).status_code == 403
        assert (await b.get("/api/live/sessions/live-a/audio")).status_code == 403
        assert (await b.get("/api/live/sessions/nope")).status_code == 404


async def test_the_session_api_filters_and_pages(ward: tuple[Any, httpx.AsyncClient]) -> None:
    _, admin = ward
    items = (await admin.get("/api/live/sessions")).json()["items"]
    assert [i["id"] for i in items] == ["live-b", "live-a", "live-old"]  # newest first
    assert items[1]["duration_ms"] == 58_000 and items[1]["audio"] == "/api/live/sessions/live-a/audio"
    page = (await admin.get("/api/live/sessions", params={"limit": 2})).json()
    assert len(page["items"]) == 2 and page["next_offset"] == 2
    rest = (await admin.get("/api/live/sessions", params={"limit": 2, "offset": 2})).json()
    assert [i["id"] for i in rest["items"]] == ["live-old"] and rest["next_offset"] is None
    today = datetime.now(tz=TIMEZONE).date().isoformat()
    recent = (await admin.get("/api/live/sessions", params={"from": today, "to": today})).json()["items"]
    assert {i["id"] for i in recent} <= {"live-a", "live-b"} and "live-old" not in {i["id"] for i in recent}
    assert [i["id"] for i in (await admin.get("/api/live/sessions", params={"user": "opb"})).json()["items"]
            ] == ["live-b"]
    audio = await admin.get("/api/live/sessions/live-a/audio")
    assert audio.status_code == 200 and audio.headers["content-type"] == "audio/mpeg"
    r = await admin.get("/api/live/sessions/live-b/audio")
    assert r.status_code == 404 and "not archived" in r.json()["detail"]
