"""The relay screen (/relay, tiếp sóng) in a real browser: Playwright driving Debian's headless
Chromium at 360 × 740 against uvicorn, a real Mosquitto, simulated units and local HTTP "radio
stations".

An operator starts a relay now to one zone and watches the list (refreshed by fetch, no reload)
reach "2/2 loa đang phát"; stops it and the units stop; relays a station through the controller
(republish) and sees "Mất tín hiệu nguồn — đang thử lại" when the station goes off the air;
makes a daily relay schedule from the relay screen and another from the schedule screen, both
shown in the agenda with the radio icon. Writes docs/screenshots/relay.png. (Ward scoping of the relay
screen is checked without a browser in tests/controller/test_ui_relay.py.)
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from devices.broker import BrokerProcess
from scheduler import TIMEZONE
from tests.conftest import ADMIN, make_settings
from tests.e2e import test_browser
from tests.e2e.helpers import allowing, provision, sim, wait_for, wait_online
from tests.e2e.phonecheck import go
from tests.e2e.test_relay_sessions import Mp3Radio, serve, tone_mp3
from tests.firmware_sim.test_relay import Radio

pytestmark = [pytest.mark.browser, pytest.mark.broker, pytest.mark.timeout(180)]

browser = test_browser.browser  # the same fixture
Server, phone, shot = test_browser.Server, test_browser.phone, test_browser.shot

ZONES = {"tdp1": ["tdp1-01", "tdp1-02"], "tdp2": ["tdp2-01"]}


def accept_next_dialog(page: Any) -> None:
    page.once("dialog", lambda d: asyncio.ensure_future(d.accept()))


@pytest.fixture
def stations(tmp_path: Path) -> Iterator[tuple[Radio, Mp3Radio]]:
    radio = Radio()
    station = Mp3Radio(tone_mp3(tmp_path))
    serve(radio)
    serve(station)
    try:
        yield radio, station
    finally:
        for st in (radio, station):
            st.up.clear()
            st.shutdown()
            st.server_close()


@pytest.fixture
def server(mosquitto: BrokerProcess, tmp_path: Path, stations: tuple[Radio, Mp3Radio]) -> Iterator[Server]:
    """The controller, allowed to relay the two local stations (127.0.0.1 is not public)."""
    with Server(allowing(make_settings(tmp_path, mosquitto.port), stations[0].base, stations[1].url)) as srv:
        yield srv


async def test_relay_screen(server: Server, mosquitto: BrokerProcess, browser: Any,
                            stations: tuple[Radio, Mp3Radio]) -> None:
    radio, station = stations
    async with httpx.AsyncClient(base_url=server.url, auth=ADMIN, timeout=60) as admin:
        await provision(admin, ZONES)
        r = await admin.post("/api/users", json={"username": "vanhanh", "role": "operator"})
        assert r.status_code == 201, r.text
        units = {n: sim(n, mosquitto.port, heartbeat_s=2.0) for ids in ZONES.values() for n in ids}
        await asyncio.gather(*(u.start() for u in units.values()))
        try:
            await wait_online(admin, list(units))
            await run_flow(browser, server, r.json()["password"], units, radio, station)
        finally:
            await asyncio.gather(*(u.stop() for u in units.values()))


async def run_flow(browser: Any, server: Server, password: str, units: dict[str, Any], radio: Radio,
                   station: Mp3Radio) -> None:
    zone1 = [units[n] for n in ZONES["tdp1"]]
    op = await phone(browser, server, "vanhanh", password)
    await go(op, "Tiếp sóng")
    await op.wait_for_url("**/relay")
    assert "Chưa có gì." in (await op.text_content("#rl") or "")

    # --- the API's refusal is shown in Vietnamese (by its code): a station that cannot be reached (republish)
    await op.fill("#ru", "http://127.0.0.1:9/off.mp3")
    await op.select_option("#rm", "republish")
    await op.click("#rgo")
    await op.wait_for_selector(".note.err >> text=Không lấy được luồng phát từ địa chỉ này.")
    await op.select_option("#rm", "node_fetch")

    # --- at a set time (ward time, +07:00), for 30 minutes: scheduled, then cancelled
    await op.fill("#ru", f"{radio.base}/live.mp3")
    await op.check("input[name=rw][value=at]")
    day = (datetime.now(tz=TIMEZONE) + timedelta(days=1)).date()
    await op.fill("#rat", f"{day.isoformat()}T06:30")
    await op.fill("#rd", "30")
    await op.click("#rgo")
    at = f"{day:%d/%m}"  # shown in ward time: the page sent 06:30+07:00
    window = f"Dự kiến bắt đầu {at} 06:30 · Kết thúc {at} 07:00"  # not started yet: planned
    await op.wait_for_selector(f".relay[data-state=scheduled] >> text={window}", timeout=10_000)
    accept_next_dialog(op)
    await op.click(".relay[data-state=scheduled] button:has-text('Dừng phát')")
    await op.wait_for_selector(".relay[data-state=ended]")
    await op.check("input[name=rw][value=now]")
    await op.fill("#rd", "")

    # --- a relay now to tdp1, the units fetch the stream: the list reaches 2/2 without a reload
    await op.uncheck("input[name=rz][value=tdp2]")
    await op.click("#rgo")
    row = ".relay[data-state=playing]"
    await op.wait_for_selector(f"{row} >> text=2/2 loa đang phát", timeout=20_000)
    shown = await op.text_content(row) or ""
    assert "Đang phát" in shown
    # which controller runs it and when it last renewed its lease (a takeover shows as a new name)
    owner = r"Máy chủ phụ trách: loaphuong-controller-\S+ · cập nhật lúc \d\d:\d\d:\d\d"
    assert re.search(owner, shown), shown
    assert all(u.relay.state == "playing" for u in zone1) and units["tdp2-01"].relay.state == ""
    assert await op.evaluate("performance.getEntriesByType('navigation').length") == 1  # no reload
    dash = await op.context.new_page()  # the dashboard's "Đang phát" lists the relay (it ignored relays)
    await dash.goto(server.url + "/")
    on_air = await dash.inner_text("#now-playing p.relay")
    assert "Tiếp sóng" in on_air and "2/2 cụm loa đang phát" in on_air, on_air
    assert "Tổ dân phố tdp1" in on_air and "tdp2" not in on_air, on_air
    await dash.close()

    # --- stop it (with a confirmation): ended, and the units stop
    accept_next_dialog(op)
    await op.click(f"{row} button:has-text('Dừng phát')")
    await op.wait_for_function("!document.querySelector('.relay:not([data-state=ended])')", timeout=15_000)
    assert await op.locator(".relay[data-state=ended]").count() == 2
    await wait_for(lambda: all(u.relay.state == "" for u in zone1), 15, "units stop relaying")

    # --- the controller relays a station (republish); the station goes off the air
    await op.fill("#ru", station.url)
    await op.select_option("#rm", "republish")
    await op.click("#rgo")
    await op.wait_for_selector(row, timeout=20_000)
    await wait_for(lambda: all(u.live.active for u in zone1), 20, "units play the republished relay")
    station.up.clear()
    warning = await op.wait_for_selector(".relay[data-state=interrupted] .alert", timeout=30_000)
    assert "Mất tín hiệu nguồn — đang thử lại" in (await warning.text_content() or "")
    await op.wait_for_selector(".relay[data-state=interrupted] .alert small")  # the station's last error
    said = await op.inner_text(".relay[data-state=interrupted] .alert small")
    assert said.split(" · ")[0] in ("Không kết nối được tới đài phát", "Luồng phát bị ngắt",
                                    "Đài phát gặp lỗi") or said.startswith("Đài phát trả lời lỗi HTTP"), said
    await shot(op, "relay")
    accept_next_dialog(op)
    await op.click(".relay[data-state=interrupted] button:has-text('Dừng phát')")
    await op.wait_for_function("!document.querySelector('.relay:not([data-state=ended])')", timeout=15_000)

    # --- every day at 05:45 for 30 minutes: a relay schedule, shown in the agenda with the radio icon
    await op.check("input[name=rw][value=daily]")
    await op.fill("#rtimes", "05:45")
    await op.fill("#rd", "30")
    await op.click("#rgo")
    await op.wait_for_selector(".note >> text=Đã tạo lịch tiếp sóng hằng ngày.")
    await go(op, "Lịch phát")
    await op.wait_for_selector(f"tr:has-text('05:45') >> td.ti:has(.rl) >> "
                               f"text=Tiếp sóng: {station.url}")

    # --- the schedule screen makes a relay schedule too (Bản tin / Tiếp sóng)
    await op.check("input[name=what][value=relay]")
    await op.fill("#su", f"{radio.base}/live.mp3")
    await op.fill("#sdur", "15")
    await op.select_option("#kind", "daily")
    await op.fill("#times", "21:10")
    for box in await op.query_selector_all("input[name=sz]"):  # nothing is pre-checked (issue 14)
        await box.check()
    await op.click("button:has-text('Lưu')")
    await op.wait_for_selector(f"tr:has-text('21:10') >> td.ti:has(.rl) >> "
                               f"text=Tiếp sóng: {radio.base}/live.mp3",
                               timeout=20_000)  # after the reload
    await op.context.close()
