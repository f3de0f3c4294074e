"""Power state and connectivity shown apart, in the browser (issue 14: "A switched-off unit still
shows 'Trực tuyến' (page, list, map, dashboard); the 'Đã tắt' filter finds nothing"), in Chromium
at 360 × 740 against a real server, Mosquitto and simulated units, as an operator: a unit shut
down cleanly is "Đã tắt" on its page, in the list, on the map and in the zone, counted on the
dashboard's *Đã tắt* card, and found by the list's *Đã tắt* filter (and only it); a unit whose
amplifier the operator switches off from its page stays "Trực tuyến · đã tắt tăng âm", with
"Tăng âm: Tắt" in its readings, at once (they showed "Bật" under the unit's confirmation until a
reload) and after a reload; a command the unit cannot answer is refused in Vietnamese (it showed
"(offline)")."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from devices.broker import BrokerProcess
from tests.conftest import ADMIN
from tests.e2e.helpers import provision, sim, wait_for, wait_online
from tests.e2e.phonecheck import assert_fits
from tests.e2e.test_browser import Server, phone

pytestmark = [pytest.mark.browser, pytest.mark.broker, pytest.mark.timeout(300)]

IDS = ["p-1", "p-2", "p-3"]


async def listed(page: Any) -> dict[str, str]:
    """unit id → its state in the list (the first line: "since when" is under it)."""
    return dict(await page.eval_on_selector_all(
        "#unitlist tbody tr",
        "rs => rs.map(r => [r.dataset.id, r.cells[2].innerText.trim().split('\\n')[0]])"))


async def test_shut_down_and_amplifier_off_are_told_apart(server: Server, browser: Any,
                                                          mosquitto: BrokerProcess) -> None:
    async with httpx.AsyncClient(base_url=server.url, auth=ADMIN, timeout=60) as api:
        await provision(api, {"z1": IDS})
        for i, n in enumerate(IDS):
            r = await api.patch(f"/api/nodes/{n}", json={"lat": 20.86 + i / 100, "lon": 106.68})
            assert r.status_code == 200, r.text
        units = {n: sim(n, mosquitto.port, heartbeat_s=1.0) for n in IDS}
        await asyncio.gather(*(u.start() for u in units.values()))
        try:
            await wait_online(api, IDS, timeout=30)
            await units["p-3"].stop()  # switched off cleanly

            async def shut_down() -> bool:
                return bool((await api.get("/api/nodes/p-3")).json()["status"] == "shutdown")

            await wait_for(shut_down, 30, "p-3 shut down")
            r = await api.post("/api/users", json={"username": "vanhanh", "role": "operator"})
            assert r.status_code == 201, r.text
            page = await phone(browser, server, "vanhanh", r.json()["password"])
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))

            assert await page.text_content("#n-shutdown") == "1"  # the dashboard's "Đã tắt" card
            await page.click("a.card.shutdown")
            await page.wait_for_url("**/units?state=shutdown")
            assert await listed(page) == {"p-3": "Đã tắt"}  # the filter finds it, and only it
            since = await page.locator("#unitlist tr[data-id='p-3'] .since").inner_text()
            assert since == "vừa xong", since  # not "từ vừa xong"
            await page.select_option("#state", "online")
            await page.click("form button")
            await page.wait_for_url("**state=online*")
            assert await listed(page) == {"p-1": "Trực tuyến", "p-2": "Trực tuyến"}
            await page.goto(server.url + "/units")
            dot = page.locator("svg a[href='/units/p-3'] circle.shutdown")  # the map: grey, not green
            assert await dot.count() == 1
            await assert_fits(page, ["main button", "main select", "main svg a"], errors)

            await page.goto(server.url + "/units/p-3")
            assert await page.text_content("#status") == "Đã tắt"
            await page.click("button:has-text('Bật')")  # it cannot answer: said in Vietnamese
            await page.wait_for_selector("#result.err", timeout=30_000)
            said = await page.text_content("#result")
            assert said in ("Không xác nhận: Bật — cụm loa đang mất kết nối",
                            "Không xác nhận: Bật — cụm loa không trả lời kịp"), said
            await page.goto(server.url + "/zones/z1")
            assert "Đã tắt" in await page.locator("#members li:has(a[href='/units/p-3'])").inner_text()

            await page.goto(server.url + "/units/p-2")  # the amplifier off: still online
            await page.click("button:has-text('Tắt')")
            await page.wait_for_selector("#result.ok", timeout=20_000)
            # what the unit confirmed shows at once: no "Tăng âm: Bật" under "Cụm loa đã xác nhận: Tắt"
            assert (await page.text_content("#status") or "").strip() == "Trực tuyến · đã tắt tăng âm"
            assert await page.locator("#telemetry tr[data-k=power] td").inner_text() == "Tắt"

            async def amp_off() -> bool:
                return (await api.get("/api/nodes/p-2")).json()["telemetry"].get("power") is False

            await wait_for(amp_off, 20, "p-2's amplifier off in its telemetry")
            await page.reload()
            assert (await page.text_content("#status") or "").strip() == "Trực tuyến · đã tắt tăng âm"
            rows = dict(await page.eval_on_selector_all(
                "#telemetry tr", "rs => rs.map(r => [r.cells[0].innerText, r.cells[1].innerText])"))
            assert rows["Tăng âm"] == "Tắt", rows
            await page.goto(server.url + "/units")
            assert (await listed(page))["p-2"] == "Trực tuyến · đã tắt tăng âm"
            assert not errors, errors
            await page.context.close()
        finally:
            await asyncio.gather(*(u.stop() for n, u in units.items() if n != "p-3"))
