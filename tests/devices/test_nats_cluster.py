"""The 3-node NATS cluster of the tests (devices/broker_cluster.py) keeps what our protocol
retains when a node dies: a retained config and manifest published through one node are handed,
after that node was SIGKILLed, to new subscribers on each surviving node — on the exact topic and
on the unit's wildcard subscription (docs/deploy.md "Broker cluster")."""

from __future__ import annotations

import asyncio

import pytest

from devices.broker_cluster import NatsCluster
from devices.mqtt import AsyncMqttClient, BrokerAddress

pytestmark = [pytest.mark.broker, pytest.mark.slow, pytest.mark.timeout(180)]


async def retained(port: int, cid: str, topic: str) -> list[tuple[str, bytes]]:
    got: list[tuple[str, bytes]] = []
    c = AsyncMqttClient(cid, BrokerAddress(port=port), log_failures=False,
                        on_message=lambda t, p, r: got.append((t, p)) if r else None)
    c.start()
    try:
        await asyncio.wait_for(c.connected.wait(), 60)
        for _ in range(10):  # a subscription may be refused while JetStream elects new leaders
            fut = c.subscribe([topic])
            assert fut is not None
            if all(code < 0x80 for code in await asyncio.wait_for(fut, 30)):
                break
            await asyncio.sleep(1)
        for _ in range(50):
            if got:
                break
            await asyncio.sleep(0.1)
        return got
    finally:
        await c.stop()


async def test_retained_messages_survive_the_node_they_went_through(nats_cluster: NatsCluster) -> None:
    first, *others = nats_cluster.mqtt_ports
    pub = AsyncMqttClient("pub", BrokerAddress(port=first))
    pub.start()
    await asyncio.wait_for(pub.connected.wait(), 30)
    await pub.publish("lp/node/u1/config", b'{"v":1}', retain=True)
    await pub.publish("lp/node/u1/bcast/b1/manifest", b'{"bc":"b1"}', retain=True)
    await pub.stop()
    nats_cluster.kill(0)
    for i, port in enumerate(others):
        assert await retained(port, f"s{i}", "lp/node/u1/config") == [("lp/node/u1/config", b'{"v":1}')]
        assert await retained(port, f"w{i}", "lp/node/u1/bcast/+/+") == [
            ("lp/node/u1/bcast/b1/manifest", b'{"bc":"b1"}')]
