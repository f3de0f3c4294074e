"""Emergency templates from the phone (issue 14), in Chromium at 360 × 740 against a real server,
Mosquitto and simulated units: the emergency screen offers bão, lũ lụt, cháy, mất điện, sự cố;
their audio is rendered when the controller starts (the page says so once it is), so the bulletin
made from a template is a cache hit — no new speech is synthesised when the operator fires it; a
tap fills the text (said next to the buttons), the confirmation names the zones and the unit
count, and the broadcast goes to the chosen zone only, as an emergency. In English the buttons
are English and the message stays Vietnamese (the ward hears it)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from controller.bulletins.emergency_templates import TEMPLATES
from controller.bulletins.speech_settings import TtsSettings
from devices.broker import BrokerProcess
from tests.conftest import ADMIN, make_settings
from tests.e2e.axe import serious_violations
from tests.e2e.helpers import provision, sim, wait_for, wait_online
from tests.e2e.phonecheck import assert_fits
from tests.e2e.test_browser import Server, phone, shot

pytestmark = [pytest.mark.browser, pytest.mark.broker, pytest.mark.timeout(300)]

TARGETS = ["main button", "main textarea", "main label.inl", "nav.tabs > a", "#morebtn", "header a"]


@pytest.fixture
def prerendering(mosquitto: BrokerProcess, tmp_path: Path) -> Iterator[Server]:
    """A server that renders the templates' audio at start (the tests' default turns it off)."""
    settings = make_settings(tmp_path, mosquitto.port).model_copy(update={"tts": TtsSettings()})
    with Server(settings) as srv:
        yield srv


def rendered(cache_dir: Path) -> set[str]:
    return {p.name for p in cache_dir.rglob("*.bin")}


async def test_emergency_templates_pre_rendered_and_aired(prerendering: Server, browser: Any,
                                                         mosquitto: BrokerProcess, tmp_path: Path) -> None:
    server = prerendering
    cache_dir = server.app.state.services.settings.cache_dir
    async with httpx.AsyncClient(base_url=server.url, auth=ADMIN, timeout=60) as api:
        await provision(api, {"tdp1": ["tdp1-01", "tdp1-02"], "tdp2": ["tdp2-01"]})
        units = [sim(n, mosquitto.port) for n in ("tdp1-01", "tdp1-02", "tdp2-01")]
        await asyncio.gather(*(u.start() for u in units))
        try:
            await wait_online(api, ["tdp1-01", "tdp1-02", "tdp2-01"], timeout=30)
            r = await api.post("/api/users", json={"username": "vanhanh", "role": "operator"})
            assert r.status_code == 201, r.text
            op = await phone(browser, server, "vanhanh", r.json()["password"])
            asked: list[str] = []

            async def accept(dialog: Any) -> None:
                asked.append(dialog.message)
                await dialog.accept()
            op.on("dialog", accept)
            errors: list[str] = []
            op.on("pageerror", lambda e: errors.append(str(e)))

            async def ready() -> bool:
                await op.goto(server.url + "/emergency")
                return await op.get_attribute("#tplready", "data-ready") == "yes"

            await wait_for(ready, 180, "the templates' audio rendered ahead", every=1.0)
            assert len(rendered(cache_dir)) >= len(TEMPLATES)
            said = await op.text_content("#tplready")
            assert said == "Âm thanh các mẫu đã chuẩn bị sẵn: phát ngay khi bấm.", said
            names = await op.locator(".tpl").all_inner_texts()
            assert names == ["Bão", "Lũ lụt", "Cháy", "Mất điện", "Sự cố"], names
            assert await op.input_value("#text") == ""  # nothing filled until a template is chosen
            await op.click(".tpl[data-key=bao]")
            bao = TEMPLATES[0].text
            assert await op.input_value("#text") == bao
            assert await op.get_attribute(".tpl[data-key=bao]", "aria-pressed") == "true"
            assert await op.text_content("#tplnote") == ("Đã điền mẫu “Bão”. Sửa nội dung nếu cần, chọn khu "
                                                          "vực rồi bấm nút đỏ.")
            await assert_fits(op, TARGETS, errors)
            assert not await serious_violations(op)
            await op.uncheck("input[name=ez][value=tdp2]")
            await shot(op, "9-emergency")
            before = rendered(cache_dir)
            await op.click("#fire")
            await op.wait_for_url("**/broadcasts/*")
            assert "Tổ dân phố tdp1 (2 cụm loa)" in asked[-1] and "tdp2" not in asked[-1], asked
            bid = op.url.rsplit("/", 1)[1]
            bc = (await api.get(f"/api/broadcasts/{bid}")).json()
            assert bc["priority"] == "emergency" and bc["targets"]["zones"] == ["tdp1"], bc
            assert (await api.get(f"/api/bulletins/{bc['bulletin_id']}")).json()["text"] == bao
            assert rendered(cache_dir) == before  # the template's audio was ready: nothing synthesised now

            await op.context.add_cookies([{"name": "lang", "value": "en", "url": server.url}])
            await op.goto(server.url + "/emergency")
            assert await op.locator(".tpl").all_inner_texts() == ["Storm", "Flood", "Fire", "Power cut",
                                                                  "Incident"]
            await op.click(".tpl[data-key=chay]")
            assert await op.input_value("#text") == TEMPLATES[2].text  # what the ward hears: Vietnamese
            assert not errors, errors
            await op.context.close()
        finally:
            await asyncio.gather(*(u.stop() for u in units))
