"""Best-effort publishing for units and gateways (the simulator, the serial gateway): they
never wait on the broker; a publish that cannot be queued is dropped and counted by the caller."""
from __future__ import annotations

import logging

from devices.mqtt import AsyncMqttClient
from devices.mqtt_types import MqttError

logger = logging.getLogger(__name__)


def publish_or_drop(client: AsyncMqttClient | None, topic: str, payload: bytes, *, qos: int,
                    retain: bool = False, who: str = "") -> bool:
    """Best-effort publish for a unit or gateway: False (nothing queued) when there is no
    connected client or paho refuses; the caller counts the drop. Units never block on a
    publish: what matters is re-sent by the protocol's own rules (acks, heartbeats)."""
    if client is None or not client.is_connected:
        return False
    try:
        client.publish_nowait(topic, payload, qos=qos, retain=retain)
    except MqttError as exc:
        logger.debug("%s: publish to %s dropped: %s", who, topic, exc)
        return False
    return True
