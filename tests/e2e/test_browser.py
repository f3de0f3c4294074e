"""The phone web app in a real browser: Playwright driving Debian's headless Chromium at a
360 × 740 viewport against a real uvicorn server, a real Mosquitto and simulated units.

Log in, compose, preview, submit; approve; air and watch the delivery view fill in (SSE);
switch a unit off and see the unit confirm; fire an emergency. Screenshots of each screen go to
docs/screenshots/ (shown in the README).
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from controller.app import create_app
from devices.broker import BrokerProcess
from tests.conftest import ADMIN, make_settings
from tests.e2e.chromium import chromium
from tests.e2e.helpers import provision, sim, wait_online
from tests.e2e.phonecheck import go

pytestmark = [pytest.mark.browser, pytest.mark.broker, pytest.mark.timeout(300)]

SHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
NEW_PASSWORD = "Chosen-pass-4812x"  # what phone() picks when the app asks for a new password
ZONES = {"tdp1": ["tdp1-01", "tdp1-02"], "tdp2": ["tdp2-01", "tdp2-02"]}


class Server:
    """The real app under uvicorn in a thread (its own event loop), on a free port."""

    def __init__(self, settings: Any) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))  # bound here: no race for a "free" port with parallel tests
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.app = create_app(settings)
        self.server = uvicorn.Server(uvicorn.Config(self.app, log_config=None, lifespan="on"))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]},
                                       name="uvicorn", daemon=True)

    def __enter__(self) -> Server:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(30)
        self.sock.close()


@pytest.fixture
def server(mosquitto: BrokerProcess, tmp_path: Path) -> Iterator[Server]:
    with Server(make_settings(tmp_path, mosquitto.port)) as srv:
        yield srv


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    async with chromium() as b:
        yield b


async def phone(browser: Any, server: Server, user: str, password: str) -> Any:
    ctx = await browser.new_context(viewport={"width": 360, "height": 740}, device_scale_factor=1,
                                    is_mobile=True, has_touch=True, locale="vi-VN")
    page = await ctx.new_page()
    page.set_default_timeout(30_000)
    await page.goto(server.url + "/")
    assert "/login" in page.url  # no session: the login screen
    await page.fill("#u", user)
    await page.fill("#p", password)
    await page.click("#go")
    await page.wait_for_url(lambda url: url.endswith("/") or "/password" in url)
    if "/password" in page.url:  # a one-time password: the app asks for a new one first
        await page.fill("#cur", password)
        await page.fill("#new1", NEW_PASSWORD)
        await page.fill("#new2", NEW_PASSWORD)
        await page.click("#savepw")
        await page.wait_for_url(server.url + "/")
    return page


async def shot(page: Any, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


async def wait_rows(page: Any, n: int, states: set[str], timeout_s: float = 90) -> None:
    """The delivery view (updated by SSE, no reload) shows ``n`` units, all in ``states``."""
    deadline = time.monotonic() + timeout_s
    got: list[str] = []
    while time.monotonic() < deadline:
        got = await page.eval_on_selector_all("#rows tr", "rs => rs.map(r => r.dataset.state)")
        if len(got) == n and set(got) <= states:
            return
        await asyncio.sleep(0.25)
    raise AssertionError(f"delivery view shows {got}")


async def test_phone_flow(server: Server, mosquitto: BrokerProcess, browser: Any, tmp_path: Path) -> None:
    async with httpx.AsyncClient(base_url=server.url, auth=ADMIN, timeout=60) as admin:
        await provision(admin, ZONES)
        pw = {}
        for name, role in (("bientap", "editor"), ("pheduyet", "approver"), ("vanhanh", "operator")):
            r = await admin.post("/api/users", json={"username": name, "role": role})
            assert r.status_code == 201, r.text
            pw[name] = r.json()["password"]
        units = [sim(n, mosquitto.port, heartbeat_s=2.0) for ids in ZONES.values() for n in ids]
        await asyncio.gather(*(u.start() for u in units))
        try:
            await wait_online(admin, [u.node_id for u in units])
            await run_flow(browser, server, pw, admin)
        finally:
            await asyncio.gather(*(u.stop() for u in units))


async def run_flow(browser: Any, server: Server, pw: dict[str, str], admin: httpx.AsyncClient) -> None:
    # --- editor: log in, compose, preview (plays in the browser, shows the normalised text), submit
    ed = await phone(browser, server, "bientap", pw["bientap"])
    await shot(ed, "1-dashboard")
    await go(ed, "Soạn tin")
    await ed.fill("#text", "Thông báo: 7h30 ngày 25/11/2026 UBND phường họp tại nhà văn hóa")
    await ed.click("#preview")
    await ed.wait_for_selector("#spokenbox:not([hidden])")
    spoken = await ed.text_content("#spoken") or ""
    assert "bảy giờ ba mươi" in spoken, spoken  # the normalised text is shown
    assert "/api/speech/audio/" in await ed.eval_on_selector("#player", "a => a.src")  # it plays here
    await shot(ed, "2-compose")
    await ed.click("#submit")
    await ed.wait_for_url("**/bulletins*")
    assert "Chờ duyệt" in (await ed.text_content("main") or "")
    await ed.context.close()

    # --- approver: approve it
    ap = await phone(browser, server, "pheduyet", pw["pheduyet"])
    await go(ap, "Bản tin")
    await shot(ap, "3-approval")
    await ap.click("button:has-text('Phê duyệt') >> nth=0")
    await ap.wait_for_selector("small.approved")
    await ap.context.close()

    # --- operator: air it and watch the delivery view fill in without reload
    op = await phone(browser, server, "vanhanh", pw["vanhanh"])
    await go(op, "Bản tin")
    await op.click("summary >> nth=0")
    await op.click("button:has-text('Phát ngay') >> nth=0")  # no zone checked: it says so, airs nothing
    await op.wait_for_selector("button:has-text('Phát ngay') + .note"
                               " >> text=Chọn ít nhất một khu vực để phát.")
    for box in await op.query_selector_all("section >> nth=0 >> input[type=checkbox]"):
        await box.check()
    asked: list[str] = []

    async def accept(dialog: Any) -> None:
        asked.append(dialog.message)
        await dialog.accept()
    op.on("dialog", accept)
    await op.click("button:has-text('Phát ngay') >> nth=0")
    await op.wait_for_url("**/broadcasts/*")
    await wait_rows(op, 4, {"queued", "sent", "receiving", "verified", "playing", "played"}, 30)
    assert asked[-1].startswith("Phát “") and "(4 cụm loa)" in asked[-1], asked  # zones and units named
    await wait_rows(op, 4, {"played"})
    assert "Đã phát: 4" in (await op.text_content("#tally") or "")
    await shot(op, "4-delivery")

    # --- units: the list and map, a unit's page, switch it off and see the unit confirm
    await go(op, "Cụm loa")
    await shot(op, "5-units")
    await op.click("a[href='/units/tdp1-01'] >> nth=0")
    await op.wait_for_url("**/units/tdp1-01")
    await op.click("button:has-text('Tắt')")
    await op.wait_for_selector("#result.ok", timeout=20_000)
    assert "Cụm loa đã xác nhận" in (await op.text_content("#result") or "")
    await shot(op, "6-unit-off")
    await op.click("button:has-text('Bật')")
    await op.wait_for_selector("#result.ok", timeout=20_000)

    # --- schedule and history screens
    await go(op, "Lịch phát")
    await op.select_option("#kind", "daily")
    await op.fill("#times", "06:00, 17:30")
    for box in await op.query_selector_all("input[name=sz]"):  # nothing is pre-checked
        await box.check()
    await op.click("button:has-text('Lưu')")
    await op.wait_for_selector("tr >> text=Thông báo", timeout=20_000)  # the agenda after the reload
    await shot(op, "7-schedule")
    await go(op, "Lịch sử")
    await shot(op, "8-history")

    # --- emergency: one separated button, a confirmation, then every chosen unit plays it
    await go(op, "Khẩn cấp")
    await op.fill("#text", "Khẩn cấp: nước sông đang lên nhanh, đề nghị bà con di chuyển lên chỗ cao.")
    await op.click("#fire")  # the handler above accepts the confirmation
    await op.wait_for_url("**/broadcasts/*")
    assert "Tổ dân phố tdp1, Tổ dân phố tdp2 (4 cụm loa)" in asked[-1], asked
    await wait_rows(op, 4, {"played"})
    await shot(op, "10-emergency-delivery")
    audit = (await admin.get("/api/audit")).json()
    assert any(a["action"] == "emergency_bypass" and a["username"] == "vanhanh" for a in audit)
    await op.context.close()
