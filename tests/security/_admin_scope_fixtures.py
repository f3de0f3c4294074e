"""A ward as deployed (:mod:`tests.security.ward`: Mosquitto run from the files ``loaphuong
mqtt-config`` writes, the controller logged in with the account it generated, the app over real
HTTP), raw MQTT clients that log in with a unit's credentials (an attacker holding them runs any
firmware it likes), and the broker files regenerated as an admin would."""

from __future__ import annotations

import asyncio
import signal
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from devices.mqtt import AsyncMqttClient, BrokerAddress
from tests.conftest import make_settings
from tests.e2e.helpers import wait_for
from tests.e2e.serve import serving
from tests.security.ward import Broker, generated_broker, mqtt_config, on_broker, org_units


@dataclass
class Spy:
    """A raw MQTT client with some unit's (or anyone's) credentials, recording what it gets."""

    client: AsyncMqttClient
    got: list[tuple[str, bytes]] = field(default_factory=list)

    def topics(self) -> set[str]:
        return {t for t, _ in self.got}

    def refused(self) -> bool:
        """The broker answered CONNACK with a refusal (not: unreachable), at least twice."""
        c = self.client
        return not c.is_connected and c.stats.connect_failures >= 2 and "refused" in c.last_error

    async def sub(self, topics: list[str]) -> None:
        fut = self.client.subscribe(topics)
        assert fut is not None
        await asyncio.wait_for(fut, 5)


@dataclass
class Ward:
    broker: Broker
    data: Path
    url: str = ""
    app: Any = None
    spies: list[Spy] = field(default_factory=list)
    clients: list[httpx.AsyncClient] = field(default_factory=list)

    @property
    def dir(self) -> Path:  # the mqtt-config output (passwd, acl, mosquitto.conf)
        return self.broker.out

    @property
    def port(self) -> int:
        return self.broker.port

    async def regenerate(self) -> None:
        """Run ``loaphuong mqtt-config`` again and SIGHUP the broker (as the docs say)."""
        rc = await asyncio.to_thread(mqtt_config, self.dir, self.data, self.port)
        assert rc == 0, "loaphuong mqtt-config failed"
        self.broker.proc.send_signal(signal.SIGHUP)

    def http(self, user: str, password: str) -> httpx.AsyncClient:
        c = httpx.AsyncClient(base_url=self.url, auth=(user, password), timeout=60)
        self.clients.append(c)
        return c

    def spy(self, user: str, password: str) -> Spy:
        peer = Spy(AsyncMqttClient(user, BrokerAddress(port=self.port, username=user, password=password),
                                   log_failures=False, min_backoff=0.2, max_backoff=0.5))
        peer.client._on_message = lambda t, pl, r: peer.got.append((t, pl))  # type: ignore[method-assign]
        self.spies.append(peer)
        peer.client.start()
        return peer

    async def accepted(self, user: str, password: str, timeout: float = 15) -> Spy:
        """A spy once the broker lets it in (after a reload the next retry succeeds)."""
        peer = self.spy(user, password)
        await wait_for(lambda: peer.client.is_connected, timeout, f"{user} accepted by the broker")
        return peer


@asynccontextmanager
async def secure_ward() -> AsyncIterator[Ward]:
    """Mosquitto with the generated config + the controller with its generated account."""
    with tempfile.TemporaryDirectory(prefix="lp-scope-") as data, generated_broker(Path(data)) as broker:
        ward = Ward(broker, Path(data))
        async with serving(on_broker(make_settings(ward.data, broker.port), broker)) as (app, addr):
            ward.url, ward.app = f"http://{addr}", app
            link = app.state.services.link
            await wait_for(lambda: link.connected, 15, "the controller on the secure broker")
            try:
                yield ward
            finally:
                await asyncio.gather(*(p.client.stop() for p in ward.spies))
                await asyncio.gather(*(c.aclose() for c in ward.clients))


async def org_tree(admin: httpx.AsyncClient) -> None:
    """Province ``hn`` with wards ``wa`` and ``wb``; zone ``za`` / ``zb`` in each."""
    await org_units(admin)
    for zone, org in (("za", "wa"), ("zb", "wb")):
        r = await admin.post("/api/zones", json={"id": zone, "name": f"Tổ {zone}", "org_unit_id": org})
        assert r.status_code == 201, r.text


async def add_unit(admin: httpx.AsyncClient, node_id: str, zones: list[str]) -> str:
    """Provision a unit; returns its broker password (shown once)."""
    r = await admin.post("/api/nodes", json={"id": node_id, "zones": zones, "name": f"Loa {node_id}"})
    assert r.status_code == 201, r.text
    return str(r.json()["mqtt"]["password"])


async def add_user(admin: httpx.AsyncClient, name: str, role: str, org: str | None) -> tuple[int, str]:
    r = await admin.post("/api/users", json={"username": name, "role": role, "org_unit_id": org})
    assert r.status_code == 201, r.text
    return int(r.json()["id"]), str(r.json()["password"])
