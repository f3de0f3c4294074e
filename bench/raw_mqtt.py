"""The plain MQTT clients of the raw fan-out baselines (bench/fanout.py, bench/relay.py,
bench/cluster_fleet.py): no controller, no protocol, one topic each."""

from __future__ import annotations

import asyncio
import json
import sys
import time

from devices.mqtt import AsyncMqttClient, MessageHandler
from devices.mqtt_types import Brokers

#: the baselines' topics: the publisher's chunks, and each subscriber's one answer once it has them all
DATA_TOPIC = "bench/data"
ACK_TOPIC = "bench/ack"


def subscriber(client_id: str, broker: Brokers, topic: str, *, qos: int, on_message: MessageHandler,
               log_failures: bool = True) -> AsyncMqttClient:
    """A plain client, not started yet, that subscribes to ``topic`` on every connect (its connect
    handler awaits the broker's SUBACK)."""

    async def subscribe() -> None:
        pending = client.subscribe([topic], qos=qos)
        if pending is not None:
            await pending

    client = AsyncMqttClient(client_id, broker, on_message=on_message, on_connect=subscribe,
                             log_failures=log_failures)
    return client


async def until_told_to_stop() -> None:
    """A bench child's part: say READY, then wait for a line on stdin (the parent's ``stop``)."""
    print("READY", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)


async def raw_subscribers(brokers: Brokers, first: int, count: int, chunks: int, *, batch: int = 50,
                          connect_timeout_s: float = 300, settle_s: float = 0.0) -> None:
    """A bench child process: ``count`` plain subscribers of :data:`DATA_TOPIC` (QoS 1, clean
    session; given several brokers, each client starts on its own place of the list, as units
    do), connected ``batch`` at a time; each publishes its number on :data:`ACK_TOPIC` once it has
    every one of the ``chunks`` messages. After ``settle_s`` it says READY; told to stop, it prints
    ``SUMMARY {"got_all": n, "cpu_s": s}`` (bench/fanout.py's ``stop`` collects it)."""
    clients: list[AsyncMqttClient] = []
    have = [0] * count

    def make(i: int) -> AsyncMqttClient:
        def on_message(topic: str, payload: bytes, retained: bool) -> None:
            have[i] += 1
            if have[i] == chunks:
                clients[i].publish_nowait(ACK_TOPIC, b"%d" % (first + i), qos=1)

        return subscriber(f"raw-{first + i}", brokers, DATA_TOPIC, qos=1, on_message=on_message,
                          log_failures=False)

    clients += [make(i) for i in range(count)]
    for i in range(0, count, batch):
        for c in clients[i:i + batch]:
            c.start()
        await asyncio.wait_for(asyncio.gather(*(c.connected.wait() for c in clients[i:i + batch])),
                               connect_timeout_s)
    await asyncio.sleep(settle_s)
    await until_told_to_stop()
    print("SUMMARY " + json.dumps({"got_all": sum(h >= chunks for h in have),
                                   "cpu_s": round(time.process_time(), 2)}), flush=True)
    await asyncio.gather(*(c.stop() for c in clients))
