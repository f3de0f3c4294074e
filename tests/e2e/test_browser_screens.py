"""Every screen on a phone (issue 14), in Chromium at 360 × 740 as an admin, with zones and units
provisioned (two placed on the map) and a broadcast: no horizontal overflow, every visible button,
link (unit links and map dots were 18 and 13 px high), select and input a tap target of at least
44 × 44 px, no console error; a unit gone offline is listed by name under the dashboard's
"Cảnh báo" with since when; axe-core finds no serious or critical violation on any screen; units
show their zones by name."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from devices.broker import BrokerProcess
from tests.conftest import ADMIN
from tests.e2e.axe import serious_violations
from tests.e2e.helpers import air, bulletin, provision, sim, wait_for, wait_online
from tests.e2e.phonecheck import assert_fits, login, new_phone
from tests.e2e.test_browser import Server

pytestmark = [pytest.mark.browser, pytest.mark.broker, pytest.mark.timeout(300)]

SCREENS = ["/", "/units", "/units/tdp1-01", "/zones/tdp1", "/compose", "/bulletins", "/schedule", "/calendar",
           "/relay", "/presets", "/library", "/history", "/emergency", "/alerts", "/dictionary", "/audit",
           "/accounts", "/password", "/live.html"]
TARGETS = ["main button", "main select", "main input:not([type=checkbox]):not([type=radio])",
           "main label.inl", "main a", "main svg a", "nav.tabs > a", "#morebtn", "header a"]


async def test_every_screen_fits_a_phone(server: Server, browser: Any, mosquitto: BrokerProcess) -> None:
    async with httpx.AsyncClient(base_url=server.url, auth=ADMIN, timeout=60) as api:
        await provision(api, {"tdp1": ["tdp1-01", "tdp1-02"], "tdp2": ["tdp2-01"]})
        gone = sim("tdp2-01", mosquitto.port)  # online, then gone: the dashboard's "Cảnh báo" lists it
        await gone.start()
        await wait_online(api, ["tdp2-01"], timeout=30)
        await gone.kill()

        async def offline() -> bool:
            return bool((await api.get("/api/nodes/tdp2-01")).json()["status"] == "offline")

        await wait_for(offline, 60, "tdp2-01 offline")
        for node, (lat, lon) in {"tdp1-01": (20.86, 106.68), "tdp1-02": (20.87, 106.69)}.items():
            assert (await api.patch(f"/api/nodes/{node}", json={"lat": lat, "lon": lon})).status_code == 200
        b = await bulletin(api, "Thông báo kiểm tra hệ thống loa.")
        bid = await air(api, b["id"], {"zones": ["tdp1"]})
        page, errors = await new_phone(browser)
        await login(page, server.url, *ADMIN)
        await page.wait_for_url(server.url + "/")
        alarm = page.locator('#alarms tr.offline a[href="/units/tdp2-01"]')
        assert await alarm.text_content() == "Loa tdp2-01"  # by name, offline-first, with since when
        assert "Mất kết nối từ " in (await page.locator("#alarms tr.offline").first.text_content() or "")
        failures = []
        for path in [*SCREENS, f"/broadcasts/{bid}"]:
            await page.goto(server.url + path)
            await page.wait_for_load_state("networkidle")
            try:
                await assert_fits(page, TARGETS, errors)
            except AssertionError as exc:
                failures.append(str(exc))
                errors.clear()
            if found := await serious_violations(page):  # axe-core: no serious or critical violation
                failures.append(f"{path}: {found}")
        assert not failures, "\n".join(failures)
        # the delivery view says why in Vietnamese (the units never came online)
        await page.wait_for_selector("#rows >> text=cụm loa mất kết nối lúc gửi")
        assert "offline" not in (await page.text_content("#rows") or "")
        await page.goto(server.url + "/units")  # zones by name, not by id (the list, a unit's page)
        row = await page.locator("#unitlist tr[data-id='tdp1-01'] td").nth(1).inner_text()
        assert row == "Tổ dân phố tdp1", row
        await page.goto(server.url + "/units/tdp1-01")
        assert await page.locator("main a[href='/zones/tdp1']").first.inner_text() == "Tổ dân phố tdp1"
        await page.context.close()
