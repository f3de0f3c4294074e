"""Several controllers on one database: a relay is run by one of them (its owner); when the owner
stops marking it, another takes it over — exactly one — and the units relay again; the old
owner, back, does not take it back. A controller that finds its relay taken over lets go of it
without stopping the units."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import update

from controller.fleet.settings import MqttSettings
from controller.relays.models import Relay, RelayOwner
from controller.relays.settings import RelaySettings
from controller.settings import Settings
from devices.broker import BrokerProcess
from devices.messages import now_ms
from firmware_sim.node import SimNode
from tests.conftest import make_settings, running_controller
from tests.e2e.helpers import allowing, provision, sim, wait_for, wait_online
from tests.firmware_sim.test_relay import Radio

pytestmark = [pytest.mark.broker, pytest.mark.timeout(150)]

# a TTL of 2 s was outlived once by a controller's own beat on two busy cores (its rounds ran late,
# so a restarted controller rightly took the relay back): 4 s is still quick and keeps the test's point
FAST = RelaySettings(beat_s=0.5, owner_ttl_s=4.0)


def controller(tmp_path: Path, port: int, client_id: str, radio: Radio) -> Settings:
    return allowing(make_settings(tmp_path, port).model_copy(update={
        "mqtt": MqttSettings(port=port, client_id=client_id),  # type: ignore[call-arg]
        "relay": FAST}), radio.base)


async def relay(client: httpx.AsyncClient, rid: str) -> dict[str, Any]:
    r = await client.get(f"/api/relays/{rid}")
    assert r.status_code == 200, r.text
    return dict(r.json())


def relaying(nodes: list[SimNode]) -> bool:
    return all(n.relay.state == "playing" for n in nodes)


async def test_a_standby_controller_takes_a_relay_over(mosquitto: BrokerProcess, tmp_path: Path,
                                                      radio: Radio) -> None:
    a = controller(tmp_path, mosquitto.port, "ctl-a", radio)
    b = controller(tmp_path, mosquitto.port, "ctl-b", radio)
    async with running_controller(a) as (_, ca):
        await provision(ca, {"z": ["fo-1", "fo-2"]})
    nodes = [sim(n, mosquitto.port, telemetry_s=60) for n in ("fo-1", "fo-2")]
    await asyncio.gather(*(n.start() for n in nodes))
    try:
        async with running_controller(b) as (app_b, cb):
            async with running_controller(a) as (_, ca):
                await wait_online(ca, ["fo-1", "fo-2"])
                body = {"url": f"{radio.base}/live.mp3", "target": {"zones": ["z"]}, "duration_s": 40}
                r = await ca.post("/api/relays", json=body)
                assert r.status_code == 201, r.text
                rid = r.json()["id"]
                await wait_for(lambda: relaying(nodes), 15, "units relay (ctl-a)")
                await asyncio.sleep(3 * FAST.owner_ttl_s)  # ctl-a keeps marking it: ctl-b leaves it alone
                got = await relay(cb, rid)
                assert got["owner"] == "ctl-a" and rid not in app_b.state.services.relays.sessions
            # ctl-a is gone (its shutdown stopped the units); ctl-b claims the relay after the TTL
            await wait_for(lambda: relaying(nodes), 20, "units relay again (ctl-b took over)")
            got = await relay(cb, rid)
            assert (got["owner"], got["state"], got["taken_over"]) == ("ctl-b", "playing", 1)
            async with running_controller(a) as (app_a, ca):  # ctl-a is back: it does not take it back
                await asyncio.sleep(3 * FAST.owner_ttl_s)
                assert rid not in app_a.state.services.relays.sessions
                assert (await relay(ca, rid))["owner"] == "ctl-b"
                assert relaying(nodes)
                r = await cb.delete(f"/api/relays/{rid}")
                assert r.status_code == 200 and r.json()["state"] == "ended"
                await wait_for(lambda: all(n.relay.state == "" for n in nodes), 15, "units stop")

                async def ended_in_db() -> bool:
                    return bool((await relay(ca, rid))["state"] == "ended")

                await wait_for(ended_in_db, 5, "the end recorded")
                await asyncio.sleep(3 * FAST.owner_ttl_s)  # an ended relay is nobody's to take over
                assert rid not in app_a.state.services.relays.sessions
                assert all(n.relay.state == "" for n in nodes)
    finally:
        await asyncio.gather(*(n.stop() for n in nodes))


async def test_a_controller_whose_relay_was_taken_over_lets_go(mosquitto: BrokerProcess, tmp_path: Path,
                                                              radio: Radio) -> None:
    a = controller(tmp_path, mosquitto.port, "ctl-a", radio)
    async with running_controller(a) as (app, client):
        await provision(client, {"z": ["fl-1"]})
        node = sim("fl-1", mosquitto.port, telemetry_s=60)
        await node.start()
        try:
            await wait_online(client, ["fl-1"])
            body = {"url": f"{radio.base}/live.mp3", "target": {"zones": ["z"]}}
            r = await client.post("/api/relays", json=body)
            assert r.status_code == 201, r.text
            rid = r.json()["id"]
            await wait_for(lambda: node.relay.state == "playing", 15, "unit relays")
            hub = app.state.services.relays
            # as if another controller had claimed it, and beat for the next minute: else ctl-a,
            # its beat not seen for the TTL, rightly takes it back (seen on a busy machine)
            with app.state.services.db.session() as s:
                s.execute(update(RelayOwner).where(RelayOwner.relay_id == rid)  # type: ignore[arg-type]
                          .values(holder="ctl-x", expires_at=now_ms() + 60_000))
                s.execute(update(Relay).where(Relay.id == rid).values(owner="ctl-x"))  # type: ignore[arg-type]
                s.commit()
            await wait_for(lambda: rid not in hub.sessions, 5, "ctl-a lets go of the relay")
            air = app.state.services.air
            assert rid not in air.arbiter.running and rid not in air.live
            await asyncio.sleep(1.0)
            assert node.relay.state == "playing"  # the units were not told to stop: ctl-x runs them now
            got = await relay(client, rid)
            assert got["owner"] == "ctl-x" and got["state"] == "playing"
        finally:
            await node.stop()
