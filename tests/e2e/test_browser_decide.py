"""Deciding and airing from the phone (issue 14), in Chromium at 360 × 740: a rejection needs a
reason (the writer sees it), an emergency with no text says so in Vietnamese next to the button
(it showed "?"), and a broadcast is stopped from its own page (there was no button), confirmed.
Airing naming the zones and unit count is in test_browser.py's flow."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest

from scheduler import TIMEZONE
from tests.conftest import ADMIN
from tests.e2e.helpers import air, bulletin, provision
from tests.e2e.phonecheck import assert_fits, confirming_phone, login, new_phone
from tests.e2e.test_browser import Server

pytestmark = [pytest.mark.browser, pytest.mark.broker, pytest.mark.timeout(300)]


async def test_reject_needs_a_reason_and_emergency_needs_text(server: Server, browser: Any) -> None:
    async with httpx.AsyncClient(base_url=server.url, auth=ADMIN, timeout=60) as api:
        await provision(api, {"tdp1": ["tdp1-01", "tdp1-02"]})
        r = await api.post("/api/users", json={"username": "bientap", "role": "editor"})
        ed = (r.json()["username"], r.json()["password"])
        async with httpx.AsyncClient(base_url=server.url, auth=ed, timeout=60) as editor:
            b = (await editor.post("/api/bulletins", json={"text": "Họp tổ dân phố lúc 19 giờ."})).json()
            assert (await editor.post(f"/api/bulletins/{b['id']}/submit")).status_code == 200
        page, errors = await new_phone(browser)
        answers = iter(["", "Sai giờ họp, đề nghị sửa thành 19 giờ 30."])
        asked: list[str] = []

        async def answer(dialog: Any) -> None:
            asked.append(dialog.message)
            await dialog.accept(next(answers, ""))
        page.on("dialog", answer)
        await login(page, server.url, *ADMIN)
        await page.wait_for_url(server.url + "/")
        await page.goto(server.url + "/bulletins")
        await page.click(f"#b{b['id']} .reject")  # an empty reason: refused here, nothing sent
        await page.locator(f"#b{b['id']} .reject + .note >> text=Cần ghi lý do từ chối.").wait_for()
        assert (await api.get(f"/api/bulletins/{b['id']}")).json()["approval"] == "submitted"
        await assert_fits(page, [f"#b{b['id']} button"], errors)
        await page.click(f"#b{b['id']} .reject")
        await page.locator(f"#b{b['id']} >> text=Bị từ chối").wait_for()
        got = (await api.get(f"/api/bulletins/{b['id']}")).json()
        assert got["approval"] == "rejected"
        assert got["decision_note"] == "Sai giờ họp, đề nghị sửa thành 19 giờ 30."  # the writer sees why
        assert asked[0].startswith("Lý do từ chối")

        await page.goto(server.url + "/emergency")
        await page.click("#fire")
        await page.locator("#fire + .note >> text=Nhập nội dung tin khẩn cấp.").wait_for()
        assert len(asked) == 2  # no confirmation was asked: nothing to send
        assert (await api.get("/api/broadcasts")).json() == []
        await assert_fits(page, ["#fire", "label.inl"], errors)  # a zone's whole label is its target
        await page.context.close()


async def test_a_broadcast_set_for_later_is_stopped_from_its_page(server: Server, browser: Any) -> None:
    async with httpx.AsyncClient(base_url=server.url, auth=ADMIN, timeout=60) as api:
        await provision(api, {"tdp1": ["tdp1-01"]})
        b = await bulletin(api, "Lịch tiêm chủng tuần sau.")
        later = (datetime.now(TIMEZONE) + timedelta(hours=1)).replace(microsecond=0).isoformat()
        bid = await air(api, b["id"], {"zones": ["tdp1"]}, air_at=later)
        page, errors, asked = await confirming_phone(browser, server.url, *ADMIN)
        await page.goto(f"{server.url}/broadcasts/{bid}")
        await assert_fits(page, ["#stopbc"], errors)
        await page.click("#stopbc")
        await page.locator("#stopbox + .note >> text=Đã dừng lượt phát.").wait_for()
        assert asked and asked[0].startswith("Dừng lượt phát này trên mọi cụm loa?")
        assert await page.is_hidden("#stopbc")
        assert await page.text_content("#bcstatus") == "Đã hủy"
        assert (await api.get(f"/api/broadcasts/{bid}")).json()["status"] == "cancelled"
        await page.reload()  # why, in words (it showed "Đã hủy — cancelled before airing"); names, not ids
        await page.wait_for_function("() => document.getElementById('bcstatus').textContent "
                                     "=== 'Đã hủy — trước giờ phát'")
        assert await page.text_content("#bczones") == "Khu vực: Tổ dân phố tdp1"
        await page.wait_for_selector("#rows tr[data-node=tdp1-01]")
        assert await page.locator("#rows tr[data-node=tdp1-01] a").inner_text() == "Loa tdp1-01"
        await assert_fits(page, [], errors)
        await page.context.close()


async def test_api_refusals_are_said_in_vietnamese(server: Server, browser: Any) -> None:
    page, errors = await new_phone(browser)
    await login(page, server.url, *ADMIN)
    await page.wait_for_url(server.url + "/")
    await page.goto(server.url + "/compose")
    await page.fill("#text", "🙂 !!!")  # nothing to read aloud: was the API's English sentence
    await page.click("#preview")
    note = page.locator("#preview + .note.err")
    await note.wait_for()
    assert await note.text_content() == "Nội dung chưa có chữ nào để đọc. Hãy nhập ít nhất một từ."
    # typed without diacritics: the speech engine's warning was shown in English
    await page.fill("#text", "Sang mai phuong to chuc tiem phong tai nha van hoa cho tre em")
    await page.click("#preview")
    said = page.locator("#preview + .note.ok")
    await page.wait_for_function("() => (document.querySelector('#preview + .note.ok') || {}).textContent "
                                 "?.startsWith('Nội dung có vẻ được gõ không dấu')")
    assert "The text" not in (await said.text_content() or "")
    # a refusal the page has no sentence for is said by its status, not in the API's English
    await page.route("**/api/speech/preview", lambda route: route.fulfill(
        status=409, content_type="application/json", body='{"detail": "the speech engine is busy"}'))
    await page.fill("#text", "Thông báo họp tổ dân phố.")
    await page.click("#preview")
    await page.locator("#preview + .note.err").wait_for()
    assert await page.text_content("#preview + .note.err") == "Không thực hiện được. Vui lòng thử lại. (409)"
    await assert_fits(page, ["#preview"], errors)
    await page.context.close()
