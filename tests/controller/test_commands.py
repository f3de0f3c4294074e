"""Remote control through the API: request/response with correlation ids, per-node results,
timeouts, and the reply (not the send) changing what the API shows."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from devices import protocol as p
from devices.broker import BrokerProcess
from devices.mqtt import AsyncMqttClient, BrokerAddress
from firmware_sim.faults import Faults
from tests.conftest import make_settings, running_controller
from tests.controller.command_helpers import Ctl, FakeUnit, retained, start, telemetry_of
from tests.e2e.helpers import provision, sim, wait_for, wait_online

pytestmark = [pytest.mark.broker, pytest.mark.timeout(90)]


@pytest_asyncio.fixture
async def ctl(mosquitto: BrokerProcess, tmp_path: Path) -> AsyncIterator[Ctl]:
    async with running_controller(make_settings(tmp_path, mosquitto.port)) as (app, client):
        yield app, client


async def test_the_display_changes_on_the_reply_not_on_the_send(ctl: Ctl, mosquitto: BrokerProcess) -> None:
    _, client = ctl
    await provision(client, {"z": ["f-1"]})
    unit = FakeUnit("f-1", mosquitto.port)
    await unit.start()
    try:
        await wait_online(client, ["f-1"])
        call = asyncio.create_task(client.post("/api/nodes/f-1/commands", json={
            "name": "volume", "args": {"level": 35}, "timeout_s": 5}))
        await wait_for(lambda: unit.commands, 5, "the command on the wire")
        [cmd] = unit.commands
        assert (cmd.name, cmd.args) == ("volume", {"level": 35}) and cmd.id.startswith("c-")
        assert cmd.expires_at is not None and 4000 <= cmd.expires_at - cmd.ts <= 5000
        await asyncio.sleep(0.3)
        assert "volume" not in await telemetry_of(client, "f-1")  # sent, not answered: nothing shown
        await unit.reply(cmd, {"volume": 35})
        r = await call
        [res] = r.json()["results"]
        assert (res["status"], res["data"]) == ("ok", {"volume": 35})
        assert (await telemetry_of(client, "f-1"))["volume"] == 35
    finally:
        await unit.client.stop()


async def test_new_volume_survives_a_reboot_through_the_retained_config(
        ctl: Ctl, mosquitto: BrokerProcess) -> None:
    _, client = ctl
    await provision(client, {"z": ["v-1"]})
    node = sim("v-1", mosquitto.port)
    await start([node])
    try:
        await wait_online(client, ["v-1"])
        r = await client.post("/api/nodes/v-1/commands", json={"name": "volume", "args": {"level": 35}})
        assert r.json()["results"][0]["status"] == "ok", r.text
        assert node.volume == 35 and (await telemetry_of(client, "v-1"))["volume"] == 35
        await wait_for(lambda: retained_volume(mosquitto.port, "v-1"), 5, "config republished")
        await node.stop()
        node.volume = 70  # as if it forgot
        await node.start()
        await wait_for(lambda: node.volume == 35, 5, "volume restored from config")
    finally:
        await node.stop()


async def retained_volume(port: int, node_id: str) -> bool:
    [cfg] = await retained(port, f"lp/node/{node_id}/config", expect=1)
    return p.decode(p.NodeConfig, cfg).volume == 35


async def test_zone_command_reports_every_unit(ctl: Ctl, mosquitto: BrokerProcess) -> None:
    app, client = ctl
    ids = ["a-1", "a-2", "mute-1", "gone-1"]
    await provision(client, {"z": ids, "other": ["b-1"]})
    ok1, ok2, other = sim("a-1", mosquitto.port), sim("a-2", mosquitto.port), sim("b-1", mosquitto.port)
    mute = sim("mute-1", mosquitto.port, Faults(ignore_commands=True))
    await start([ok1, ok2, mute, other])
    try:
        await wait_online(client, ["a-1", "a-2", "mute-1"])
        r = await client.post("/api/zones/z/commands", json={"name": "power", "args": {"on": False},
                                                              "timeout_s": 2})
        assert r.status_code == 200, r.text
        body = r.json()
        results = {x["node_id"]: x["status"] for x in body["results"]}
        assert results == {"a-1": "ok", "a-2": "ok", "mute-1": "timeout", "gone-1": "offline"}
        assert body["tally"] == {"ok": 2, "timeout": 1, "offline": 1} and body["target"] == {"zone": "z"}
        assert not ok1.player.power and not ok2.player.power and other.player.power  # b-1 is not in z
        assert mute.player.power and mute.stats.commands_ignored == 1
        assert (await telemetry_of(client, "a-1"))["power"] is False
        assert (await telemetry_of(client, "mute-1"))["power"] is True
        # one publish for the zone, not one per unit
        assert ok1.stats.commands == 1 and other.stats.commands == 0
        # the log keeps it
        await app.state.services.writer.flush()
        logged = (await client.get(f"/api/commands/{body['id']}")).json()
        assert logged["tally"] == body["tally"] and logged["created_by"] == "admin"
        assert (await client.get("/api/commands")).json()[0]["id"] == body["id"]
    finally:
        await asyncio.gather(ok1.stop(), ok2.stop(), mute.stop(), other.stop())


async def test_a_command_never_replays_when_the_unit_reconnects(ctl: Ctl, mosquitto: BrokerProcess) -> None:
    _, client = ctl
    await provision(client, {"z": ["r-1"]})
    node = sim("r-1", mosquitto.port)
    await start([node])
    try:
        await wait_online(client, ["r-1"])
        for path in ("/api/nodes/r-1/commands", "/api/zones/z/commands", "/api/zones/all/commands"):
            r = await client.post(path, json={"name": "ping"})
            assert r.json()["results"][0]["status"] == "ok", r.text
        assert node.stats.commands == 3
        for topic in ("lp/node/r-1/cmd", "lp/group/z/cmd", "lp/group/all/cmd"):
            assert await retained(mosquitto.port, topic) == []
        await node.kill()  # power loss, then the unit comes back
        await node.start()
        await wait_for(lambda: {"all", "z"} <= node.groups_subscribed, 10, "resubscribed")
        await asyncio.sleep(0.5)
        assert node.stats.commands == 3 and node.stats.commands_duplicate == 0
    finally:
        await node.stop()


async def test_bad_requests_are_refused_with_reasons(ctl: Ctl, mosquitto: BrokerProcess) -> None:
    app, client = ctl
    await provision(client, {"z": ["q-1"]})
    r = await client.post("/api/zones", json={"id": "empty", "name": "Không có loa"})
    assert r.status_code == 201
    cases = [
        ("/api/nodes/nope/commands", {"name": "ping"}, 404, "unknown unit"),
        ("/api/zones/nope/commands", {"name": "ping"}, 404, "unknown zone"),
        ("/api/zones/empty/commands", {"name": "ping"}, 409, "has no units"),
        ("/api/nodes/q-1/commands", {"name": "selfdestruct"}, 422, "unknown command"),
        ("/api/nodes/q-1/commands", {"name": "volume", "args": {"level": "70"}}, 422, "level"),
        ("/api/nodes/q-1/commands", {"name": "volume", "args": {"level": 101}}, 422, "level"),
        ("/api/nodes/q-1/commands", {"name": "power", "args": {"on": "true"}}, 422, "on"),
        ("/api/nodes/q-1/commands", {"name": "ping", "args": {"x": 1}}, 422, "x"),
        ("/api/nodes/q-1/commands", {"name": "play_stream", "args": {"url": "file:///x"}}, 422, "url"),
        ("/api/nodes/q-1/commands", {"name": "ping", "timeout_s": 0}, 422, "timeout_s"),
        ("/api/nodes/q-1/commands", {"name": "ping", "bogus": 1}, 422, "bogus"),
    ]
    for path, body, code, needle in cases:
        r = await client.post(path, json=body)
        assert r.status_code == code, (path, body, r.text)
        assert needle in r.text, (needle, r.text)
    assert app.state.services.commands.stats["sent"] == 0
    assert (await client.post("/api/nodes/q-1/commands", json={"name": "ping"},
                              auth=("admin", "wrong"))).status_code == 401


async def test_no_broker_means_503_and_nothing_sent(tmp_path: Path) -> None:
    from devices.broker import free_port

    async with running_controller(make_settings(tmp_path, free_port())) as (app, client):
        await provision(client, {"z": ["n-1"]})
        r = await client.post("/api/nodes/n-1/commands", json={"name": "ping"})
        assert r.status_code == 503 and "broker" in r.text
        assert app.state.services.commands.stats["sent"] == 0


async def test_a_retained_command_planted_on_an_open_broker_is_refused_by_the_unit(
        mosquitto: BrokerProcess) -> None:
    """Defence in depth for brokers without our ACL: the unit never executes a retained copy."""
    planter = AsyncMqttClient("planter", BrokerAddress(port=mosquitto.port))
    planter.start()
    await planter.connected.wait()
    cmd = p.Command(id="c-planted", name="power", args={"on": False})  # no expiry either
    await planter.publish("lp/node/p-1/cmd", p.encode(cmd), qos=1, retain=True)
    node = sim("p-1", mosquitto.port)
    await node.start()
    try:
        await wait_for(lambda: node.stats.commands_retained == 1, 5, "the retained copy refused")
        assert node.stats.commands == 0 and node.player.power
    finally:
        await node.stop()
        await planter.publish("lp/node/p-1/cmd", b"", qos=1, retain=True)  # clear it
        await planter.stop()
