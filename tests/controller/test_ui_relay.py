"""The relay screen (/relay, tiếp sóng) on the server side: it renders in Vietnamese and English,
escapes stream URLs, offers the URLs used before, shows a ward only its own relays, and the
schedule screen marks relay slots with the radio icon (an inline SVG: emoji need a font). No broker
runs here (relays are rows)."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from controller.relays.models import Relay, RelayOwner
from devices.broker import free_port
from tests.conftest import make_settings, running_controller
from tests.e2e.helpers import allowing

pytestmark = pytest.mark.timeout(90)

XSS_URL = 'http://radio.example/<script>alert("x")</script>.mp3'


def client(app: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://controller", timeout=60)


async def login(app: Any, admin: httpx.AsyncClient, name: str, role: str,
                org: str | None) -> httpx.AsyncClient:
    r = await admin.post("/api/users", json={"username": name, "role": role, "org_unit_id": org})
    assert r.status_code == 201, r.text
    c = client(app)
    one_time = r.json()["password"]
    r = await c.post("/api/login", json={"username": name, "password": one_time})
    assert r.status_code == 200, r.text
    r = await c.post("/api/me/password", json={"current": one_time, "new": "Chosen-pass-4812x"},
                     headers={"X-CSRF-Token": r.json()["csrf_token"]})  # the pages ask for it first
    assert r.status_code == 200, r.text
    c.headers["X-CSRF-Token"] = r.json()["csrf_token"]
    return c


@pytest.fixture
async def ward(tmp_path: Path) -> AsyncIterator[tuple[Any, httpx.AsyncClient]]:
    """Two wards (A: zone za, B: zone zb), one unit each."""
    settings = allowing(make_settings(tmp_path, free_port()), "http://radio.example")  # relays: no DNS
    async with running_controller(settings) as (app, admin):
        for org, parent in (("hn", None), ("wa", "hn"), ("wb", "hn")):
            body = {"id": org, "name": f"Đơn vị {org}", "parent_id": parent}
            r = await admin.post("/api/org-units", json=body)
            assert r.status_code == 201, r.text
        for zone, org in (("za", "wa"), ("zb", "wb")):
            r = await admin.post("/api/zones", json={"id": zone, "name": f"Tổ {zone}", "org_unit_id": org})
            assert r.status_code == 201, r.text
            r = await admin.post("/api/nodes", json={"id": f"{zone}-1", "zones": [zone]})
            assert r.status_code == 201, r.text
        yield app, admin


def items(page: str) -> list[dict[str, Any]]:
    m = re.search(r'<script id="rdata" type="application/json">(.*?)</script>', page, re.S)
    assert m, "the relay list data is embedded"
    return list(json.loads(m.group(1))["items"])


async def test_relay_screen_languages_escaping_and_weight(ward: tuple[Any, httpx.AsyncClient]) -> None:
    app, admin = ward
    c = await login(app, admin, "vh", "operator", None)
    try:
        page = await c.get("/relay")
        assert page.status_code == 200, page.text[:300]
        for vi in ("Tiếp sóng", "Địa chỉ luồng phát", "Loa tự lấy luồng", "Máy chủ chuyển tiếp",
                   "Bắt đầu ngay", "Lặp hằng ngày", "Thường", "Ưu tiên", "Khẩn cấp", 'type="datetime-local"',
                   "<datalist"):
            assert vi in page.text, vi
        assert '<a href="/relay" class="on">Tiếp sóng</a>' in page.text  # in the nav, marked
        assets = len((await c.get("/app.css")).content) + len((await c.get("/app.js")).content)
        assert len(page.content) + assets <= 150_000
        c.cookies.set("lang", "en")
        en = (await c.get("/relay")).text
        for word in ("Relays", "Stream URL", "Units fetch the stream", "Start now", "Repeat daily"):
            assert word in en, word
        c.cookies.set("lang", "vi")

        # not a stream address: refused by the API's pattern
        for bad in ("javascript:alert(1)", "http://x/a b", "ftp://radio.example/x.mp3"):
            r = await c.post("/api/relays", json={"url": bad, "target": {"zones": ["za"]}})
            assert r.status_code == 422, (bad, r.text)
        # a URL with markup is a valid URL: it is shown escaped (datalist, list data), never as markup
        later = (datetime.now(tz=UTC) + timedelta(days=1)).isoformat()
        r = await c.post("/api/relays", json={"url": XSS_URL, "target": {"zones": ["za"]}, "start_at": later,
                                              "duration_s": 600})
        assert r.status_code == 201, r.text
        rid = r.json()["id"]
        page = (await c.get("/relay")).text
        assert "<script>alert" not in page
        escaped = "http://radio.example/&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;.mp3"
        assert f'<option value="{escaped}">' in page
        shown = items(page)
        assert shown[0]["id"] == rid and shown[0]["url"] == XSS_URL and shown[0]["state"] == "scheduled"
        assert shown[0]["state_text"] == "Đã lên lịch" and shown[0]["where"] == "Tổ za" and shown[0]["active"]
        listed = (await c.get("/relay/items")).json()
        assert listed[0]["url"] == XSS_URL and listed[0]["ends"]
        r = await c.delete(f"/api/relays/{rid}")
        assert r.status_code == 200 and r.json()["state"] == "ended"
        ended = (await c.get("/relay/items")).json()[0]
        assert (ended["state"], ended["state_text"], ended["active"], ended["reason"]) == \
            ("ended", "Kết thúc", False, "Người phát dừng")
    finally:
        await c.aclose()


async def test_relay_screen_follows_wards_and_roles(ward: tuple[Any, httpx.AsyncClient]) -> None:
    app, admin = ward
    with app.state.services.db.session() as s:
        for rid, node, url in (("relay-a", "za-1", "http://radio.example/a.mp3"),
                               ("relay-b", "zb-1", "http://radio.example/secret-b.mp3")):
            s.add(Relay(id=rid, url=url, mode="node_fetch", nodes=[node], target={"zones": [node[:2]]},
                        state="ended", reason="finished", owner="elsewhere", created_by="admin"))
        s.commit()
    relay = {"url": "http://radio.example/sched-b.m3u8", "duration_s": 600}
    r = await admin.post("/api/schedules", json={"relay": relay, "target": {"zones": ["zb"]},
                                                 "when": {"kind": "daily", "times": ["06:00"]}})
    assert r.status_code == 201, r.text
    op_a = await login(app, admin, "vha", "operator", "wa")
    ed_a = await login(app, admin, "bta", "editor", "wa")
    op_b = await login(app, admin, "vhb", "operator", "wb")
    try:
        page = (await op_a.get("/relay")).text
        assert [x["id"] for x in items(page)] == ["relay-a"]
        assert "secret-b" not in page and "sched-b" not in page and "radio.example/a.mp3" in page
        assert [x["id"] for x in (await op_a.get("/relay/items")).json()] == ["relay-a"]
        assert [x["id"] for x in (await op_b.get("/relay/items")).json()] == ["relay-b"]
        page_b = (await op_b.get("/relay")).text
        assert "sched-b.m3u8" in page_b and "secret-b" in page_b  # ward B's own URLs are offered
        # an editor may look at the relays but not start one
        ed = await ed_a.get("/relay")
        assert ed.status_code == 200 and 'id="ru"' not in ed.text and "Chỉ cán bộ vận hành" in ed.text
        assert [x["id"] for x in (await ed_a.get("/relay/items")).json()] == ["relay-a"]
        # the schedule screen: ward B's relay slots carry the radio marker; the form offers a relay
        sched = (await op_b.get("/schedule")).text
        assert 'class="rl"' in sched and "Tiếp sóng: http://radio.example/sched-b.m3u8" in sched
        assert 'name="what" value="relay"' in sched
        agenda_a = (await op_a.get("/schedule")).text.split("<main>")[1].split("<section><h2>Thêm")[0]
        assert 'class="rl"' not in agenda_a
    finally:
        for c in (op_a, ed_a, op_b):
            await c.aclose()
    async with client(app) as anon:
        r = await anon.get("/relay")
        assert r.status_code == 303 and r.headers["location"].startswith("/login")
        assert (await anon.get("/relay/items")).status_code == 401


async def test_the_relay_screen_names_the_controller_in_charge_and_when_it_was_last_seen(
        ward: tuple[Any, httpx.AsyncClient]) -> None:
    """A relay on air run by another controller (its lease live: nobody takes it over here): the list
    says which controller runs it and when it last renewed its lease, in ward time (HH:MM:SS), in
    Vietnamese and in English; an ended relay names nobody."""
    app, admin = ward
    seen = int(datetime(2026, 12, 4, 14, 5, 9, tzinfo=UTC).timestamp() * 1000)  # 21:05:09 ward time
    with app.state.services.db.session() as s:
        for rid, state in (("relay-on", "playing"), ("relay-off", "ended")):
            s.add(Relay(id=rid, url=f"http://radio.example/{rid}.mp3", mode="node_fetch", nodes=["za-1"],
                        target={"zones": ["za"]}, state=state, owner="loaphuong-controller-b",
                        owner_seen_at=seen, created_by="admin"))
        s.commit()
        far = int((datetime.now(tz=UTC) + timedelta(days=1)).timestamp() * 1000)
        s.add(RelayOwner(relay_id="relay-on", holder="loaphuong-controller-b", expires_at=far, epoch=1))
        s.commit()
    op = await login(app, admin, "vhp", "operator", None)
    try:
        got = {i["id"]: i for i in (await op.get("/relay/items")).json()}
        on = got["relay-on"]
        assert (on["owner"], on["owner_seen"]) == ("loaphuong-controller-b", "21:05:09"), on
        assert (got["relay-off"]["owner"], got["relay-off"]["owner_seen"]) == ("", "")
        for lang, words in (("vi", ("Máy chủ phụ trách", "cập nhật lúc")), ("en", ("Controller in charge",
                                                                                    "updated at"))):
            page = (await op.get(f"/relay?lang={lang}")).text
            strings = json.loads(re.search(r'<script id="rdata" type="application/json">(.*?)</script>',
                                           page, re.S).group(1))["s"]  # type: ignore[union-attr]
            assert (strings["relay_owner"], strings["relay_seen"]) == words, strings
            assert "R.relay_owner" in page  # the list draws it
        r = await admin.get("/api/relays/relay-on")  # the API says the same (an ISO instant)
        assert r.status_code == 200 and r.json()["owner"] == "loaphuong-controller-b", r.text
        assert datetime.fromisoformat(r.json()["owner_seen_at"]).timestamp() * 1000 == seen, r.text
    finally:
        await op.aclose()
