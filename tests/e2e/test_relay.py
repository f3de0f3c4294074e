"""Relay through the controller: a zone is told to relay a local "radio station"; the units fetch
it themselves, and /api/nodes shows "interrupted" while the station is off the air."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import pytest

from devices.broker import BrokerProcess
from tests.conftest import make_settings, running_controller
from tests.e2e.helpers import allowing, provision, sim, wait_for, wait_online
from tests.firmware_sim.test_relay import Radio

pytestmark = [pytest.mark.broker, pytest.mark.timeout(120)]


@pytest.mark.both_databases
async def test_zone_relays_a_stream_and_shows_interruptions(mosquitto: BrokerProcess, tmp_path: Path) -> None:
    radio = Radio()
    threading.Thread(target=radio.serve_forever, daemon=True).start()
    try:
        settings = allowing(make_settings(tmp_path, mosquitto.port), radio.base)
        async with running_controller(settings) as (_, client):
            await provision(client, {"z": ["rr-1", "rr-2"]})
            nodes = [sim(n, mosquitto.port, telemetry_s=60) for n in ("rr-1", "rr-2")]
            await asyncio.gather(*(n.start() for n in nodes))
            try:
                await wait_online(client, ["rr-1", "rr-2"])
                url = f"{radio.base}/live.mp3"
                r = await client.post("/api/zones/z/commands",
                                      json={"name": "play_stream", "args": {"url": url}})
                assert r.status_code == 200, r.text
                assert {x["status"] for x in r.json()["results"]} == {"ok"}

                async def relay_states() -> dict[str, Any]:
                    rows = (await client.get("/api/nodes")).json()
                    return {n["id"]: n["telemetry"].get("relay") for n in rows}

                async def all_in(state: str) -> bool:
                    return set((await relay_states()).values()) == {state}

                await wait_for(lambda: all_in("playing"), 15, "units relay the stream")
                radio.up.clear()
                await wait_for(lambda: all_in("interrupted"), 15, "relay interrupted shown")
                radio.up.set()
                await wait_for(lambda: all_in("playing"), 40, "relay resumed")
                r = await client.post("/api/zones/z/commands", json={"name": "stop"})
                assert r.status_code == 200
                await wait_for(lambda: all_in(""), 15, "relay stopped")
                assert all(n.relay.state == "" for n in nodes)
            finally:
                await asyncio.gather(*(n.stop() for n in nodes))
    finally:
        radio.up.clear()
        radio.shutdown()
        radio.server_close()


async def test_bare_play_stream_is_refused_while_the_zone_is_on_air(mosquitto: BrokerProcess,
                                                                    tmp_path: Path) -> None:
    """play_stream bypasses the arbiter, so it is refused while anything holds the zone; the unit
    keeps what it plays. Once the zone is free it works."""
    radio = Radio()
    threading.Thread(target=radio.serve_forever, daemon=True).start()
    try:
        settings = allowing(make_settings(tmp_path, mosquitto.port), radio.base)
        async with running_controller(settings) as (_, client):
            await provision(client, {"z": ["rb-1"]})
            node = sim("rb-1", mosquitto.port, telemetry_s=60)
            await node.start()
            try:
                await wait_online(client, ["rb-1"])
                body = {"url": f"{radio.base}/live.mp3", "priority": "emergency", "target": {"zones": ["z"]}}
                r = await client.post("/api/relays", json=body)
                assert r.status_code == 201, r.text
                rid = r.json()["id"]
                await wait_for(lambda: node.relay.state == "playing", 15, "unit relays")
                other = {"name": "play_stream", "args": {"url": f"{radio.base}/other.mp3"}}
                for path in ("/api/zones/z/commands", "/api/zones/all/commands", "/api/nodes/rb-1/commands"):
                    r = await client.post(path, json=other)
                    assert r.status_code == 409 and rid in r.text and "/api/relays" in r.text, (path, r.text)
                assert node.relay.url.endswith("/live.mp3")
                assert (await client.delete(f"/api/relays/{rid}")).status_code == 200
                await wait_for(lambda: node.relay.state == "", 15, "relay stopped")
                r = await client.post("/api/zones/z/commands", json=other)
                assert r.status_code == 200 and r.json()["results"][0]["status"] == "ok", r.text
            finally:
                await node.stop()
    finally:
        radio.up.clear()
        radio.shutdown()
        radio.server_close()
