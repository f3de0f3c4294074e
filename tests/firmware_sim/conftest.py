"""A real Mosquitto for the simulator tests (one per module; each test uses its own prefix)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from devices.broker import BrokerProcess, mosquitto_path
from devices.mqtt import BrokerAddress


@pytest.fixture(scope="module")
def sim_broker() -> Iterator[BrokerAddress]:
    """Mosquitto on a free 127.0.0.1 port (``listener <port>``, ``allow_anonymous true``)."""
    if mosquitto_path() is None:
        pytest.fail("mosquitto is not installed (apt-get install mosquitto)")
    with BrokerProcess("mosquitto") as broker:
        yield BrokerAddress(host="127.0.0.1", port=broker.port)
