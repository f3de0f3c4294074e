"""Every screen as each of the four roles (issue 14), in Chromium at 360 × 740 against a real
server, Mosquitto and a simulated unit: an editor, an approver, an operator and an admin each open
every screen (those their role may not use included: the refusal page too must fit and be in
Vietnamese). On each: no horizontal overflow, every tap target at least 44 × 44 px, no console
error, no serious or critical axe-core violation, and no English, raw key, epoch time or
Python/JS value on the Vietnamese screen. The unit page's telemetry is in words (it showed
``ts 1796420457536``, ``power True``, ``rssi_dbm -79``); the offline page is in one language."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest

from devices.broker import BrokerProcess
from tests.conftest import ADMIN
from tests.e2e.axe import serious_violations
from tests.e2e.helpers import air, bulletin, provision, sim, wait_for, wait_online
from tests.e2e.phonecheck import assert_fits
from tests.e2e.test_browser import Server, phone
from tests.e2e.test_browser_screens import SCREENS, TARGETS

pytestmark = [pytest.mark.browser, pytest.mark.broker, pytest.mark.timeout(600)]

ROLES = {"bientap": "editor", "pheduyet": "approver", "vanhanh": "operator"}
#: words and values that are not Vietnamese: English UI words, reasons, raw keys, epoch / ISO times
LEAKS = re.compile(
    r"\b(the|not|is|are|error|failed|unknown|invalid|offline|online|node|nodes|zone|zones|played|pending|"
    r"scheduled|expired|cancelled|required|minutes|seconds|ago|True|False|None|null|undefined|NaN|"
    r"rssi_dbm|temp_c|uptime_s|storage_free_kb|clock_offset_ms)\b|\b1[78]\d{11}\b|\d{4}-\d\d-\d\dT\d", re.I)


async def leaks(page: Any) -> list[str]:
    """What on the page (its text, placeholders, titles, labels) is not Vietnamese."""
    text = await page.evaluate("""() => document.body.innerText + " " + [...document.querySelectorAll(
        "[placeholder],[title],[aria-label]")].map(e => [e.placeholder, e.title, e.ariaLabel].join(" "))
        .join(" ")""")
    return sorted({m.group(0) for m in LEAKS.finditer(text)})


async def test_every_screen_as_every_role(server: Server, browser: Any, mosquitto: BrokerProcess) -> None:
    async with httpx.AsyncClient(base_url=server.url, auth=ADMIN, timeout=60) as api:
        await provision(api, {"tdp1": ["tdp1-01", "tdp1-02"], "tdp2": ["tdp2-01"]})
        unit = sim("tdp1-01", mosquitto.port, heartbeat_s=1.0)
        await unit.start()
        try:
            await wait_online(api, ["tdp1-01"], timeout=30)

            async def measured() -> bool:
                return "rssi_dbm" in (await api.get("/api/nodes/tdp1-01")).json()["telemetry"]

            await wait_for(measured, 30, "tdp1-01's telemetry")
            passwords = {}
            for user, role in ROLES.items():
                r = await api.post("/api/users", json={"username": user, "role": role})
                assert r.status_code == 201, r.text
                passwords[user] = r.json()["password"]
            b = await bulletin(api, "Thông báo kiểm tra hệ thống loa.")
            bid = await air(api, b["id"], {"zones": ["tdp1"]})
            failures: list[str] = []
            for user, password in [ADMIN, *passwords.items()]:
                page = await phone(browser, server, user, password)  # a one-time password: changed first
                errors: list[str] = []
                page.on("console", lambda m, e=errors: e.append(m.text) if m.type == "error"
                        and not m.text.startswith("Failed to load resource") else None)
                page.on("pageerror", lambda exc, e=errors: e.append(str(exc)))
                for path in [*SCREENS, f"/broadcasts/{bid}", "/calendar?view=month", "/offline.html"]:
                    await page.goto(server.url + path)
                    await page.wait_for_load_state("networkidle")
                    where = f"{user} {path}"
                    try:
                        await assert_fits(page, TARGETS, errors)
                    except AssertionError as exc:
                        failures.append(f"{where}: {exc}")
                        errors.clear()
                    if found := await serious_violations(page):
                        failures.append(f"{where}: axe {found}")
                    if found := await leaks(page):
                        failures.append(f"{where}: not Vietnamese {found}")
                    if await page.evaluate("document.documentElement.lang") != "vi":
                        failures.append(f"{where}: lang is not vi")
                await unit_telemetry_in_words(page, server)
                await page.context.close()
            assert not failures, "\n".join(failures)
        finally:
            await unit.stop()


async def unit_telemetry_in_words(page: Any, server: Server) -> None:
    await page.goto(server.url + "/units/tdp1-01")
    rows = dict(await page.eval_on_selector_all(
        "#telemetry tr", "rs => rs.map(r => [r.cells[0].innerText, r.cells[1].innerText])"))
    assert rows["Tăng âm"] == "Bật" and rows["Đang phát gì"] == "Không phát", rows
    assert rows["Cường độ sóng"].endswith(" dBm") and rows["Nhiệt độ"].endswith(" °C"), rows
    assert re.fullmatch(r"\d\d/\d\d/\d{4} \d\d:\d\d:\d\d", rows["Đo lúc"]), rows
    assert rows["Lỗi thiết bị"] == "Không có", rows
    assert not {"ts", "power", "rssi_dbm", "uptime_s"} & set(rows), rows
    await page.context.add_cookies([{"name": "lang", "value": "en", "url": server.url}])
    await page.goto(server.url + "/units/tdp1-01")
    assert await page.locator("#telemetry tr >> nth=0").inner_text() == "Amplifier\tOn"
    await page.goto(server.url + "/offline.html")  # the offline page follows the chosen language
    assert await page.locator("main h2").inner_text() == "No network connection"
    assert "Mất kết nối" not in await page.locator("main").inner_text()
    await page.context.clear_cookies(name="lang")
