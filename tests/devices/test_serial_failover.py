"""The serial gateway given two brokers: when the one it is on dies, it goes on to the other,
publishes its birth and every child's retained state there, subscribes again and answers a
command for a child on the new broker (docs/protocol.md §1 "Several brokers", §7.5)."""

from __future__ import annotations

import asyncio
import zlib
from pathlib import Path

import pytest

from devices import protocol as p
from devices.broker import BrokerProcess, free_port
from devices.mqtt import AsyncMqttClient, BrokerAddress
from devices.serial.contract import GatewayConfig
from devices.serial.gateway import SerialGateway
from firmware_sim.serial_node import SerialNodeSim
from tests.devices.test_serial_gateway import CHILDREN, GROUPS, Ctl, T
from tests.e2e.helpers import wait_for

pytestmark = [pytest.mark.broker, pytest.mark.pty, pytest.mark.timeout(90)]


def controller_on(port: int) -> tuple[AsyncMqttClient, Ctl]:
    holder: list[Ctl] = []
    client = AsyncMqttClient(f"ctl-{port}", BrokerAddress(port=port),
                             on_message=lambda *a: holder[0].on_message(*a),
                             on_connect=lambda: client.subscribe([f"{T.prefix}/node/+/+"]))
    holder.append(Ctl(client))
    return client, holder[0]


async def test_the_gateway_moves_to_the_next_broker_with_its_children(tmp_path: Path) -> None:
    a, b = BrokerProcess("mosquitto", free_port()), BrokerProcess("mosquitto", free_port())
    sim = SerialNodeSim([1, 2, 3])
    sim.open_pty(tmp_path / "tty")
    with a, b:
        # the ring starts at crc32("gw1") mod 2: order the list so that it starts on A
        ring = [a.port, b.port] if zlib.crc32(b"gw1") % 2 == 0 else [b.port, a.port]
        cfg = GatewayConfig(gateway_id="gw1", port=str(tmp_path / "tty"), children=dict(CHILDREN),
                            baudrate=115200, poll_s=0.2, offline_after=2, reply_timeout=0.1, attempts=4,
                            heartbeat_s=1.0, telemetry_s=1.0, min_backoff=0.05, max_backoff=0.4)
        gw = SerialGateway(cfg, [BrokerAddress(port=port) for port in ring])
        on_b, ctl = controller_on(b.port)  # the controller's side, on B only
        seed = AsyncMqttClient("seed-a", BrokerAddress(port=a.port))
        for c in (on_b, seed):
            c.start()
            await asyncio.wait_for(c.connected.wait(), 10)
        for client in (on_b, seed):  # a cluster would hold the retained configs on every node
            for node, groups in GROUPS.items():
                await client.publish(T.config(node), p.encode(p.NodeConfig(node_id=node, groups=groups)),
                                     retain=True)
        await seed.stop()
        await gw.start()
        try:
            mqtt = gw._rt.mqtt
            assert mqtt is not None
            await wait_for(lambda: mqtt.is_connected and mqtt.broker.port == a.port, 15, "gateway on A")
            assert ctl.last("gw1", "state") is None  # nothing of it on B yet
            a.stop()  # the broker it is on dies
            await wait_for(lambda: mqtt.is_connected and mqtt.broker.port == b.port, 15, "gateway on B")
            await wait_for(lambda: (ctl.last("gw1", "state") or {}).get("status") == "online", 10,
                           "birth on B")
            await wait_for(lambda: [(ctl.last(n, "state") or {}).get("status") for n in CHILDREN.values()]
                           == ["online", "online", "online", "offline"], 15, "children's states on B")
            resp = await ctl.command("gw1-a02", "c-failover-1", "ping")
            assert resp["status"] == "ok"  # subscribed again on B: a child's command is answered
        finally:
            await gw.stop()
            await on_b.stop()
            await sim.stop()
