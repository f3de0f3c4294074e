"""What staff see, over real HTTP (uvicorn, real Mosquitto, simulated units), issue 13:
the delivery view in Debian's headless Chromium shows the broadcast's summary in Vietnamese while
it waits for an offline unit, and its "Thôi chờ loa mất kết nối" button (after the confirmation)
ends the waiting; the event stream, read by a plain HTTP client, sends its state at once and
keep-alive comments while nothing changes."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from controller.ui import delivery_view
from devices.broker import BrokerProcess
from tests.conftest import ADMIN
from tests.e2e.helpers import air, bulletin, provision, sim, wait_broadcast, wait_online
from tests.e2e.test_browser import Server, phone

pytestmark = [pytest.mark.browser, pytest.mark.broker, pytest.mark.timeout(300)]


async def test_delivery_view_waits_then_the_button_ends_the_waiting(
        server: Server, mosquitto: BrokerProcess, browser: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(delivery_view, "KEEPALIVE_S", 1.0)  # read at each wait: the running server sees it
    async with httpx.AsyncClient(base_url=server.url, auth=ADMIN, timeout=60) as api:
        await provision(api, {"z": ["w-1", "w-2"]})
        unit = sim("w-1", mosquitto.port)  # w-2 stays switched off (never connects)
        await unit.start()
        try:
            await wait_online(api, ["w-1"], timeout=30)
            b = await bulletin(api, "Kiểm tra loa.")
            bid = await air(api, b["id"], {"zones": ["z"]})
            bc = await wait_broadcast(api, bid, 90, done=lambda x: x["summary"]["state"] == "waiting")
            text_vi = bc["summary"]["text_vi"]
            assert text_vi.startswith(
                "Đã phát xong ở 1/2 cụm loa, 1 cụm mất kết nối — sẽ phát khi kết nối lại đến ")

            lines: list[str] = []
            async with api.stream("GET", f"/api/broadcasts/{bid}/events") as r:  # over the wire
                assert r.headers["content-type"].startswith("text/event-stream")
                async for line in r.aiter_lines():
                    lines.append(line)
                    if line == ": keep-alive":
                        break
            data = [line for line in lines if line.startswith("data: ")]
            assert lines[0] == "retry: 2000" and "event: delivery" in lines and len(data) == 1
            assert text_vi in data[0]  # the state at connect, then a keep-alive on a quiet stream

            page = await phone(browser, server, *ADMIN)
            await page.goto(f"{server.url}/broadcasts/{bid}")
            await page.wait_for_function("t => document.getElementById('outcome').textContent === t",
                                         arg=text_vi)
            assert await page.is_visible("#endwait button")
            asked: list[str] = []

            async def accept(dialog: Any) -> None:
                asked.append(dialog.message)
                await dialog.accept()

            page.on("dialog", accept)
            await page.click("#endwait button")
            await page.wait_for_function(
                "() => document.getElementById('outcome').textContent.startsWith('Đã phát xong một phần')")
            assert asked and asked[0].startswith("Thôi chờ các cụm loa đang mất kết nối?")
            await page.wait_for_selector("#endwait", state="hidden")
            await page.wait_for_selector("#rows tr[data-node=w-2] >> text=thôi chờ (người vận hành kết thúc)")
            done = await wait_broadcast(api, bid, 30)
            assert done["status"] == "done"
            assert {d["node_id"]: d["reason"] for d in done["deliveries"]}["w-2"] == "ended_by_operator"
            await page.context.close()
        finally:
            await unit.stop()
