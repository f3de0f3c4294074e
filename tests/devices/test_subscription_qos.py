"""Units subscribe with QoS 1 to command topics only (docs/protocol.md §5 *Subscriptions*): a
clustered broker backs every QoS 1 subscription with a replicated consumer (NATS: a JetStream
consumer), so the other topics are read at QoS 0. Checked on what a real Mosquitto grants a unit
link (SUBACK codes), for its own topics and a group's."""

from __future__ import annotations

import asyncio

import pytest

from devices.broker import BrokerProcess
from devices.mqtt import BrokerAddress
from devices.topics import Topics, subscription_qos
from devices.unit_link import unit_client

pytestmark = [pytest.mark.broker, pytest.mark.timeout(60)]


def test_only_command_topics_are_qos_1() -> None:
    t = Topics()
    own = t.node_subscriptions("u-1")
    group = t.group_subscriptions("z1")
    assert {x: subscription_qos(x) for x in own + group} == {
        "lp/node/u-1/config": 0, "lp/node/u-1/cmd": 1, "lp/node/u-1/clock": 0,
        "lp/node/u-1/bcast/+/+": 0, "lp/controller/state": 0,
        "lp/group/z1/cmd": 1, "lp/group/z1/bcast/+/+": 0}


async def test_a_unit_link_is_granted_qos_1_for_commands_only(mosquitto: BrokerProcess) -> None:
    async def nothing(*_: object) -> None:
        return None

    link = unit_client("u-1", BrokerAddress(port=mosquitto.port), will=None,
                       on_message=lambda *_: None, on_connect=nothing)
    link.start()
    try:
        await asyncio.wait_for(link.connected.wait(), 20)
        topics = Topics().node_subscriptions("u-1") + Topics().group_subscriptions("z1")
        fut = link.subscribe(topics)
        assert fut is not None
        granted = await asyncio.wait_for(fut, 20)
        assert dict(zip(topics, granted, strict=True)) == {x: subscription_qos(x) for x in topics}
        assert sorted(granted) == [0, 0, 0, 0, 0, 1, 1]  # 2 of 7 cost a cluster a consumer (was 7)
        explicit = link.subscribe(["lp/node/u-1/config"], qos=1)  # an explicit QoS still wins
        assert explicit is not None and await asyncio.wait_for(explicit, 20) == [1]
    finally:
        await link.stop()
