"""The schedules API on the real app: clear 422/404 answers that write nothing, the agenda with
conflicts, runs, and (with a broker) a scheduled bulletin played by simulated units."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlmodel import func, select

from devices.broker import BrokerProcess, free_port
from scheduler.models import Schedule
from tests.conftest import make_settings, running_controller
from tests.e2e.helpers import allowing, provision, sim, states, wait_broadcast, wait_online
from tests.scheduler.ward import fast, in_s, today, wait_until

pytestmark = pytest.mark.timeout(150)

Client = tuple[Any, httpx.AsyncClient]


def settings(tmp_path: Path, port: int) -> Any:
    base = allowing(make_settings(tmp_path, port), "http://radio.example")  # relay schedules: no DNS
    # a 3 s lead: a slot a few seconds ahead is fired (pre-delivered) before it even on a busy machine
    return base.model_copy(update={"schedule": fast(grace_s=30, lead_s=3)})


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[tuple[Any, httpx.AsyncClient, int]]:
    async with running_controller(settings(tmp_path, free_port())) as (app, client):
        await provision(client, {"z1": ["n1", "n2"], "z2": ["n3"]})
        assert (await client.post("/api/zones", json={"id": "empty", "name": "Empty"})).status_code == 201
        r = await client.post("/api/bulletins", json={"text": "Chiều nay 17 giờ họp tổ dân phố."})
        assert r.status_code == 201
        yield app, client, r.json()["id"]


async def poll(pred: Callable[[], Awaitable[bool]], timeout: float, what: str) -> None:
    """Wait for an async condition, up to a deadline."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not await pred():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        await asyncio.sleep(0.1)


def count(app: Any) -> int:
    with app.state.services.db.session() as s:
        return int(s.exec(select(func.count()).select_from(Schedule)).one())


async def test_bad_schedules_are_refused_with_reasons_and_write_nothing(
        api: tuple[Any, httpx.AsyncClient, int]) -> None:
    app, client, bid = api
    past = (datetime.now().astimezone() - timedelta(minutes=5)).isoformat()
    z1: dict[str, Any] = {"zones": ["z1"]}
    daily = {"kind": "daily", "times": ["05:30"]}
    cases: list[tuple[dict[str, Any], int, str]] = [
        ({"when": {"kind": "once", "at": past}}, 422, "is in the past"),
        ({"when": {"kind": "cron", "cron": "0 25 * * *"}}, 422, "higher than the maximum value (23)"),
        ({"when": {"kind": "cron", "cron": "every day"}}, 422, "has 2"),
        ({"when": daily, "repeat": 0}, 422, "greater than or equal to 1"),
        ({"when": daily, "repeat": -3}, 422, "greater than or equal to 1"),
        ({"when": daily, "repeat": 11}, 422, "less than or equal to 10"),
        ({"when": daily, "bulletin_id": 999}, 404, "bulletin 999 does not exist"),
        ({"when": daily, "target": {"zones": ["nope"]}}, 404, "unknown zone(s): nope"),
        ({"when": daily, "target": {"nodes": ["n1", "ghost"]}}, 404, "unknown unit(s): ghost"),
        ({"when": daily, "target": {"zones": ["empty"]}}, 422, "no loudspeaker units"),
        ({"when": daily, "target": {}}, 422, "choose the whole ward"),
        ({"when": {"kind": "daily", "times": ["25:61"]}}, 422, "'25:61' is not a time of day"),
        ({"when": {"kind": "between", "times": ["06:00"], "start_date": "2026-12-10",
                   "end_date": "2026-12-01"}}, 422, "end_date 2026-12-01 is before start_date 2026-12-10"),
        ({"when": {"kind": "daily", "times": ["06:00"], "end_date": "2020-01-01"}}, 422, "never air"),
        ({"when": daily, "repeat": 3, "interval_s": 1}, 422, "would overlap"),
        ({"when": {"kind": "weekly", "times": ["06:00"]}}, 422, "needs weekdays"),
        ({"when": daily, "colour": "red"}, 422, "extra"),
    ]
    before = count(app)
    for extra, code, needle in cases:
        body = {"bulletin_id": bid, "target": z1, **extra}
        r = await client.post("/api/schedules", json=body)
        assert r.status_code == code, (extra, r.text)
        assert needle.lower() in r.text.lower(), (extra, r.text)
    assert count(app) == before == 0
    assert (await client.patch("/api/schedules/77", json={"repeat": 2})).status_code == 404
    assert (await client.delete("/api/schedules/77")).status_code == 404
    assert (await client.get("/api/schedules/77/runs")).status_code == 404


