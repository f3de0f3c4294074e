"""Faults on the way: broker down at start, broker restart mid-delivery, lost and corrupted chunks,
malformed node payloads, two units with one id. Each test states what must hold afterwards."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from devices.broker import BrokerProcess, free_port
from devices.mqtt import AsyncMqttClient, BrokerAddress
from firmware_sim.faults import Faults
from tests.conftest import make_settings, running_controller
from tests.e2e.helpers import air, bulletin, provision, sim, states, wait_broadcast, wait_for, wait_online

pytestmark = [pytest.mark.broker, pytest.mark.timeout(180)]


async def test_broker_down_at_start_then_up(tmp_path: Path) -> None:
    """The controller starts without a broker, says so, retries, and works once it appears."""
    port = free_port()
    async with running_controller(make_settings(tmp_path, port)) as (app, client):
        health = (await client.get("/api/health")).json()
        assert health["status"] == "degraded" and health["mqtt"]["connected"] is False
        await provision(client, {"z": ["n-1"]})  # the API keeps working meanwhile
        b = await bulletin(client)
        bid = await air(client, b["id"], {"zones": ["z"]})  # accepted; waits for the broker

        async def refused() -> bool:
            health = (await client.get("/api/health")).json()
            return "refused" in health["mqtt"]["last_error"].lower()

        await wait_for(refused, 15, "the broker's refusal in /api/health")
        assert app.state.services.link.client.stats.connect_failures >= 1
        with BrokerProcess("mosquitto", port):
            node = sim("n-1", port)
            await node.start()
            try:
                bc = await wait_broadcast(client, bid, 60)
                assert states(bc) == {"n-1": "played"}
                assert (await client.get("/api/health")).json()["status"] == "ok"
            finally:
                await node.stop()


@pytest.mark.both_databases
async def test_broker_restart_mid_delivery(tmp_path: Path) -> None:
    """Broker restarts (losing retained messages) while a broadcast is out: nothing is lost."""
    port = free_port()
    zones = {"z": [f"r-{i}" for i in range(6)]}
    with BrokerProcess("mosquitto", port) as broker:
        async with running_controller(make_settings(tmp_path, port, sweep_s=0.5, resend_after_s=3)) as (
                _, client):
            await provision(client, zones)
            nodes = [sim(n, port, Faults(time_scale=0.2)) for n in zones["z"]]
            await asyncio.gather(*(n.start() for n in nodes))
            try:
                await wait_online(client, zones["z"])
                # a long bulletin so the restart lands while units are still busy with it
                b = await bulletin(client, "Thông báo khẩn về phòng chống bão số 5. " * 12)
                bid = await air(client, b["id"], {"zones": ["z"]})
                await asyncio.sleep(0.3)
                await asyncio.to_thread(broker.restart, 1.0)
                bc = await wait_broadcast(client, bid, 120)
                assert states(bc) == {n: "played" for n in zones["z"]}, states(bc)
                assert all(n.played == [bid] for n in nodes)  # once each, never twice
            finally:
                await asyncio.gather(*(n.stop() for n in nodes))


async def test_lost_and_corrupted_chunks_are_repaired(mosquitto: BrokerProcess, tmp_path: Path) -> None:
    async with running_controller(make_settings(tmp_path, mosquitto.port)) as (_, client):
        await provision(client, {"z": ["lost-1", "bad-1", "ok-1"]})
        lost = sim("lost-1", mosquitto.port, Faults(drop_chunks={0, 2}))
        bad = sim("bad-1", mosquitto.port, Faults(corrupt_chunks={1}))
        ok = sim("ok-1", mosquitto.port)
        await asyncio.gather(lost.start(), bad.start(), ok.start())
        try:
            await wait_online(client, ["lost-1", "bad-1", "ok-1"])
            b = await bulletin(client, "Lịch cắt điện: từ 7 giờ đến 11 giờ ngày mai, khu vực tổ 5. " * 5)
            assert b["audio"]["size"] > 3 * 16384  # at least 4 chunks
            bid = await air(client, b["id"], {"zones": ["z"]})
            bc = await wait_broadcast(client, bid, 60)
            assert states(bc) == {"lost-1": "played", "bad-1": "played", "ok-1": "played"}
            audio = (await client.get(b["audio"]["url"])).content
            assert lost.audio[bid] == bad.audio[bid] == ok.audio[bid] == audio
            assert lost.stats.repairs_sent >= 1 and lost.stats.chunks_fault_dropped == 2
            assert bad.stats.chunks_bad >= 1 and bad.stats.repairs_sent >= 1  # CRC caught it
            assert ok.stats.repairs_sent == 0
        finally:
            await asyncio.gather(lost.stop(), bad.stop(), ok.stop())


@pytest.mark.both_databases
async def test_malformed_node_payloads_are_counted_and_ignored(
        mosquitto: BrokerProcess, tmp_path: Path) -> None:
    async with running_controller(make_settings(tmp_path, mosquitto.port)) as (app, client):
        await provision(client, {"z": ["good-1"]})
        node = sim("good-1", mosquitto.port)
        await node.start()
        rogue = AsyncMqttClient("rogue", BrokerAddress(port=mosquitto.port))
        rogue.start()
        await rogue.connected.wait()
        try:
            await wait_online(client, ["good-1"])
            bad = [
                ("lp/node/good-1/ack", b"{not json"),
                ("lp/node/good-1/ack", json.dumps({"v": 1, "node_id": "good-1", "bc": "x",
                                                   "state": 42}).encode()),  # wrong type
                ("lp/node/good-1/ack", json.dumps({"v": 9, "node_id": "good-1"}).encode()),  # version
                ("lp/node/good-1/heartbeat", b"x" * 100_000),  # oversize
                ("lp/node/good-1/telemetry", b"[1, 2, 3]"),  # not an object
                ("lp/node/good-1/state", json.dumps({"v": 1, "node_id": "other-9", "status": "offline",
                                                     "session": "s"}).encode()),  # id mismatch
                ("lp/node/ghost-7/heartbeat", json.dumps({"v": 1, "node_id": "ghost-7", "session": "s",
                                                          "seq": 1}).encode()),  # unknown node
            ]
            for topic, payload in bad:
                await rogue.publish(topic, payload)

            async def counted() -> bool:
                h = (await client.get("/api/health")).json()["mqtt"]
                return h["rejected"].get("invalid_payload") == 5 and h["rejected"].get(
                    "node_id_mismatch") == 1 and h["unknown_nodes"] == 1

            await wait_for(counted, 10, "rejections counted")
            # afterwards: the node is still online and a broadcast still reaches it
            nodes = {n["id"]: n["status"] for n in (await client.get("/api/nodes")).json()}
            assert nodes == {"good-1": "online"}
            b = await bulletin(client, "Kiểm tra hệ thống loa.")
            bc = await wait_broadcast(client, await air(client, b["id"], {"all": True}), 60)
            assert states(bc) == {"good-1": "played"}
        finally:
            await rogue.stop()
            await node.stop()


async def test_two_units_with_one_id_raise_an_alarm(mosquitto: BrokerProcess, tmp_path: Path) -> None:
    async with running_controller(make_settings(tmp_path, mosquitto.port)) as (app, client):
        await provision(client, {"z": ["twin-1"]})
        a = sim("twin-1", mosquitto.port, session="aaaa1111")
        b = sim("twin-1", mosquitto.port, session="bbbb2222")
        await a.start()
        await wait_online(client, ["twin-1"])
        await b.start(wait=False)  # the broker hands the session back and forth
        try:
            async def alarmed() -> bool:
                n = (await client.get("/api/nodes/twin-1")).json()
                return n["alarm"] == "duplicate_id"

            await wait_for(alarmed, 60, "duplicate_id alarm", every=0.5)
            await app.state.services.writer.flush()  # events are written in batches
            node = (await client.get("/api/nodes/twin-1")).json()
            dup_events = [e for e in node["events"] if e["kind"] == "duplicate_id"]
            assert len(dup_events) == 1  # one alarm, not one per flap
            assert "twin-1" in dup_events[0]["detail"]
        finally:
            await asyncio.gather(a.stop(), b.stop())
