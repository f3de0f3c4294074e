"""The dashboard (``/``) tells the truth (issue 14), with one real Mosquitto and simulated units:
"Đang phát" lists a relay on air with its zone by name and never a broadcast only scheduled;
"Cảnh báo" lists a unit that went offline (by name, with since when), and a broadcast that failed
on a unit in the last 24 h, linking to its delivery view; a broadcast with a unit playing and a
live session on air are listed with their zones by name, and the session no longer once ended;
units switched off cleanly are counted under "Đã tắt"."""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import select

from controller.airing.models import Delivery
from devices import protocol as p
from devices.broker import BrokerProcess
from firmware_sim.faults import Faults
from tests.conftest import make_settings, running_controller
from tests.e2e.helpers import air, allowing, bulletin, logged_in, provision, sim, wait_for, wait_online

pytestmark = [pytest.mark.broker, pytest.mark.timeout(240)]


def section(page: str, sid: str) -> str:
    m = re.search(rf'<section id="{sid}">(.*?)</section>', page, re.S)
    assert m, f"the dashboard has its {sid} section"
    return m.group(1)


async def test_dashboard_lists_what_sounds_and_what_is_wrong(mosquitto: BrokerProcess,
                                                             tmp_path: Path) -> None:
    settings = allowing(make_settings(tmp_path, mosquitto.port), "http://radio.example")
    async with running_controller(settings) as (app, client):
        await provision(client, {"z1": ["d-1"], "z2": ["d-2"]})
        nodes = {n: sim(n, mosquitto.port) for n in ("d-1", "d-2")}
        for n in nodes.values():
            await n.start()
        browser = await logged_in(app)
        try:
            await wait_online(client, list(nodes), timeout=30)
            home = await browser.get("/")
            assert home.status_code == 200
            assert "Không có" in section(home.text, "now-playing")  # nothing sounds yet
            assert "Không có" in section(home.text, "alarms")

            # a broadcast only scheduled (tomorrow) is not "Đang phát"
            b = await bulletin(client, "Lịch tiêm phòng ngày mai.", title="Tiêm phòng")
            later = (datetime.now(tz=UTC) + timedelta(days=1)).isoformat()
            await air(client, b["id"], {"zones": ["z1"]}, air_at=later)
            # a relay on air now in z1
            r = await browser.post("/api/relays", json={"url": "http://radio.example/vov1.mp3",
                                                        "target": {"zones": ["z1"]}})
            assert r.status_code == 201, r.text
            await nodes["d-2"].kill()  # gone without a clean shutdown: offline (its will)

            async def shown() -> bool:
                page = (await browser.get("/")).text
                return "vov1.mp3" in section(page, "now-playing") and "Loa d-2" in section(page, "alarms")

            await wait_for(shown, 60, "the relay on air and the offline unit on the dashboard", every=0.5)
            page = (await browser.get("/")).text
            now = section(page, "now-playing")
            assert "Tiếp sóng: http://radio.example/vov1.mp3" in now and "Tổ dân phố z1" in now
            assert "cụm loa đang phát" in now
            assert "Tiêm phòng" not in now and "Không có" not in now  # only scheduled: not on air
            alarms = section(page, "alarms")
            assert '<a href="/units/d-2">Loa d-2</a>' in alarms and "Mất kết nối từ " in alarms
            assert "Loa d-1" not in alarms  # online and no alarm
            assert "Tiêm phòng" in section(page, "next")  # still listed, under "Tiếp theo"

            # a broadcast that failed on a unit in the last 24 h: listed with a link to its delivery view
            b2 = await bulletin(client, "Thông báo cắt nước.", title="Cắt nước")
            bid = await air(client, b2["id"], {"zones": ["z2"]})

            def mark_failed() -> bool:
                with app.state.services.db.session() as s:
                    rows = list(s.exec(select(Delivery).where(Delivery.broadcast_id == bid)).all())
                    if not rows or any(d.state != "offline" for d in rows):
                        return False  # the service has not written where it stands yet
                    for d in rows:  # as the delivery service writes a unit that never got it
                        d.state, d.reason = "expired", "node offline until expiry"
                        s.add(d)
                    s.commit()
                    return bool(rows)

            await wait_for(mark_failed, 30, "the delivery row of the broadcast to z2 (offline)")

            async def failed_shown() -> bool:
                return f'href="/broadcasts/{bid}"' in section((await browser.get("/")).text, "alarms")

            await wait_for(failed_shown, 30, "the failed broadcast under Cảnh báo")
            alarms = section((await browser.get("/")).text, "alarms")
            assert f'<a href="/broadcasts/{bid}">Cắt nước</a>' in alarms
            assert "Không phát được ở 1/1 cụm loa" in alarms
            assert alarms.index("Loa d-2") < alarms.index("Cắt nước")  # offline units first

            browser.cookies.set("lang", "en")
            en = (await browser.get("/")).text
            assert "Offline since " in section(en, "alarms") and "Not played on 1 of 1 units" in en
            assert "Relay: http://radio.example/vov1.mp3" in section(en, "now-playing")
        finally:
            await browser.aclose()
            for n in nodes.values():
                if n.running:
                    await n.stop()


async def test_dashboard_lists_a_broadcast_playing_and_a_live_session(mosquitto: BrokerProcess,
                                                                      tmp_path: Path) -> None:
    async with running_controller(make_settings(tmp_path, mosquitto.port)) as (app, client):
        await provision(client, {"z3": ["d-3"], "z4": ["d-4"]})
        nodes = {"d-3": sim("d-3", mosquitto.port, faults=Faults(time_scale=40.0)),  # plays for minutes
                 "d-4": sim("d-4", mosquitto.port)}
        for n in nodes.values():
            await n.start()
        browser = await logged_in(app)
        hub = app.state.services.live_hub
        hub.no_audio_s = math.inf  # no phone feeds it here: the session stays on air until ended
        session = None
        try:
            await wait_online(client, list(nodes), timeout=30)
            b = await bulletin(client, "Mời bà con họp tổ dân phố tối nay.", title="Họp tổ")
            bid = await air(client, b["id"], {"zones": ["z3"]})
            session = hub.open(user="admin", priority=p.Priority.NORMAL, nodes=["d-4"],
                               scopes=[p.AudioScope(kind="node", id="d-4")], notify=lambda _: None,
                               target={"zones": ["z4"]})

            async def shown() -> bool:
                now = section((await browser.get("/")).text, "now-playing")
                return f'href="/broadcasts/{bid}"' in now and "Phát trực tiếp: admin" in now

            await wait_for(shown, 90, "the broadcast playing and the live session shown", every=0.5)
            now = section((await browser.get("/")).text, "now-playing")
            assert "Họp tổ" in now and "Tổ dân phố z3" in now and "loa đang phát" in now
            assert "Tổ dân phố z4" in now
        finally:
            if session is not None:
                hub.end(session, "stopped")
            await browser.aclose()
            for n in nodes.values():
                await n.stop()
        async def switched_off() -> bool:  # stopped cleanly: "Đã tắt", not offline nor online
            return '<b id="n-shutdown">2</b>' in await logged_in_page(app)

        await wait_for(switched_off, 30, "both units counted under Đã tắt")
        home = await logged_in_page(app)
        assert '<b id="n-online">0</b>' in home and '<b id="n-offline">0</b>' in home
        assert "Phát trực tiếp" not in section(home, "now-playing")  # ended: no longer listed


async def logged_in_page(app: Any) -> str:
    c = await logged_in(app)
    try:
        return (await c.get("/")).text
    finally:
        await c.aclose()
