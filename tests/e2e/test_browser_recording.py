"""Recording into the audio library from the phone (issue 14: "upload MP3/WAV/M4A from the phone
(file picker and recording)"), in Chromium at 360 × 740 with its fake microphone (a steady beep,
``--use-fake-device-for-media-stream``; the permission granted as a phone's prompt would be): an
editor taps *Ghi âm*, the button becomes *Dừng ghi và lưu* and the seconds count up beside it;
stopping uploads the take, which is prepared like any upload and listed with a player, and
*Dùng làm bản tin* makes a bulletin of it that waits for approval."""

from __future__ import annotations

import httpx
import pytest

from tests.conftest import ADMIN
from tests.e2e.chromium import chromium
from tests.e2e.helpers import wait_for
from tests.e2e.phonecheck import assert_fits
from tests.e2e.test_browser import Server, phone

pytestmark = [pytest.mark.browser, pytest.mark.broker, pytest.mark.timeout(300)]


async def test_an_editor_records_into_the_library_and_uses_it(server: Server) -> None:
    async with httpx.AsyncClient(base_url=server.url, auth=ADMIN, timeout=60) as api, \
            chromium("--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream") as browser:
        r = await api.post("/api/users", json={"username": "bientap", "role": "editor"})
        assert r.status_code == 201, r.text
        page = await phone(browser, server, "bientap", r.json()["password"])
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        await page.context.grant_permissions(["microphone"], origin=server.url)
        await page.goto(server.url + "/library")
        await page.fill("#ltitle", "Ghi âm thử")
        await page.click("#lrec")
        await page.locator("#lrec span >> text=Dừng ghi và lưu").wait_for()
        await page.wait_for_function(  # the take's length, counted beside the button
            "() => /Đang ghi âm… [3-9] giây/"
            ".test(document.querySelector('#lrec + .note')?.textContent || '')")
        await page.click("#lrec")
        await page.locator("#lrec + .note >> text=Đã thêm «Ghi âm thử» vào kho âm thanh.").wait_for(
            timeout=60_000)
        await page.wait_for_selector(".item[data-title='Ghi âm thử'] audio")  # listed after the reload
        assert await page.locator("#lrec span").inner_text() == "Ghi âm"
        items = (await api.get("/api/library")).json()
        take = next(a for a in items if a["title"] == "Ghi âm thử")
        assert take["created_by"] == "bientap" and take["duration_ms"] >= 2000, take
        assert take["source_format"] in ("webm", "ogg", "m4a"), take
        await assert_fits(page, ["main button", "main input:not([type=file])"], errors)

        await page.click(f".item[data-id='{take['id']}'] .use")  # reused as a bulletin, through approval
        await page.wait_for_url("**/bulletins")

        async def made() -> bool:
            bs = (await api.get("/api/bulletins")).json()
            return any(b["created_by"] == "bientap" and b["approval"] == "draft" for b in bs)

        await wait_for(made, 30, "the editor's bulletin from the recording, as a draft")
        assert not errors, errors
        await page.context.close()
