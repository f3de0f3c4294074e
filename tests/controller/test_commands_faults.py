"""Commands that need firmware support (relay stream, time sync) and units that misbehave:
crash-and-reconnect loops and a unit that lies about its id."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from devices.broker import BrokerProcess
from devices.mqtt import BrokerAddress
from firmware_sim.faultmix import fault_mix, parse_mix
from firmware_sim.faults import Faults
from firmware_sim.fleet import Fleet, fleet_specs
from tests.conftest import make_settings, running_controller
from tests.controller.command_helpers import Ctl, start, telemetry_of
from tests.e2e.helpers import allowing, provision, sim, wait_for, wait_online

pytestmark = [pytest.mark.broker, pytest.mark.timeout(90)]

STREAM = "https://stream.vov.vn/vov1.mp3"


@pytest_asyncio.fixture
async def ctl(mosquitto: BrokerProcess, tmp_path: Path) -> AsyncIterator[Ctl]:
    settings = make_settings(tmp_path, mosquitto.port, heartbeat_timeout_s=4)
    settings = allowing(settings, STREAM)  # play_stream is checked (controller/core/netguard.py): no DNS here
    async with running_controller(settings) as (app, client):
        yield app, client


async def command(client: object, node_id: str, name: str, **args: object) -> dict[str, object]:
    r = await client.post(f"/api/nodes/{node_id}/commands", json={"name": name, "args": args})  # type: ignore[attr-defined]
    assert r.status_code == 200, r.text
    [res] = r.json()["results"]
    return dict(res)


async def test_relay_stream_power_and_stop(ctl: Ctl, mosquitto: BrokerProcess) -> None:
    _, client = ctl
    await provision(client, {"z": ["s-1"]})
    node = sim("s-1", mosquitto.port)
    await start([node])
    try:
        await wait_online(client, ["s-1"])
        res = await command(client, "s-1", "play_stream", url=STREAM)
        assert (res["status"], res["data"]) == ("ok", {"playing": STREAM, "source": "relay"})
        tel = await telemetry_of(client, "s-1")
        assert (tel["source"], tel["playing"]) == ("relay", STREAM)
        res = await command(client, "s-1", "stop")
        assert res["data"] == {"stopped": STREAM}
        await wait_for(lambda: node.relay.url == "", 2, "stream stopped")
        assert (await telemetry_of(client, "s-1"))["source"] == "idle"
        assert (await command(client, "s-1", "power", on=False))["status"] == "ok"
        res = await command(client, "s-1", "play_stream", url=STREAM)  # amplifier off: refused
        assert (res["status"], res["error"]) == ("error", "power_off")
        assert (await telemetry_of(client, "s-1"))["source"] == "idle"  # an error shows nothing new
    finally:
        await node.stop()


async def test_sync_time_reports_the_units_clock_offset(ctl: Ctl, mosquitto: BrokerProcess) -> None:
    _, client = ctl
    await provision(client, {"z": ["t-1"]})
    node = sim("t-1", mosquitto.port, Faults(clock_offset_ms=-90_000, no_clock_sync=True))  # 90 s slow
    await start([node])
    try:
        await wait_online(client, ["t-1"])
        res = await command(client, "t-1", "sync_time")
        assert res["status"] == "ok" and res["data"]["method"] == "one-way"  # type: ignore[index]
        offset = res["data"]["offset_ms"]  # type: ignore[index]
        assert isinstance(offset, int) and 89_000 < offset <= 90_000  # controller − unit, less the transit
        assert (await telemetry_of(client, "t-1"))["clock_offset_ms"] == offset
    finally:
        await node.stop()


async def test_crash_loop_shows_offline_and_online_but_no_twin_alarm(
        ctl: Ctl, mosquitto: BrokerProcess) -> None:
    app, client = ctl
    await provision(client, {"z": ["c-1"]})
    node = sim("c-1", mosquitto.port, Faults(crash_every_s=1.0, crash_down_s=0.3), heartbeat_s=1)
    await node.start()
    try:
        await wait_for(lambda: node.stats.crashes >= 4, 20, "four crashes")
        await app.state.services.writer.flush()
        body = (await client.get("/api/nodes/c-1")).json()
        kinds = [e["kind"] for e in body["events"]]
        assert kinds.count("offline") >= 2 and kinds.count("online") >= 2  # each crash seen (last-will)
        assert body["alarm"] == "" and "duplicate_id" not in kinds  # a new session per boot is no twin
    finally:
        await node.stop()


async def test_fault_knobs_are_validated() -> None:
    for bad in ({"crash_every_s": 0.1}, {"crash_down_s": -1}):
        with pytest.raises(ValueError, match="crash"):
            Faults(**bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="claim_id"):
        sim("x-1", 1, Faults(claim_id="Not An Id"))
    liar = sim("liar-1", 1, Faults(claim_id="victim-1"))
    assert liar.node_id == "victim-1" and liar.brokers[0].username == "liar-1"
    await asyncio.sleep(0)


def test_fault_mix_is_repeatable_and_validated() -> None:
    ids = [f"u-{i:03d}" for i in range(1000)]
    mix = fault_mix("crash:0.1,liar:0.01,disk:0.05", ids, seed=3)
    assert mix == fault_mix("crash:0.1,liar:0.01,disk:0.05", ids, seed=3)
    assert mix != fault_mix("crash:0.1,liar:0.01,disk:0.05", ids, seed=4)
    assert 60 < sum(f.crash_every_s > 0 for f in mix.values()) < 140
    assert 20 < sum(f.storage_full for f in mix.values()) < 80
    liars = {n: f.claim_id for n, f in mix.items() if f.claim_id}
    assert liars and all(claim != n and claim in ids for n, claim in liars.items())
    assert fault_mix("", ids) == {}
    for bad, why in (("fire:0.1", "unknown fault"), ("drop:2", "0..1"), ("drop:x", "not a number")):
        with pytest.raises(ValueError, match=why):
            parse_mix(bad)


async def test_a_mixed_fleet_answers_a_zone_command_as_each_unit_can(
        ctl: Ctl, mosquitto: BrokerProcess) -> None:
    app, client = ctl
    specs = fleet_specs(16, id_prefix="mx", zones=1)
    ids = [sp.node_id for sp in specs]
    mix = fault_mix("mute:0.25,amp:0.25,clock:0.25,delay:0.25", ids, seed=7)
    for sp in specs:
        sp.faults = mix.get(sp.node_id)
    await provision(client, {"zone1": ids})
    fleet = Fleet(specs, BrokerAddress(port=mosquitto.port), heartbeat_s=2)
    assert await fleet.start() == 16
    try:
        await wait_online(client, ids)
        await wait_for(lambda: all(n.groups_subscribed == {"all", "zone1"} for n in fleet.nodes.values()), 10,
                       "groups")
        r = await client.post("/api/zones/zone1/commands", json={"name": "ping", "timeout_s": 4})
        got = {x["node_id"]: x["status"] for x in r.json()["results"]}
        muted = {n for n, f in mix.items() if f.ignore_commands}
        assert muted and got == {n: "timeout" if n in muted else "ok" for n in ids}
        broken = {n for n, f in mix.items() if f.hw_faults}
        nodes = {n["id"]: n for n in (await client.get("/api/nodes")).json()}
        assert broken and {n for n in ids if nodes[n]["telemetry"].get("faults")} == broken
    finally:
        await fleet.stop()
