"""What staff see, end to end (real Mosquitto, the whole controller, simulated units), issue 13:
a unit switched off cleanly shows ``shutdown`` ("Đã tắt") in the API and the web app; a broadcast
to its zone says "Đã phát xong ở 2/3 cụm loa, 1 cụm mất kết nối — sẽ phát khi kết nối lại đến
HH:MM" while it waits for that unit; an operator ends the waiting from the delivery view's API call,
the broadcast is done at once, audited, and the unit, back later, is never told to play it. A unit
whose amplifier is switched off (``power`` command) stays online and says "đã tắt tăng âm". Two
units on one id raise ``duplicate_id``; once the second is gone an operator clears it (D12)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import select

from controller.accounts.models import AuditEntry
from devices.broker import BrokerProcess
from tests.conftest import make_settings, running_controller
from tests.e2e.helpers import air, bulletin, logged_in, provision, sim, wait_broadcast, wait_for, wait_online

pytestmark = [pytest.mark.broker, pytest.mark.timeout(240)]


@pytest.mark.both_databases
async def test_switched_off_unit_waited_for_then_the_operator_ends_the_waiting(
        mosquitto: BrokerProcess, tmp_path: Path) -> None:
    async with running_controller(make_settings(tmp_path, mosquitto.port)) as (app, client):
        ids = ["t-1", "t-2", "t-3"]
        await provision(client, {"z": ids})
        nodes = {n: sim(n, mosquitto.port) for n in ids}
        await asyncio.gather(*(n.start() for n in nodes.values()))
        browser = await logged_in(app)
        try:
            await wait_online(client, ids, timeout=30)
            await nodes["t-3"].stop()  # switched off: a clean shutdown

            async def shut_down() -> bool:
                return bool((await client.get("/api/nodes/t-3")).json()["status"] == "shutdown")

            await wait_for(shut_down, 30, "t-3 shown shut down")
            listed = {n["id"]: n["status"] for n in (await client.get("/api/nodes")).json()}
            assert listed == {"t-1": "online", "t-2": "online", "t-3": "shutdown"}
            page = (await browser.get("/units/t-3")).text
            assert 'class="shutdown" id="status">Đã tắt<' in page  # not "Trực tuyến"

            b = await bulletin(client, "Kiểm tra loa.")
            bid = await air(client, b["id"], {"zones": ["z"]})

            def waiting(bc: dict[str, Any]) -> bool:
                return bool(bc["summary"]["state"] == "waiting")

            bc = await wait_broadcast(client, bid, 90, done=waiting)
            sm = bc["summary"]
            assert bc["status"] == "active" and sm["waiting_nodes"] == ["t-3"]
            assert sm["groups"]["played"] == 2 and sm["groups"]["waiting_offline"] == 1
            assert sm["waiting_until"] == bc["expires_at"]
            assert sm["text_vi"].startswith(
                "Đã phát xong ở 2/3 cụm loa, 1 cụm mất kết nối — sẽ phát khi kết nối lại đến ")
            assert sm["text_en"].startswith(
                "Aired on 2/3 units, 1 offline — they play when they reconnect, until ")
            listed_bc = [x for x in (await client.get("/api/broadcasts")).json() if x["id"] == bid]
            assert listed_bc[0]["summary"]["state"] == "waiting"
            view = (await browser.get(f"/broadcasts/{bid}")).text
            assert sm["text_vi"] in view and '<p id="endwait">' in view  # the button, not hidden
            for screen in ("/", "/history"):  # the dashboard and the history say the same
                assert sm["text_vi"] in (await browser.get(screen)).text, screen

            r = await browser.post(f"/api/broadcasts/{bid}/end-waiting")  # what the button calls
            assert r.status_code == 200, r.text
            ended = r.json()
            assert ended["status"] == "done" and ended["summary"]["state"] == "partly_aired"
            rows = {d["node_id"]: (d["state"], d["reason"]) for d in ended["deliveries"]}
            assert rows == {"t-1": ("played", ""), "t-2": ("played", ""),
                            "t-3": ("cancelled", "ended_by_operator")}
            assert (await browser.post(f"/api/broadcasts/{bid}/end-waiting")).status_code == 409
            with app.state.services.db.session() as s:
                [entry] = s.exec(select(AuditEntry).where(AuditEntry.action == "broadcast_end_waiting")).all()
                assert (entry.username, entry.target) == ("admin", f"broadcast:{bid}")
                assert entry.detail == "1 unit(s): t-3"

            back = nodes["t-3"] = sim("t-3", mosquitto.port)  # switched on again
            await back.start()
            await wait_online(client, ["t-3"], timeout=30)
            await wait_for(lambda: back.groups_subscribed == {"all", "z"}, 30, "t-3 has its groups")
            r = await client.post("/api/nodes/t-1/commands", json={"name": "power", "args": {"on": False}})
            assert r.status_code == 200 and r.json()["results"][0]["status"] == "ok", r.text
            t1 = (await client.get("/api/nodes/t-1")).json()
            assert t1["status"] == "online" and t1["telemetry"]["power"] is False  # amplifier off, unit up
            assert 'id="status">Trực tuyến · đã tắt tăng âm<' in (await browser.get("/units/t-1")).text
            final = (await client.get(f"/api/broadcasts/{bid}")).json()
            assert bid not in back.player.start_times  # never told to play it
            assert {d["node_id"]: d["state"] for d in final["deliveries"]}["t-3"] == "cancelled"
            assert final["status"] == "done"
        finally:
            await browser.aclose()
            await asyncio.gather(*(n.stop() for n in nodes.values()))


@pytest.mark.both_databases
async def test_duplicate_id_alarm_is_cleared_by_an_operator_once_the_twin_is_gone(
        mosquitto: BrokerProcess, tmp_path: Path) -> None:
    async with running_controller(make_settings(tmp_path, mosquitto.port)) as (app, client):
        await provision(client, {"z": ["twin-1"]})
        a = sim("twin-1", mosquitto.port, session="aaaa1111")
        b = sim("twin-1", mosquitto.port, session="bbbb2222")
        await a.start()
        await wait_online(client, ["twin-1"], timeout=30)
        await b.start(wait=False)  # the broker hands the session back and forth
        try:
            async def alarmed() -> bool:
                return bool((await client.get("/api/nodes/twin-1")).json()["alarm"] == "duplicate_id")

            await wait_for(alarmed, 90, "duplicate_id alarm", every=0.5)
            await b.stop()  # the second unit found and taken away
            r = await client.post("/api/nodes/twin-1/clear-alarm")
            assert r.status_code == 200 and r.json()["cleared"] == "duplicate_id", r.text
            await wait_online(client, ["twin-1"], timeout=60)  # the one left comes back
            await app.state.services.writer.flush()
            node = (await client.get("/api/nodes/twin-1")).json()
            assert node["alarm"] == "" and node["status"] == "online"
            kinds = [e["kind"] for e in node["events"]]  # newest first
            assert "alarm_cleared" in kinds and kinds.count("duplicate_id") == 1
        finally:
            await asyncio.gather(a.stop(), b.stop())
