"""Two controllers on one broker: each has its own MQTT client id unless told otherwise, and a
duplicate id is reported loudly instead of the two evicting each other in silence (issue 16).

After: with default ids both stay connected (one connection each); with one id configured on
both, /api/health says ``duplicate_client_id`` and ``degraded``, and an ERROR names the cause."""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from typing import Any

import pytest

from controller.fleet.settings import MqttSettings
from devices.broker import BrokerProcess
from tests.conftest import make_settings, running_controller
from tests.e2e.helpers import wait_for

pytestmark = [pytest.mark.broker, pytest.mark.timeout(120)]


def _settings(tmp_path: Path, name: str, port: int, client_id: str = "") -> Any:
    (tmp_path / name).mkdir()
    base = make_settings(tmp_path / name, port)
    return base.model_copy(update={"mqtt": MqttSettings(port=port, client_id=client_id)})  # type: ignore[call-arg]


async def test_default_ids_differ_and_neither_controller_is_evicted(tmp_path: Path,
                                                                    mosquitto: BrokerProcess) -> None:
    async with running_controller(_settings(tmp_path, "a", mosquitto.port)) as (app_a, api_a), \
            running_controller(_settings(tmp_path, "b", mosquitto.port)) as (app_b, api_b):
        a, b = app_a.state.services.link, app_b.state.services.link
        assert a.client_id != b.client_id and a.client_id.startswith("loaphuong-controller-")
        await wait_for(lambda: a.connected and b.connected, 30, "both controllers connected")
        # a round trip through the broker after both connected: an eviction would have happened by now
        r = await api_a.post("/api/nodes", json={"id": "n1"})
        assert r.status_code == 201, r.text
        assert a.client.stats.connects == 1 and b.client.stats.connects == 1
        for api in (api_a, api_b):
            mqtt = (await api.get("/api/health")).json()["mqtt"]
            assert mqtt["connected"] and not mqtt["duplicate_client_id"]


async def test_one_id_on_two_controllers_is_reported_loudly(tmp_path: Path, mosquitto: BrokerProcess,
                                                            caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR, logger="devices.mqtt")
    same = "ward-ctl"
    async with running_controller(_settings(tmp_path, "a", mosquitto.port, same)) as (_, api_a), \
            running_controller(_settings(tmp_path, "b", mosquitto.port, same)) as (_, api_b):

        async def reported() -> bool:
            for api in (api_a, api_b):
                h = (await api.get("/api/health")).json()
                if h["mqtt"]["duplicate_client_id"] and h["status"] == "degraded":
                    return True
            return False

        deadline = time.monotonic() + 60
        while not await reported():
            assert time.monotonic() < deadline, "no controller reported the duplicate client id within 60 s"
            await asyncio.sleep(0.2)
        errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
        assert any("another client is probably using this client id" in m and same in m for m in errors)
