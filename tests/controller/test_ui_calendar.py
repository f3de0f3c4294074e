"""The calendar (issue 14): the agenda's range endpoint (validated, clear errors), a week and a
month of what airs where expanded by the scheduler's triggers (exception days as days off), the
zones by name, navigation, the print header; in Vietnamese and English. No broker runs here."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import date, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from devices.broker import free_port
from scheduler import TIMEZONE
from tests.conftest import make_settings, running_controller

pytestmark = pytest.mark.timeout(90)


async def approved(admin: httpx.AsyncClient, title: str) -> int:
    b = (
        await admin.post("/api/bulletins", json={"title": title, "text": f"{title}: họp tổ dân phố."})
    ).json()
    if b["approval"] == "approved":  # an admin's own bulletin
        return int(b["id"])
    assert (await admin.post(f"/api/bulletins/{b['id']}/submit")).status_code == 200, b
    r = await admin.post(f"/api/bulletins/{b['id']}/approve", json={"audio_sha256": b["audio"]["sha256"]})
    assert r.status_code == 200, r.text
    return int(b["id"])


@pytest.fixture
async def cal(tmp_path: Path) -> AsyncIterator[tuple[httpx.AsyncClient, httpx.AsyncClient, date]]:
    async with running_controller(make_settings(tmp_path, free_port())) as (app, admin):
        for zid, name in (("t1", "Tổ dân phố 1"), ("t2", "Tổ dân phố 2")):
            assert (await admin.post("/api/zones", json={"id": zid, "name": name})).status_code == 201
            assert (
                await admin.post("/api/nodes", json={"id": f"{zid}-01", "zones": [zid]})
            ).status_code == 201
        bid = await approved(admin, "Tin sáng")
        monday = datetime.now(TIMEZONE).date() - timedelta(days=datetime.now(TIMEZONE).weekday())
        off = monday + timedelta(days=9)  # next week's Wednesday: a day off
        sched = {
            "bulletin_id": bid,
            "target": {"zones": ["t1", "t2"]},
            "exceptions": [off.isoformat()],
            "when": {"kind": "daily", "times": ["23:59"], "start_date": monday.isoformat()},
        }
        r = await admin.post("/api/schedules", json=sched)
        assert r.status_code == 201, r.text
        c = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://controller", timeout=60
        )
        r = await c.post("/api/login", json={"username": "admin", "password": "test-password-1"})
        c.headers["X-CSRF-Token"] = r.json()["csrf_token"]
        yield admin, c, monday
        await c.aclose()


async def test_agenda_range_endpoint(cal: tuple[httpx.AsyncClient, httpx.AsyncClient, date]) -> None:
    admin, _, monday = cal
    nxt = monday + timedelta(days=7)
    r = await admin.get(
        "/api/agenda", params={"from": nxt.isoformat(), "to": (nxt + timedelta(days=6)).isoformat()}
    )
    assert r.status_code == 200, r.text
    items = {z["zone"]: z["items"] for z in r.json()["zones"]}
    days = sorted(it["at"][:10] for it in items["t1"])
    assert len(days) == 7 and days[0] == nxt.isoformat()  # one slot a day, the whole week
    skipped = [it["at"][:10] for it in items["t1"] if it["status"] == "skipped"]
    assert skipped == [(monday + timedelta(days=9)).isoformat()]
    for bad, why in (
        ((("from", "2026-12-10"), ("to", "2026-12-01")), "before its start"),
        ((("from", "2026-01-01"), ("to", "2026-12-31")), "at most 62 days"),
        ((("to", "2026-12-01"),), "needs a start date"),
    ):
        r = await admin.get("/api/agenda", params=dict(bad))
        assert r.status_code == 422 and why in r.json()["detail"] and r.json()["code"] == "agenda_range", (
            r.text
        )
    for day in ("hôm nay", "0", "1733184000"):  # a number is not read as a Unix time
        r = await admin.get("/api/agenda", params={"from": day})
        assert r.status_code == 422 and r.json()["code"] == "invalid", (day, r.text)


async def test_week_and_month_pages(cal: tuple[httpx.AsyncClient, httpx.AsyncClient, date]) -> None:
    _, c, monday = cal
    nxt = monday + timedelta(days=7)
    page = (await c.get("/calendar", params={"d": (nxt + timedelta(days=3)).isoformat()})).text
    assert f"từ {nxt:%d/%m/%Y} đến {nxt + timedelta(days=6):%d/%m/%Y}" in page
    week = page.split('id="calweek"')[1].split("</table>")[0]
    assert week.count('class="slot') == 7 and week.count('<td class="ti">Tin sáng') == 7
    assert "Tổ dân phố 1, Tổ dân phố 2" in week  # one row per slot, its zones by name
    assert week.count("nghỉ (ngày ngoại lệ)") == 1 and f"Thứ Tư {nxt + timedelta(days=2):%d/%m}" in week
    assert (
        f"d={monday.isoformat()}" in page and f"d={(nxt + timedelta(days=7)).isoformat()}" in page
    )  # prev / next
    assert "LỊCH PHÁT THANH TUẦN" in page and "In lịch tuần" in page  # the print header and button
    month = (await c.get("/calendar", params={"view": "month", "d": nxt.isoformat()})).text
    assert f"Tháng {nxt.month}/{nxt.year}" in month and 'id="calmonth"' in month
    assert month.count("<tr>") >= 5 and "Các lượt phát trong tháng" in month
    bad = (await c.get("/calendar", params={"d": "31/02"})).text
    assert "Ngày không hợp lệ; đang xem hôm nay." in bad
    c.cookies.set("lang", "en")
    en = (await c.get("/calendar", params={"d": nxt.isoformat()})).text
    assert "WEEKLY BROADCAST SCHEDULE" in en and "off (exception day)" in en and "Wednesday" in en
    assert "nghỉ" not in en and "Thứ" not in en


async def test_a_ward_sees_its_own_zones_and_name(tmp_path: Path) -> None:
    """A schedule over two wards' zones: each ward's calendar names only its own zone, and its
    printed week carries the ward's name."""
    from tests.controller.test_ui_relay import login

    async with running_controller(make_settings(tmp_path, free_port())) as (app, admin):
        for org, parent in (("hp", None), ("w1", "hp"), ("w2", "hp")):
            body = {"id": org, "name": f"Phường {org.upper()}", "parent_id": parent}
            assert (await admin.post("/api/org-units", json=body)).status_code == 201
        for zid, org in (("z1", "w1"), ("z2", "w2")):
            body = {"id": zid, "name": f"Tổ của {org}", "org_unit_id": org}
            assert (await admin.post("/api/zones", json=body)).status_code == 201
            assert (
                await admin.post("/api/nodes", json={"id": f"{zid}-01", "zones": [zid]})
            ).status_code == 201
        bid = await approved(admin, "Tin chung")
        when = {"kind": "daily", "times": ["07:00"]}
        r = await admin.post(
            "/api/schedules", json={"bulletin_id": bid, "target": {"zones": ["z1", "z2"]}, "when": when}
        )
        assert r.status_code == 201, r.text
        op1 = await login(app, admin, "vh1", "operator", "w1")
        tomorrow = (datetime.now(TIMEZONE) + timedelta(days=1)).date().isoformat()
        page = (await op1.get("/calendar", params={"d": tomorrow})).text
        week = page.split('id="calweek"')[1].split("</table>")[0]
        assert "Tổ của w1" in week and "Tổ của w2" not in week and "Tin chung" in week
        assert '<div class="printhead"><p>Phường W1</p>' in page
        month = (await op1.get("/calendar", params={"view": "month", "d": tomorrow})).text
        assert "Tổ của w1" in month and "Tổ của w2" not in month
        await op1.aclose()
