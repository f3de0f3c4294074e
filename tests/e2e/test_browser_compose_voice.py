"""The voice of a bulletin is chosen from a list on the compose screen (issue 14: it was a free
text field where a mistyped name was refused): the ward's voices by region in Vietnamese, the
default first; the chosen one is the bulletin's. In Chromium at 360 × 740 against uvicorn."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.conftest import ADMIN
from tests.e2e.phonecheck import assert_fits, confirming_phone, go
from tests.e2e.test_browser import Server
from tests.e2e.test_browser_records import check_screen

pytestmark = [pytest.mark.browser, pytest.mark.broker, pytest.mark.timeout(300)]


async def test_the_voice_is_picked_from_the_wards_voices(server: Server, browser: Any) -> None:
    async with httpx.AsyncClient(base_url=server.url, auth=ADMIN, timeout=60) as api:
        page, errors, _ = await confirming_phone(browser, server.url, *ADMIN)
        await go(page, "Soạn tin")
        await page.wait_for_url("**/compose")
        options = await page.locator("#voice option").all_inner_texts()
        assert options == ["Giọng miền Bắc (mặc định)", "Giọng miền Trung", "Giọng miền Nam"], options
        assert await page.evaluate("document.getElementById('voice').tagName") == "SELECT"
        await page.select_option("#voice", label="Giọng miền Nam")
        await page.fill("#title", "Thử giọng")
        await page.fill("#text", "Thông báo thử giọng đọc miền Nam.")
        await assert_fits(page, ["#voice", "#submit", "#preview"], errors)
        await check_screen(page, errors)
        await page.click("#submit")
        await page.wait_for_url("**/bulletins*")
        [b] = [x for x in (await api.get("/api/bulletins")).json() if x["title"] == "Thử giọng"]
        assert b["voice"] == "vi-vn-x-south", b
        await page.context.close()
