"""The spine end to end: text → speech → MQTT → simulated units → per-node status in the API.

Runs against a real Mosquitto and against the embedded (amqtt) broker.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from devices.broker import BrokerProcess
from tests.conftest import make_settings, running_controller
from tests.e2e.helpers import air, bulletin, provision, sim, states, wait_broadcast, wait_online

pytestmark = [pytest.mark.broker, pytest.mark.timeout(180)]

ZONES = {z: [f"{z}-{i:02d}" for i in range(1, 8)] for z in ("tdp1", "tdp2", "tdp3")}
ORDER = ["queued", "sent", "receiving", "verified", "playing", "played"]


async def test_bulletin_reaches_targeted_zones_only(any_broker: BrokerProcess, tmp_path: Path) -> None:
    async with running_controller(make_settings(tmp_path, any_broker.port)) as (_, client):
        await provision(client, ZONES)
        nodes = {n: sim(n, any_broker.port, play_dir=tmp_path / "played")
                 for ids in ZONES.values() for n in ids}
        await asyncio.gather(*(node.start() for node in nodes.values()))
        try:
            await wait_online(client, list(nodes))
            b = await bulletin(client)
            audio = (await client.get(b["audio"]["url"])).content
            assert len(audio) == b["audio"]["size"] > 1000
            bid = await air(client, b["id"], {"zones": ["tdp1", "tdp3"]})
            bc = await wait_broadcast(client, bid, 90)

            targeted = set(ZONES["tdp1"] + ZONES["tdp3"])
            assert set(states(bc)) == targeted  # a delivery record for exactly the targeted units
            assert all(s == "played" for s in states(bc).values()), states(bc)
            assert bc["status"] == "done" and bc["tally"] == {"played": 14}
            for d in bc["deliveries"]:
                seen = [h["state"] for h in d["history"]]
                assert [s for s in ORDER if s in seen] == seen, seen  # transitions only move forward
                assert seen[0] == "queued" and seen[-1] == "played" and "verified" in seen
                times = [h["at"] for h in d["history"]]
                assert times == sorted(times)
            for n in targeted:  # each unit played the very bytes the controller rendered
                assert nodes[n].played == [bid]
                assert (tmp_path / "played" / n / f"{bid}.mp3").read_bytes() == audio
            for n in ZONES["tdp2"]:  # untargeted units heard nothing and received no audio
                assert nodes[n].played == [] and nodes[n].audio == {}
                assert nodes[n].stats.chunks_ok == 0 and nodes[n].stats.manifests == 0
        finally:
            await asyncio.gather(*(node.stop() for node in nodes.values()))


@pytest.mark.both_databases
async def test_whole_ward_and_single_unit_targets(mosquitto: BrokerProcess, tmp_path: Path) -> None:
    zones = {"a": ["a-1", "a-2"], "b": ["b-1", "b-2"]}
    async with running_controller(make_settings(tmp_path, mosquitto.port)) as (app, client):
        await provision(client, zones)
        nodes = {n: sim(n, mosquitto.port) for ids in zones.values() for n in ids}
        await asyncio.gather(*(node.start() for node in nodes.values()))
        try:
            await wait_online(client, list(nodes))
            b = await bulletin(client, "Mất điện từ 7h đến 9h sáng mai.")
            before = app.state.services.link.client.stats.bytes_out
            bid_all = await air(client, b["id"], {"all": True})
            bc = await wait_broadcast(client, bid_all, 60)
            assert states(bc) == {n: "played" for n in nodes}
            # published once for the whole ward: egress is one copy of the audio, not four
            egress = app.state.services.link.client.stats.bytes_out - before
            assert b["audio"]["size"] < egress < 2 * b["audio"]["size"]

            bid_one = await air(client, b["id"], {"nodes": ["b-2"]})
            bc = await wait_broadcast(client, bid_one, 60)
            assert states(bc) == {"b-2": "played"}
            assert [nodes[n].played for n in ("a-1", "a-2", "b-1")] == [[bid_all]] * 3
            assert nodes["b-2"].played == [bid_all, bid_one]
        finally:
            await asyncio.gather(*(node.stop() for node in nodes.values()))


async def test_offline_node_gets_it_within_validity_and_expires_after(
        mosquitto: BrokerProcess, tmp_path: Path) -> None:
    zones = {"z": ["on-1", "late-1", "gone-1"]}
    settings = make_settings(tmp_path, mosquitto.port, sweep_s=0.5)
    async with running_controller(settings) as (_, client):
        await provision(client, zones)
        nodes = {n: sim(n, mosquitto.port) for n in zones["z"]}
        await asyncio.gather(*(node.start() for node in nodes.values()))
        try:
            await wait_online(client, list(nodes))
            await nodes["late-1"].kill()
            await nodes["gone-1"].kill()  # both drop off the network (last-will fires)

            async def offline() -> bool:
                st = {n["id"]: n["status"] for n in (await client.get("/api/nodes")).json()}
                return st["late-1"] == st["gone-1"] == "offline"

            from tests.e2e.helpers import wait_for
            await wait_for(offline, 15, "two nodes offline")
            b = await bulletin(client, "Ngày 22/11 phường tổng vệ sinh.")
            bid = await air(client, b["id"], {"zones": ["z"]}, valid_for_s=20)
            await wait_broadcast(client, bid, 30, done=lambda bc: states(bc) == {
                "on-1": "played", "late-1": "offline", "gone-1": "offline"})

            await nodes["late-1"].start()  # back within validity: the retained manifest + repair
            bc = await wait_broadcast(client, bid, 30, done=lambda bc: states(bc)["late-1"] == "played")
            late = next(d for d in bc["deliveries"] if d["node_id"] == "late-1")
            assert [h["state"] for h in late["history"]][:3] == ["queued", "offline", "sent"]
            assert nodes["late-1"].stats.repairs_sent >= 1

            bc = await wait_broadcast(client, bid, 40)  # validity runs out for the last one
            gone = next(d for d in bc["deliveries"] if d["node_id"] == "gone-1")
            assert gone["state"] == "expired" and gone["reason"] == "node offline until expiry"
            assert bc["status"] == "expired"

            await nodes["gone-1"].start()  # back after expiry: must not play the stale bulletin
            await asyncio.sleep(3)
            assert nodes["gone-1"].played == [] and nodes["gone-1"].audio == {}
            assert states((await client.get(f"/api/broadcasts/{bid}")).json())["gone-1"] == "expired"
        finally:
            await asyncio.gather(*(node.stop() for node in nodes.values()))
