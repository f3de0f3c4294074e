"""Presence: truthful online/offline from birth, last-will, heartbeats and the broker link."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from devices import protocol as p
from devices.broker import BrokerProcess
from devices.mqtt import AsyncMqttClient, BrokerAddress
from tests.conftest import make_settings, running_controller
from tests.e2e.helpers import provision, sim, wait_for, wait_online

pytestmark = [pytest.mark.broker, pytest.mark.timeout(90)]


async def node_status(client: object, node_id: str) -> dict[str, object]:
    r = await client.get(f"/api/nodes/{node_id}")  # type: ignore[attr-defined]
    body: dict[str, object] = r.json()
    return body


@pytest.mark.both_databases
async def test_birth_will_silence_and_clean_shutdown(mosquitto: BrokerProcess, tmp_path: Path) -> None:
    settings = make_settings(tmp_path, mosquitto.port, heartbeat_timeout_s=3)
    async with running_controller(settings) as (app, client):
        await provision(client, {"z": ["crash-1", "quiet-1", "bye-1"]})
        crash, bye = sim("crash-1", mosquitto.port), sim("bye-1", mosquitto.port)
        await asyncio.gather(crash.start(), bye.start())
        # a unit whose link is half-open: it announced itself, then nothing more arrives
        quiet = AsyncMqttClient("quiet-1", BrokerAddress(port=mosquitto.port))
        quiet.start()
        await quiet.connected.wait()
        birth = p.NodeState(node_id="quiet-1", status=p.NodeStatus.ONLINE, session="q1")
        await quiet.publish(p.Topics().state("quiet-1"), p.encode(birth), retain=True)
        try:
            await wait_online(client, ["crash-1", "quiet-1", "bye-1"])
            await crash.kill()
            await bye.stop()

            async def settled() -> bool:
                st = {i: (await node_status(client, i))["status"] for i in ("crash-1", "quiet-1", "bye-1")}
                return st == {"crash-1": "offline", "quiet-1": "offline", "bye-1": "shutdown"}

            await wait_for(settled, 15, "will, silence and shutdown seen")
            await app.state.services.writer.flush()  # events are written in batches
            quiet_events = [e["kind"] for e in (await node_status(client, "quiet-1"))["events"]]  # type: ignore[union-attr]
            assert quiet_events[:2] == ["offline", "online"]  # newest first, each recorded once
            ev = (await node_status(client, "quiet-1"))["events"][0]  # type: ignore[index]
            assert "silent for 3 s" in ev["detail"]
        finally:
            await quiet.stop()


@pytest.mark.both_databases
async def test_unit_connected_before_it_is_added_shows_online_at_once(
        mosquitto: BrokerProcess, tmp_path: Path) -> None:
    async with running_controller(make_settings(tmp_path, mosquitto.port)) as (app, client):
        early = sim("early-1", mosquitto.port, heartbeat_s=60)
        await early.start()
        try:
            await wait_for(lambda: app.state.services.presence.unknown_ids.get("early-1"), 10,
                           "the unknown unit noticed")
            await provision(client, {"z": ["early-1"]})
            assert (await node_status(client, "early-1"))["status"] == "online"
            # and it is told its groups right away (config published on add)
            await wait_for(lambda: early.groups_subscribed == {"all", "z"}, 10, "groups applied")
        finally:
            await early.stop()


async def test_nodes_are_unknown_while_the_controller_has_no_broker(tmp_path: Path) -> None:
    broker = BrokerProcess("mosquitto").start()
    try:
        async with running_controller(make_settings(tmp_path, broker.port)) as (_, client):
            await provision(client, {"z": ["u-1"]})
            node = sim("u-1", broker.port)
            await node.start()
            await wait_online(client, ["u-1"])
            broker.stop()
            await wait_for(lambda: node_status(client, "u-1"), 1, "api answers")

            async def unknown() -> bool:
                return (await node_status(client, "u-1"))["status"] == "unknown"

            await wait_for(unknown, 15, "status unknown without a broker link")
            await node.kill()
    finally:
        broker.stop()
