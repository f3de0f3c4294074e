"""The paho client behind :class:`devices.mqtt.AsyncMqttClient`: MQTT 3.1.1, credentials, TLS,
last-will and flow limits (kept apart so that the driver stays one file to read)."""

from __future__ import annotations

import logging
import socket
import ssl
import struct

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from devices.mqtt_types import BrokerAddress, Will

logger = logging.getLogger(__name__)


def paho_client(client_id: str, broker: BrokerAddress, will: Will | None,
                 clean_session: bool) -> paho.Client:
    """A paho MQTT 3.1.1 client for ``broker``: credentials, TLS, last-will, flow limits."""
    c = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=clean_session,
                    protocol=paho.MQTTv311)
    if broker.username is not None:
        c.username_pw_set(broker.username, broker.password)
    if broker.tls:
        c.tls_set_context(ssl.create_default_context(cafile=broker.ca_file))
    if will is not None:
        c.will_set(will.topic, will.payload, qos=will.qos, retain=will.retain)
    c.max_inflight_messages_set(64)
    c.max_queued_messages_set(0)
    return c


def discard_outbox(c: paho.Client) -> int:
    """Drop every publish paho holds (queued, or sent and not acknowledged): after a reconnect
    paho would send them all again, even with a clean session. The number dropped."""
    with c._out_message_mutex:  # paho offers no public way to drop its outbox
        n = len(c._out_messages)
        c._out_messages.clear()
        c._inflight_messages = 0
    return n


def abort_on_close(sock: socket.socket | None) -> None:
    """Closing ``sock`` resets the connection: what sits in the kernel's send buffer is thrown
    away instead of reaching the broker once a partition heals."""
    if sock is None:
        return
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError as exc:
        logger.debug("SO_LINGER not set: %s", exc)
