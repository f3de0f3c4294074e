"""A unit's broker link, the same for every kind of unit: the firmware simulator
(:mod:`firmware_sim.node`), the serial gateway (:mod:`devices.serial.gateway`) and the unit agent.

docs/protocol.md §1: client id = the unit's id, clean session, the retained last-will
``offline``, and the unit's reconnect numbers (:data:`devices.failover.UNIT_BACKOFF`) going round
its list of brokers (:class:`devices.failover.BrokerRing`). What the unit does after each CONNACK
is the same whichever broker of the list it reached, because with a clean session the broker
holds nothing of it: publish the birth (retained ``online``, and a gateway its children's
retained states), then subscribe again; the broker hands it the retained config, controller state
and manifests, and the unit goes on from what it holds (audio it verified, what it finished).
"""

from __future__ import annotations

from devices.failover import UNIT_BACKOFF, Backoff
from devices.mqtt import AsyncMqttClient, ConnectHandler, MessageHandler, Will
from devices.mqtt_types import Brokers
from devices.subscribe import insist
from devices.topics import subscription_qos

__all__ = ["insist", "unit_client"]


def unit_client(unit_id: str, brokers: Brokers, *, will: Will | None,
                on_message: MessageHandler, on_connect: ConnectHandler,
                log_failures: bool = True, backoff: Backoff = UNIT_BACKOFF) -> AsyncMqttClient:
    """The unit's MQTT client (started by the caller). ``will`` None and another ``backoff`` are
    for deliberately broken simulated units only (firmware_sim.faults: the conformance kit's tests)."""
    return AsyncMqttClient(unit_id, brokers, will=will, on_message=on_message, on_connect=on_connect,
                           clean_session=True, log_failures=log_failures, subscribe_qos=subscription_qos,
                           min_backoff=backoff.first_s, max_backoff=backoff.max_s)

