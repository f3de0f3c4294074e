"""The asyncio paho driver against a real Mosquitto: reconnects, errors, scale past select()."""

from __future__ import annotations

import asyncio

import pytest

from devices.broker import BrokerProcess, free_port
from devices.mqtt import AsyncMqttClient, BrokerAddress, NotConnected
from tests.e2e.helpers import wait_for

pytestmark = [pytest.mark.broker, pytest.mark.timeout(120)]


#: client id → the SUBACK futures of its subscriptions, one per connection (see :func:`subscribed`)
SUBACKS: dict[str, list[asyncio.Future[list[int]]]] = {}


def client(cid: str, port: int, got: list[tuple[str, bytes]] | None = None,
           topics: tuple[str, ...] = ()) -> AsyncMqttClient:
    holder: list[AsyncMqttClient] = []
    SUBACKS[cid] = []

    def on_message(topic: str, payload: bytes, retained: bool) -> None:
        if payload == b"boom":
            raise RuntimeError("handler bug")
        if got is not None:
            got.append((topic, payload))

    def subscribe() -> None:
        fut = holder[0].subscribe(list(topics))
        if fut is not None:
            SUBACKS[cid].append(fut)

    c = AsyncMqttClient(cid, BrokerAddress(port=port), on_message=on_message, min_backoff=0.2, max_backoff=1,
                        on_connect=subscribe)
    holder.append(c)
    return c


async def subscribed(c: AsyncMqttClient, connections: int = 1) -> None:
    """Wait for the broker's SUBACK of ``c``'s subscription on its ``connections``-th connection."""
    await wait_for(lambda: len(SUBACKS[c.client_id]) >= connections, 15, f"{c.client_id} subscribing")
    await asyncio.wait_for(SUBACKS[c.client_id][connections - 1], 15)


async def test_reconnects_after_broker_restart_and_resubscribes() -> None:
    port = free_port()
    got: list[tuple[str, bytes]] = []
    with BrokerProcess("mosquitto", port) as broker:
        sub, pub = client("sub", port, got, ("t/#",)), client("pub", port)
        sub.start()
        pub.start()
        try:
            await asyncio.gather(sub.connected.wait(), pub.connected.wait())
            await subscribed(sub)
            await pub.publish("t/1", b"before")
            await wait_for(lambda: got == [("t/1", b"before")], 5, "first message")
            broker.stop()
            await wait_for(lambda: not sub.is_connected and not pub.is_connected, 10, "disconnect noticed")
            with pytest.raises(NotConnected):
                await pub.publish("t/1", b"while down")
            broker.start()
            await asyncio.wait_for(asyncio.gather(sub.connected.wait(), pub.connected.wait()), 15)
            await subscribed(sub, connections=2)
            await pub.publish("t/2", b"after")
            await wait_for(lambda: got[-1:] == [("t/2", b"after")], 5, "message after restart")
            assert sub.stats.connects == 2 and b"while down" not in [p for _, p in got]
        finally:
            await sub.stop()
            await pub.stop()


async def test_failing_handler_is_counted_and_link_survives(mosquitto: BrokerProcess) -> None:
    got: list[tuple[str, bytes]] = []
    sub, pub = client("sub2", mosquitto.port, got, ("x",)), client("pub2", mosquitto.port)
    sub.start()
    pub.start()
    try:
        await asyncio.gather(sub.connected.wait(), pub.connected.wait())
        await subscribed(sub)
        await pub.publish("x", b"boom")
        await pub.publish("x", b"fine")
        await wait_for(lambda: got == [("x", b"fine")], 5, "message after a failing handler")
        assert sub.stats.handler_errors == 1 and sub.is_connected
    finally:
        await sub.stop()
        await pub.stop()


async def test_unreachable_broker_is_retried_with_backoff() -> None:
    c = client("lonely", free_port())
    c.start()
    await wait_for(lambda: c.stats.connect_failures >= 2, 15, "two refused connection attempts")
    assert not c.is_connected
    assert "refused" in c.last_error.lower()
    await c.stop()


@pytest.mark.slow
async def test_more_clients_than_select_allows_in_one_loop(mosquitto: BrokerProcess) -> None:
    """paho's own loop uses select() and fails past 1024 descriptors; our driver must not."""
    n = 1100
    got: list[tuple[str, bytes]] = []
    subs = [client(f"m{i}", mosquitto.port, got, ("all",)) for i in range(n)]
    for i in range(0, n, 100):
        for c in subs[i:i + 100]:
            c.start()
        await asyncio.gather(*(c.connected.wait() for c in subs[i:i + 100]))
    pub = client("m-pub", mosquitto.port)
    pub.start()
    try:
        await pub.connected.wait()
        await asyncio.gather(*(subscribed(c) for c in subs))
        max_fd = max(c._sock.fileno() for c in subs if c._sock is not None)
        assert max_fd > 1024
        await pub.publish("all", b"x" * 1000)
        await wait_for(lambda: len(got) == n, 30, "every client got the message")
    finally:
        await asyncio.gather(*(c.stop() for c in [*subs, pub]))
