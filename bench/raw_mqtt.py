"""The plain MQTT clients of the raw fan-out baselines (bench/fanout.py, bench/relay.py): no
controller, no protocol, one topic each."""

from __future__ import annotations

from devices.mqtt import AsyncMqttClient, BrokerAddress, MessageHandler


def subscriber(client_id: str, broker: BrokerAddress, topic: str, *, qos: int, on_message: MessageHandler,
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
