"""The last phone screens of issue 14 in Chromium at 360 × 740 against a real server: the calendar
(a schedule made on the schedule screen appears on every day of the week with its zones by name,
its exception day marked off; next / today / month navigation; the printed week without the app's
chrome), the pronunciation dictionary (add with a listen-first, edit, listen, search, delete; the
API sees each change), the audit log (the actions just done in words, filtered by action and
person, paged) and the installable app (manifest, a service worker whose cache holds only the
versioned shell). Every screen: reachable from the menu, no overflow, tap targets ≥ 44 px, no
console error, no serious axe violation, no English on the Vietnamese screen, English on request,
no emoji (they render as boxes without an emoji font)."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest

from controller.ui.assets import SHELL, asset, version
from controller.ui.i18n import T
from scheduler import TIMEZONE
from tests.conftest import ADMIN
from tests.e2e.axe import serious_violations
from tests.e2e.helpers import provision
from tests.e2e.phonecheck import assert_fits, confirming_phone, go
from tests.e2e.test_browser import Server
from tests.e2e.test_browser_fleet import TARGETS, shot

pytestmark = [pytest.mark.browser, pytest.mark.broker, pytest.mark.timeout(300)]

#: English sentences of these screens that must not show on their Vietnamese pages
_EN_ONLY = [
    v
    for k, v in T["en"].items()
    if k.startswith(("cal_", "d_", "au_")) and v != T["vi"][k] and len(v) > 5 and "{" not in v
]
EMOJI = re.compile("[\U0001f000-\U0001ffff]")


async def check_screen(page: Any, errors: list[str]) -> None:
    await page.wait_for_load_state("networkidle")
    await assert_fits(page, TARGETS, errors)
    assert not await serious_violations(page), page.url
    text = await page.inner_text("body")
    leaks = [e for e in _EN_ONLY if e in text]
    assert not leaks, (page.url, leaks)
    assert not EMOJI.search(await page.content()), page.url


async def test_calendar_dictionary_audit_and_app_shell(server: Server, browser: Any) -> None:
    async with httpx.AsyncClient(base_url=server.url, auth=ADMIN, timeout=60) as api:
        await provision(api, {"tdp1": ["tdp1-01"], "tdp2": ["tdp2-01"]})
        r = await api.post(
            "/api/bulletins", json={"title": "Tin buổi sáng", "text": "Họp tổ dân phố lúc 19 giờ."}
        )
        assert r.status_code == 201 and r.json()["approval"] == "approved", r.text
        page, errors, asked = await confirming_phone(browser, server.url, *ADMIN)
        await calendar_flow(page, api, errors, asked)
        await dictionary_flow(page, api, errors, asked)
        await audit_flow(page, api, errors)
        await shell_flow(page)
        await page.context.close()


async def calendar_flow(page: Any, api: httpx.AsyncClient, errors: list[str], asked: list[str]) -> None:
    await go(page, "Lịch phát")
    await page.select_option("#kind", "daily")
    await page.fill("#times", "6h30")
    await page.check('input[name="sz"][value="tdp1"]')
    await page.check('input[name="sz"][value="tdp2"]')
    async with page.expect_navigation():  # saved: said beside the button, then the list reloads
        await page.click("#savesched")
        await page.wait_for_selector("#savesched + .note.ok")
    scheds = (await api.get("/api/schedules")).json()
    assert len(scheds) == 1 and scheds[0]["when"]["times"] == ["06:30"]
    today = datetime.now(TIMEZONE).date()
    monday = today - timedelta(days=today.weekday())
    off = monday + timedelta(days=9)  # next week's Wednesday: a day off
    r = await api.patch(f"/api/schedules/{scheds[0]['id']}", json={"exceptions": [off.isoformat()]})
    assert r.status_code == 200, r.text
    await go(page, "Lịch tuần / tháng")
    await page.wait_for_url("**/calendar")
    await check_screen(page, errors)
    await page.click("#calnext")
    await page.wait_for_url(f"**/calendar?view=week&d={(monday + timedelta(days=7)).isoformat()}")
    rows = page.locator("#calweek tr.slot")
    assert await rows.count() == 7  # every day of next week at 06:30
    first = await rows.first.inner_text()
    assert "06:30" in first and "Tin buổi sáng" in first and "Tổ dân phố tdp1, Tổ dân phố tdp2" in first
    skipped = page.locator("#calweek tr.slot.skipped")
    assert await skipped.count() == 1 and "nghỉ (ngày ngoại lệ)" in await skipped.inner_text()
    assert f"Thứ Tư {off:%d/%m}" in await page.inner_text(f"#d{off.isoformat()}")
    thursday = off + timedelta(days=1)  # an operator takes one more day off from the calendar
    await page.click(f"#d{thursday.isoformat()} button.calskip")
    await page.wait_for_selector(f"#d{thursday.isoformat()} tr.slot.skipped")  # after the reload
    assert (
        asked[-1]
        == f"Lịch “Tin buổi sáng” sẽ không phát vào Thứ Năm {thursday:%d/%m} (mọi giờ trong ngày). Đồng ý?"
    )
    sched = (await api.get(f"/api/schedules/{scheds[0]['id']}")).json()
    assert sched["exceptions"] == [off.isoformat(), thursday.isoformat()]
    await page.click(f"#d{thursday.isoformat()} button.calskip")  # and gives it back
    await page.wait_for_selector(f"#d{thursday.isoformat()} tr.slot:not(.skipped)")
    assert (await api.get(f"/api/schedules/{scheds[0]['id']}")).json()["exceptions"] == [off.isoformat()]
    await check_screen(page, errors)
    await shot(page, "16-calendar-week")
    await page.emulate_media(media="print")  # the ward's printed weekly schedule: no app chrome
    assert not await page.is_visible("nav.tabs") and not await page.is_visible("header")
    assert not await page.is_visible("#calprint") and await page.is_visible(".printhead")
    assert "LỊCH PHÁT THANH TUẦN" in await page.inner_text(".printhead")
    await shot(page, "18-calendar-print")
    await page.emulate_media(media="screen")
    await page.click("#caltoday")
    await page.wait_for_selector("tbody.today .dayrow")
    assert "Hôm nay" in await page.inner_text("tbody.today .dayrow")  # on the screen, not on paper
    await page.emulate_media(media="print")
    assert "Hôm nay" not in await page.inner_text("tbody.today .dayrow")
    await page.emulate_media(media="screen")
    await page.click("main .calbar a:has-text('Tháng')")
    await page.wait_for_selector("#calmonth")
    assert f"Tháng {today.month}/{today.year}" in await page.inner_text("main h2")
    await check_screen(page, errors)
    await shot(page, "17-calendar-month")
    await page.click(f"#calmonth a[href*='d={today.isoformat()}']")  # a day: its week
    await page.wait_for_selector("#calweek tbody.today")


async def dictionary_flow(page: Any, api: httpx.AsyncClient, errors: list[str], asked: list[str]) -> None:
    await go(page, "Từ điển phát âm")
    await page.wait_for_url("**/dictionary")
    await page.fill("#nterm", "Kẻ Sặt")
    await page.click("#dadd")
    await page.wait_for_selector("#dadd + .note.err")  # no spoken form: said beside the button
    await page.fill("#nspoken", "kẻ sặt")
    await page.click("#dtry")  # how it will be read, before saving
    await page.wait_for_selector("#dtry + .note.ok:has-text('Máy đọc là: kẻ sặt')")
    await page.fill("#nnote", "tên thôn")
    await page.click("#dadd")
    await page.wait_for_selector(".dentry[data-term='Kẻ Sặt']")  # after the reload
    assert [
        (e["term"], e["spoken"], e["note"]) for e in (await api.get("/api/speech/dictionary")).json()
    ] == [("Kẻ Sặt", "kẻ sặt", "tên thôn")]
    await page.fill("#nterm", "UBND")
    await page.fill("#nspoken", "ủy ban nhân dân")
    await page.click("#dadd")
    await page.wait_for_selector(".dentry[data-term='UBND']")
    row = page.locator(".dentry[data-term='Kẻ Sặt']")
    await row.locator(".dedit").click()
    await row.locator(".ds").fill("kẻ sặc")
    await row.locator(".dsave").click()
    await row.locator(".dsave + .note.ok").wait_for()
    said = {e["term"]: e["spoken"] for e in (await api.get("/api/speech/dictionary")).json()}
    assert said == {"Kẻ Sặt": "kẻ sặc", "UBND": "ủy ban nhân dân"}
    await row.locator(".dlisten").click()  # the speech reads the word the new way
    await row.locator(".dlisten + .note.ok:has-text('Máy đọc là: kẻ sặc')").wait_for()
    await page.fill("#dq", "ủy ban")  # the search filters as one types
    await page.wait_for_selector(".dentry[data-term='Kẻ Sặt']", state="hidden")
    assert await page.is_visible(".dentry[data-term='UBND']")
    await page.fill("#dq", "")
    await check_screen(page, errors)
    await shot(page, "19-dictionary")
    await page.locator(".dentry[data-term='UBND'] .ddel").click()
    await page.wait_for_selector(".dentry[data-term='UBND']", state="detached")
    assert asked[-1] == T["vi"]["d_delete_confirm"].format(t="UBND")
    assert [e["term"] for e in (await api.get("/api/speech/dictionary")).json()] == ["Kẻ Sặt"]


async def audit_flow(page: Any, api: httpx.AsyncClient, errors: list[str]) -> None:
    await go(page, "Nhật ký")
    await page.wait_for_url("**/audit")
    kinds = await page.locator("#aulog li b").all_inner_texts()
    assert "Từ điển phát âm" in kinds and "Tạo lịch phát" in kinds and "Sửa / tạm dừng lịch phát" in kinds
    assert "Đăng nhập" in kinds
    await page.select_option("#aukind", "dictionary")
    await page.fill("#auwho", "admin")
    await page.click("#augo")
    await page.wait_for_url("**/audit?*kind=dictionary*")
    shown = await page.locator("#aulog li").all_inner_texts()
    logged = [
        e
        for e in (await api.get("/api/audit", params={"username": "admin"})).json()
        if e["action"].startswith("dictionary_") or "/api/speech/dictionary" in e["action"]
    ]
    assert len(shown) == len(logged) >= 6 and all("Từ điển phát âm" in x and "admin" in x for x in shown)
    assert any("Kẻ Sặt → kẻ sặt" in x for x in shown)
    stamp = re.search(r"\d\d/\d\d/\d{4} \d\d:\d\d:\d\d", shown[0])
    assert stamp is not None  # a real date in ward time
    at = datetime.strptime(stamp.group(0), "%d/%m/%Y %H:%M:%S").replace(tzinfo=TIMEZONE)
    assert abs((datetime.now(TIMEZONE) - at).total_seconds()) < 600
    await check_screen(page, errors)
    await shot(page, "20-audit")
    await page.click("#morebtn")  # English on request: the same screen in English
    await page.click("#menu button:has-text('English')")
    await page.wait_for_function("() => document.documentElement.lang === 'en'")
    assert await page.inner_text("main h2") == "Audit log"
    assert "Pronunciation dictionary" in await page.inner_text("#aulog")
    base = page.url.split("/audit")[0]
    for path, heading in (("/calendar", "Calendar"), ("/dictionary", "Pronunciation dictionary")):
        await page.goto(base + path)
        assert (await page.inner_text("main h2")).startswith(heading)
    await page.click("#morebtn")
    await page.click("#menu button:has-text('Tiếng Việt')")
    await page.wait_for_function("() => document.documentElement.lang === 'vi'")
    assert not errors, errors


async def shell_flow(page: Any) -> None:
    """The service worker caches the versioned shell and nothing else, the manifest installs."""
    await page.reload()
    await page.evaluate("navigator.serviceWorker.ready")
    keys = await page.evaluate("caches.keys()")
    assert keys == [f"lp-shell-{version()}"], keys
    await page.evaluate("fetch('/api/speech/dictionary').then(r => r.json())")  # data: never kept
    cached = await page.evaluate("""async () => {
        const c = await caches.open((await caches.keys())[0]);
        return (await c.keys()).map(r => new URL(r.url).pathname);
    }""")
    assert sorted(cached) == sorted(asset(n) for n in SHELL), cached
    css = await page.evaluate("getComputedStyle(document.body).backgroundColor")
    assert css == "rgb(246, 246, 243)"  # the versioned stylesheet applies
    man = await page.evaluate("fetch(document.querySelector('link[rel=manifest]').href).then(r => r.json())")
    assert man["name"].startswith("Loa phường") and {i["purpose"] for i in man["icons"]} == {
        "any",
        "maskable",
    }
