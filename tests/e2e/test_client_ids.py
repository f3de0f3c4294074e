"""Two controllers on one broker: each has its own MQTT client id unless told otherwise, and a
duplicate id is reported loudly instead of the two evicting each other in silence (issue 16).

After: with default ids both stay connected (one connection each); with one id configured on
both, one of them stops connecting with it (/api/health ``duplicate_client_id``,
``client_id_refused`` and ``degraded``; an ERROR names the cause and what to do), the other keeps
its connection."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import pytest

from controller.fleet.settings import MqttSettings
from devices.broker import BrokerProcess
from devices.failover import STABLE_S
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


async def test_one_id_on_two_controllers_is_reported_loudly_and_one_stops(
        tmp_path: Path, mosquitto: BrokerProcess, caplog: pytest.LogCaptureFixture) -> None:
    """The same configured id on both: the one evicted DUPLICATE_FLAPS times in a row stops
    connecting with it (ERROR, /api/health ``client_id_refused``, degraded) instead of flapping on;
    the other keeps one stable connection."""
    caplog.set_level(logging.ERROR, logger="devices.mqtt")
    same = "ward-ctl"
    async with running_controller(_settings(tmp_path, "a", mosquitto.port, same)) as (app_a, api_a), \
            running_controller(_settings(tmp_path, "b", mosquitto.port, same)) as (app_b, api_b):
        links = {"a": app_a.state.services.link.client, "b": app_b.state.services.link.client}
        apis = {"a": api_a, "b": api_b}
        await wait_for(lambda: any(c.ring.refused for c in links.values()), 60,
                       "one controller refusing the id")
        [gone] = [k for k, c in links.items() if c.ring.refused]
        [kept] = [k for k in links if k != gone]
        h = (await apis[gone].get("/api/health")).json()
        assert h["status"] == "degraded" and h["mqtt"]["client_id_refused"] is True, h
        mqtt = h["mqtt"]
        assert mqtt["duplicate_client_id"] and not mqtt["connected"] and "refused" in mqtt["last_error"], h
        await wait_for(lambda: links[kept].is_connected, 30, f"{kept} connected")
        connects = {k: c.stats.connects for k, c in links.items()}
        # a healthy connection is one that lives STABLE_S: watch one that long and a little more
        await asyncio.sleep(STABLE_S + 2)
        assert {k: c.stats.connects for k, c in links.items()} == connects  # nobody reconnected
        assert links[kept].is_connected and not links[gone].is_connected
        h = (await apis[kept].get("/api/health")).json()
        assert h["mqtt"]["connected"] and not h["mqtt"]["client_id_refused"], h
        errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
        assert any("another client is probably using this client id" in m and same in m
                   and "STOPS connecting" in m for m in errors), errors
        r = await apis[kept].post("/api/nodes", json={"id": "n1"})  # the kept one works through the broker
        assert r.status_code == 201, r.text