async def test_crud_agenda_conflicts_and_exceptions(api: tuple[Any, httpx.AsyncClient, int]) -> None:
    app, client, bid = api
    audio_ms = (await client.get(f"/api/bulletins/{bid}")).json()["audio"]["duration_ms"]
    tomorrow = today() + timedelta(days=1)

    async def create(body: dict[str, Any]) -> dict[str, Any]:
        r = await client.post("/api/schedules", json={"bulletin_id": bid, **body})
        assert r.status_code == 201, r.text
        out: dict[str, Any] = r.json()
        return out

    morning = await create({"target": {"zones": ["z1"]}, "when": {"kind": "daily", "times": ["05:30"]},
                            "exceptions": [tomorrow.isoformat()], "name": "Sáng"})
    clash = await create({"target": {"nodes": ["n2"]}, "repeat": 2, "priority": "priority",
                          "when": {"kind": "cron", "cron": "30 5 * * *"}})
    other_zone = await create({"target": {"zones": ["z2"]}, "when": {"kind": "daily", "times": ["05:30"]}})
    assert morning["next_slots"][0].endswith("+07:00") and "T05:30:00" in morning["next_slots"][0]
    assert tomorrow.isoformat() not in " ".join(morning["next_slots"])  # exception date left out
    agenda = (await client.get("/api/agenda", params={"days": 7})).json()
    z1 = {z["zone"]: z for z in agenda["zones"]}["z1"]["items"]
    day2 = [i for i in z1 if i["at"].startswith((today() + timedelta(days=2)).isoformat())]
    assert {i["schedule_id"] for i in day2} == {morning["id"], clash["id"]}
    by_id = {i["schedule_id"]: i for i in day2}
    assert by_id[morning["id"]]["duration_ms"] == audio_ms
    assert by_id[clash["id"]]["duration_ms"] == 2 * audio_ms  # back-to-back repeats
    assert by_id[clash["id"]]["priority"] == "priority" and by_id[morning["id"]]["title"]
    assert [c["schedule_id"] for c in by_id[morning["id"]]["conflicts"]] == [clash["id"]]
    skipped = [i for i in z1
               if i["at"].startswith(tomorrow.isoformat()) and i["schedule_id"] == morning["id"]]
    assert [i["status"] for i in skipped] == ["skipped"] and skipped[0]["conflicts"] == []
    z2 = {z["zone"]: z for z in agenda["zones"]}["z2"]["items"]
    assert all(i["conflicts"] == [] for i in z2) and {i["schedule_id"] for i in z2} == {other_zone["id"]}
    assert agenda["conflicts"] >= 6 and agenda["timezone"] == "Asia/Ho_Chi_Minh"
    assert (await client.get("/api/agenda", params={"days": 0})).status_code == 422
    # change, disable, delete
    r = await client.patch(f"/api/schedules/{clash['id']}",
                           json={"when": {"kind": "daily", "times": ["06:00"]}})
    assert r.status_code == 200 and r.json()["version"] == 2
    agenda = (await client.get("/api/agenda")).json()
    assert all(i["conflicts"] == [] for z in agenda["zones"] for i in z["items"])
    r = await client.patch(f"/api/schedules/{morning['id']}", json={"enabled": False})
    assert r.status_code == 200 and r.json()["next_slots"] == []
    assert (await client.delete(f"/api/schedules/{other_zone['id']}")).status_code == 204
    listed = [s["id"] for s in (await client.get("/api/schedules")).json()]
    assert listed == [morning["id"], clash["id"]]
    assert (await client.get(f"/api/schedules/{other_zone['id']}")).json()["deleted"] is True
    status = (await client.get("/api/scheduler")).json()
    assert status["leading"] is True and status["lease"]["holder"] == status["me"]
    assert app.state.services.schedules.leading


