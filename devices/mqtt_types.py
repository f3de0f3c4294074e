"""The MQTT connection's types: its broker address and last-will, its counters, its errors.

Kept apart from the driver (:mod:`devices.mqtt`, which re-exports every name here) so that
settings, tests and tools can name a broker without the paho machinery.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, TypeAlias


class MqttError(Exception):
    """Base error of the MQTT link."""


class NotConnected(MqttError):
    """The client is not connected to the broker right now."""


@dataclass
class Will:
    topic: str
    payload: bytes
    qos: int = 1
    retain: bool = True


@dataclass
class LinkStats:
    bytes_out: int = 0
    msgs_out: int = 0
    bytes_in: int = 0
    msgs_in: int = 0
    handler_errors: int = 0
    connects: int = 0
    connect_failures: int = 0


@dataclass
class BrokerAddress:
    host: str = "127.0.0.1"
    port: int = 1883
    username: str | None = None
    password: str | None = None
    tls: bool = False
    ca_file: str | None = None
    keepalive: int = 30
    extra: dict[str, Any] = field(default_factory=dict)

    def __str__(self) -> str:
        return f"{'mqtts' if self.tls else 'mqtt'}://{self.host}:{self.port}"


#: One broker, or the list of a cluster's brokers a client goes round (devices/failover.py).
Brokers: TypeAlias = BrokerAddress | Sequence[BrokerAddress]


def broker_list(brokers: Brokers) -> list[BrokerAddress]:
    return [brokers] if isinstance(brokers, BrokerAddress) else list(brokers)


def fail_waiters(exc: MqttError, *waiting: dict[int, asyncio.Future[Any]]) -> None:
    """End every pending operation (publishes awaiting PUBACK, subscriptions awaiting SUBACK) with ``exc``."""
    for futs in waiting:
        for fut in futs.values():
            if not fut.done():
                fut.set_exception(exc)
                fut.exception()  # retrieved: nobody may be awaiting it any more
        futs.clear()
