"""Bad and odd replies to commands: each is counted and ignored, and none loses the good ones."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from devices.broker import BrokerProcess
from tests.conftest import make_settings, running_controller
from tests.controller.command_helpers import Ctl, FakeUnit, telemetry_of
from tests.e2e.helpers import provision, wait_for, wait_online

pytestmark = [pytest.mark.broker, pytest.mark.timeout(60)]


@pytest_asyncio.fixture
async def ctl(mosquitto: BrokerProcess, tmp_path: Path) -> AsyncIterator[Ctl]:
    async with running_controller(make_settings(tmp_path, mosquitto.port)) as (app, client):
        yield app, client


async def units(client: object, port: int, ids: list[str]) -> list[FakeUnit]:
    await provision(client, {"z": ids})  # type: ignore[arg-type]
    out = [FakeUnit(i, port) for i in ids]
    await asyncio.gather(*(u.start() for u in out))
    await wait_online(client, ids)  # type: ignore[arg-type]
    return out


def raw(**fields: object) -> bytes:
    return json.dumps({"v": 1, "ts": 1, **fields}).encode()


async def test_garbage_duplicates_and_strangers_do_not_disturb_a_zone_command(
        ctl: Ctl, mosquitto: BrokerProcess) -> None:
    app, client = ctl
    sv = app.state.services
    u1, u2 = await units(client, mosquitto.port, ["f-1", "f-2"])
    try:
        call = asyncio.create_task(client.post("/api/zones/z/commands", json={
            "name": "volume", "args": {"level": 20}, "timeout_s": 5}))
        await wait_for(lambda: u1.commands and u2.commands, 5, "the group command at both units")
        c1, c2 = u1.commands[0], u2.commands[0]
        assert c1.id == c2.id  # one publish on the group topic, one correlation id
        garbage = [
            b"{not json",
            raw(id=c1.id, node_id="f-1", status="maybe"),  # not ok/error
            raw(id=c1.id, node_id="f-1", status="ok", data="x"),  # wrong type
            raw(id=c1.id, node_id="f-1", status="ok", data={"volume": 20})[:-1] + b" " * 20_000 + b"}",
            json.dumps({"v": 2, "id": c1.id, "node_id": "f-1", "status": "ok"}).encode(),
            raw(id=c1.id, node_id="f-2", status="ok", data={"volume": 20}),  # says it is someone else
        ]
        for body in garbage:
            await u1.send(body)
        await u1.reply(c1.model_copy(update={"id": "c-never-sent"}), {"volume": 20})
        await u1.reply(c1, {"volume": 20})
        await u1.reply(c1, {"volume": 20})  # duplicate delivery (QoS 1)
        await u2.reply(c2, {"volume": "20"})  # ok, but nonsense data
        r = await call
        assert r.status_code == 200, r.text
        res = {x["node_id"]: (x["status"], x["data"]) for x in r.json()["results"]}
        assert res == {"f-1": ("ok", {"volume": 20}), "f-2": ("ok", {"volume": "20"})}
        assert (await telemetry_of(client, "f-1"))["volume"] == 20
        assert "volume" not in await telemetry_of(client, "f-2")  # nothing believable to show
        assert sv.link.rejected["invalid_payload"] == 5 and sv.link.rejected["node_id_mismatch"] == 1
        stats = sv.commands.stats
        assert (sv.link.replies.stats["unknown_id"], stats["duplicate"], stats["bad_reply_data"]) == (1, 1, 1)
    finally:
        await asyncio.gather(u1.client.stop(), u2.client.stop())


async def test_late_reply_updates_the_display_and_strangers_are_ignored(
        ctl: Ctl, mosquitto: BrokerProcess) -> None:
    app, client = ctl
    sv = app.state.services
    u1, u2 = await units(client, mosquitto.port, ["g-1", "g-2"])
    try:
        call = asyncio.create_task(client.post("/api/nodes/g-1/commands", json={
            "name": "power", "args": {"on": False}, "timeout_s": 1}))
        await wait_for(lambda: u1.commands, 5, "command at g-1")
        await u2.reply(u1.commands[0], {"power": False})  # g-2 answers a command meant for g-1
        r = await call
        assert [(x["node_id"], x["status"]) for x in r.json()["results"]] == [("g-1", "timeout")]
        assert sv.commands.stats["unsolicited"] == 1
        assert "power" not in await telemetry_of(client, "g-2")
        await u1.reply(u1.commands[0], {"power": False})  # the unit did it after all
        await wait_for(lambda: sv.commands.stats["late"] == 1, 5, "late reply seen")
        assert (await telemetry_of(client, "g-1"))["power"] is False
    finally:
        await asyncio.gather(u1.client.stop(), u2.client.stop())