async def test_runs_show_what_happened_to_each_slot(api: tuple[Any, httpx.AsyncClient, int]) -> None:
    _, client, bid = api
    # 14-15 s ahead: in the future when the request is received, on a busy machine too
    r = await client.post("/api/schedules", json={"bulletin_id": bid, "target": {"zones": ["z1"]},
                                                  "when": {"kind": "once", "at": in_s(15).isoformat()}})
    assert r.status_code == 201, r.text
    sid = r.json()["id"]

    async def aired() -> bool:
        got = (await client.get(f"/api/schedules/{sid}/runs")).json()
        return bool(got) and got[0]["status"] == "aired"

    await poll(aired, 45, "the slot to air")
    [run] = (await client.get(f"/api/schedules/{sid}/runs")).json()
    assert run["slot_at"].endswith("+07:00") and run["late_ms"] == 0 and len(run["broadcast_ids"]) == 1
    bc = (await client.get(f"/api/broadcasts/{run['broadcast_ids'][0]}")).json()
    assert bc["bulletin_id"] == bid and bc["tally"] == {"queued": 2}  # no broker here: waiting to send
    assert (await client.get(f"/api/schedules/{sid}/runs", params={"status": "missed"})).json() == []
    one = (await client.get(f"/api/schedules/{sid}")).json()
    # pre-delivered a lead ahead: handled (last_slot_at), and still shown until it has aired
    assert one["last_slot_at"] == run["slot_at"] and one["next_slots"] in ([], [run["slot_at"]])


@pytest.mark.broker
async def test_a_scheduled_bulletin_is_played_by_the_units(mosquitto: BrokerProcess, tmp_path: Path) -> None:
    async with running_controller(settings(tmp_path, mosquitto.port)) as (app, client):
        ids = ["s-1", "s-2"]
        await provision(client, {"z": ids})
        nodes = [sim(n, mosquitto.port) for n in ids]
        await asyncio.gather(*(n.start() for n in nodes))
        try:
            await wait_online(client, ids)
            b = (await client.post("/api/bulletins", json={"text": "Thông báo lịch tiêm phòng."})).json()
            r = await client.post("/api/schedules", json={
                "bulletin_id": b["id"], "target": {"zones": ["z"]},
                "when": {"kind": "once", "at": in_s(15).isoformat()}})
            assert r.status_code == 201, r.text
            runs_url = f"/api/schedules/{r.json()['id']}/runs"

            async def fired() -> bool:
                return bool((await client.get(runs_url)).json())

            await poll(fired, 45, "the slot to fire")
            [run] = (await client.get(runs_url)).json()
            assert run["status"] == "aired", run
            bc = await wait_broadcast(client, run["broadcast_ids"][0], 40)
            assert states(bc) == {n: "played" for n in ids}
            await wait_until(lambda: all(n.played == [bc["id"]] for n in nodes), 5, "each unit playing once")
        finally:
            await asyncio.gather(*(n.stop() for n in nodes))


async def test_a_schedule_switches_between_bulletin_and_relay(
        api: tuple[Any, httpx.AsyncClient, int]) -> None:
    """PATCH may turn a bulletin schedule into a relay and back; each keeps its checks; the agenda
    shows a relay with its duration, and it conflicts with a bulletin at the same time."""
    app, client, bid = api
    z1 = {"zones": ["z1"]}
    daily = {"kind": "daily", "times": ["05:30"]}
    r = await client.post("/api/schedules", json={"bulletin_id": bid, "target": z1, "when": daily})
    assert r.status_code == 201, r.text
    first = r.json()["id"]
    relay = {"url": "http://radio.example/vov1.m3u8", "duration_s": 1800}
    r = await client.post("/api/schedules", json={"relay": relay, "target": z1, "when": daily})
    assert r.status_code == 201, r.text
    second = r.json()
    assert second["bulletin_id"] is None and second["relay"]["mode"] == "node_fetch"
    agenda = (await client.get("/api/agenda?days=2")).json()
    items = [i for z in agenda["zones"] if z["zone"] == "z1" for i in z["items"]]
    relays = [i for i in items if i["kind"] == "relay"]
    assert relays and all(i["duration_ms"] == 1_800_000 and i["conflicts"] for i in relays)
    assert agenda["conflicts"] >= 1

    r = await client.patch(f"/api/schedules/{second['id']}", json={"bulletin_id": bid, "relay": relay})
    assert r.status_code == 422 and "either bulletin_id" in r.text
    r = await client.patch(f"/api/schedules/{second['id']}", json={"repeat": 3})
    assert r.status_code == 422 and "repeat 1" in r.text
    r = await client.patch(f"/api/schedules/{first}", json={"relay": {**relay, "mode": "republish"}})
    assert r.status_code == 200, r.text
    assert r.json()["bulletin_id"] is None and r.json()["relay"]["mode"] == "republish"
    r = await client.patch(f"/api/schedules/{first}", json={"bulletin_id": bid})
    assert r.status_code == 200 and r.json()["relay"] is None and r.json()["bulletin_id"] == bid
    assert count(app) == 2
