"""Schedules from the phone (issue 14, blocker 2), in Chromium at 360 × 740 against uvicorn.

The schedule screen lists every schedule with what it does in words and its next runs; a daily
schedule made there keeps its from / to dates (they used to be dropped); it is edited in place
(the same schedule, new times), paused and resumed, its runs are shown, and it is deleted after a
confirmation. Every control fits the phone (no overflow, 44 px targets, no console error)."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest

from scheduler import TIMEZONE
from tests.conftest import ADMIN
from tests.e2e.helpers import bulletin, provision, wait_for
from tests.e2e.phonecheck import assert_fits, confirming_phone
from tests.e2e.test_browser import Server, shot

pytestmark = [pytest.mark.browser, pytest.mark.broker, pytest.mark.timeout(300)]

CONTROLS = [".sched .runsbtn", ".sched .edit", ".sched .pause", ".sched .del", "#savesched", "#kind",
            "#times"]


async def test_schedules_listed_edited_paused_deleted_with_their_runs(server: Server, browser: Any) -> None:
    async with httpx.AsyncClient(base_url=server.url, auth=ADMIN, timeout=60) as api:
        await provision(api, {"tdp1": ["tdp1-01"]})  # the unit stays off: a run still happens
        b = await bulletin(api, "Thông báo lịch thu gom rác.", title="Thu gom rác")
        for lead_s in (4, 15, 40):  # a busy machine may take the 4 s before the schedule is read
            soon = (datetime.now(TIMEZONE) + timedelta(seconds=lead_s)).replace(microsecond=0)
            r = await api.post("/api/schedules", json={"bulletin_id": b["id"], "target": {"zones": ["tdp1"]},
                                                        "when": {"kind": "once", "at": soon.isoformat()}})
            if "in the past" not in r.text:
                break
        assert r.status_code == 201, r.text
        once_id = r.json()["id"]

        async def ran() -> bool:
            return bool((await api.get(f"/api/schedules/{once_id}/runs")).json())
        await wait_for(ran, 60, "the one-off schedule's run")

        page, errors, asked = await confirming_phone(browser, server.url, *ADMIN)
        await page.goto(server.url + "/schedule")

        # --- a daily schedule with its dates, made from the form: only that kind's fields show
        await page.select_option("#kind", "daily")
        assert await page.is_hidden("#cr") and await page.is_hidden("#at") and await page.is_visible("#sd")
        today = datetime.now(TIMEZONE).date()  # the ward's day (UTC+7), not the machine's
        first, last = today + timedelta(days=1), today + timedelta(days=30)
        assert await page.input_value("#times") == ""  # nothing pre-filled, no zone pre-checked
        assert not await page.is_checked("input[name=sz][value=tdp1]")
        assert "cron" not in (await page.text_content("#kind") or "")  # no jargon
        await page.click("#savesched")
        assert await page.text_content("#savesched + .note") == "Chọn ít nhất một khu vực."
        await page.check("input[name=sz][value=tdp1]")
        await page.click("#savesched")
        assert await page.text_content("#savesched + .note") == "Nhập giờ phát, ví dụ 06:00, 17:30."
        await page.fill("#times", "06:00")
        await page.fill("#sd", first.isoformat())
        await page.fill("#ed", last.isoformat())
        await page.click("#savesched")
        await page.locator("#savesched + .note >> text=Đã lưu").wait_for()
        await page.wait_for_load_state("load")
        daily = [s for s in (await api.get("/api/schedules")).json() if s["when"]["kind"] == "daily"]
        assert len(daily) == 1 and daily[0]["when"]["start_date"] == first.isoformat()
        assert daily[0]["when"]["end_date"] == last.isoformat()  # not dropped any more
        sid = daily[0]["id"]
        card = page.locator(f".sched[data-id='{sid}']")
        await card.wait_for()
        text = await card.text_content() or ""
        assert f"Hằng ngày lúc 06:00 từ {first:%d/%m/%Y} đến {last:%d/%m/%Y}" in text, text
        assert f"Lần phát tới: {first:%d/%m/%Y} 06:00" in text, text  # the next runs, ward time

        # --- edit it in the form: the same schedule, new times
        await card.locator(".edit").click()
        assert (await page.text_content("#formtitle") or "").startswith("Sửa lịch phát")
        assert await page.input_value("#times") == "06:00"
        assert await page.input_value("#sd") == first.isoformat()
        await page.fill("#times", "7h15, 17 giờ 30")  # as a ward writes times
        await page.click("#savesched")
        await page.locator("#savesched + .note >> text=Đã lưu").wait_for()
        await page.wait_for_load_state("load")

        async def edited() -> bool:
            now = (await api.get(f"/api/schedules/{sid}")).json()
            return bool(now["when"]["times"] == ["07:15", "17:30"])
        await wait_for(edited, 30, "the edited times")
        assert len([s for s in (await api.get("/api/schedules")).json() if s["when"]["kind"] == "daily"]) == 1
        card = page.locator(f".sched[data-id='{sid}']")
        await card.locator("text=Hằng ngày lúc 07:15, 17:30").wait_for()
        assert await page.is_hidden("#canceledit")  # the form is a new one again
        assert await page.text_content("#formtitle") == "Thêm lịch phát"

        # --- pause and resume, said next to the button
        await card.locator(".pause").click()
        await card.locator(".pause + .note >> text=Đã tạm dừng lịch phát.").wait_for()
        assert (await api.get(f"/api/schedules/{sid}")).json()["enabled"] is False
        assert "Tạm dừng" in (await card.locator(".st").text_content() or "")
        await card.locator(".pause").click()
        await card.locator(".pause + .note >> text=Đã bật lại lịch phát.").wait_for()
        assert (await api.get(f"/api/schedules/{sid}")).json()["enabled"] is True

        # --- the one-off schedule's runs
        once = page.locator(f".sched[data-id='{once_id}']")
        await once.locator(".runsbtn").click()
        await once.locator(".runs li").first.wait_for()
        run = await once.locator(".runs li").first.text_content() or ""
        assert soon.strftime("%d/%m/%Y %H:%M") in run and any(
            w in run for w in ("Đã phát", "Không phát được", "Bị lỡ", "Đang phát")), run
        await assert_fits(page, CONTROLS, errors)
        await shot(page, "13-schedules")

        # --- delete, after a confirmation
        await card.locator(".del").click()
        await page.locator(".note >> text=Đã xóa lịch phát.").wait_for()
        assert asked and asked[-1].startswith("Xóa lịch phát “Thu gom rác”?")
        got = await api.get(f"/api/schedules/{sid}")
        assert got.json()["deleted"] is True
        await asyncio.sleep(0)  # nothing pending on the page
        await assert_fits(page, CONTROLS, errors)
        await page.context.close()
