"""A controller process killed (SIGKILL) mid-relay: the units go on relaying by themselves, the
next controller picks the relay up from the database without restarting their streams, and
ends it when its time is up."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sys
from datetime import datetime
from pathlib import Path

import httpx
import pytest

from devices.broker import BrokerProcess
from tests.conftest import ADMIN, make_settings, running_controller
from tests.e2e.helpers import allowing, provision, sim, wait_for, wait_online
from tests.firmware_sim.test_relay import Radio

pytestmark = [pytest.mark.broker, pytest.mark.timeout(150)]

ROOT = Path(__file__).resolve().parents[2]


def free_tcp_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_relay_carries_on_after_the_controller_is_killed(mosquitto: BrokerProcess, tmp_path: Path,
                                                               radio: Radio) -> None:
    settings = allowing(make_settings(tmp_path, mosquitto.port), radio.base)
    async with running_controller(settings) as (_, client):
        await provision(client, {"z": ["kc-1", "kc-2"]})
    nodes = [sim(n, mosquitto.port, telemetry_s=60) for n in ("kc-1", "kc-2")]
    await asyncio.gather(*(n.start() for n in nodes))
    port = free_tcp_port()
    allowed = json.dumps([radio.base])  # the local station: 127.0.0.1 is not public
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "controller.cli", "serve", "--port", str(port), "--data-dir", str(tmp_path),
        "--mqtt-port", str(mosquitto.port), cwd=ROOT, stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL, env={**os.environ, "LOAPHUONG_ADMIN_PASSWORD": ADMIN[1],
                                                "LOAPHUONG_RELAY__ALLOWED_STATIONS": allowed})
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", auth=ADMIN, timeout=30) as remote:
            async def up() -> bool:
                try:
                    return (await remote.get("/api/health")).status_code == 200
                except httpx.TransportError:
                    return False

            await wait_for(up, 40, "the controller process to serve")
            await wait_online(remote, ["kc-1", "kc-2"])
            body = {"url": f"{radio.base}/live.mp3", "target": {"zones": ["z"]}, "duration_s": 16}
            r = await remote.post("/api/relays", json=body)
            assert r.status_code == 201, r.text
            rid = r.json()["id"]
            await wait_for(lambda: all(n.relay.state == "playing" for n in nodes), 15, "units relay")

            async def recorded_playing() -> bool:
                return bool((await remote.get(f"/api/relays/{rid}")).json()["state"] == "playing")

            await wait_for(recorded_playing, 5, "playing recorded")
        os.kill(child.pid, signal.SIGKILL)
        await asyncio.wait_for(child.wait(), 10)
        fetches = radio.requests.count("/live.mp3")
        await asyncio.sleep(1.0)
        assert all(n.relay.state == "playing" for n in nodes)  # the units carry on by themselves

        async with running_controller(settings) as (app, client):
            await wait_online(client, ["kc-1", "kc-2"])
            got = (await client.get(f"/api/relays/{rid}")).json()
            assert got["state"] == "playing" and got["restored"] == 1, got
            await asyncio.sleep(2.5)  # play_stream repeated on (re)connect: no restart of the streams
            assert radio.requests.count("/live.mp3") == fetches
            started = datetime.fromisoformat(got["started_at"])
            await wait_for(lambda: all(n.relay.state == "" for n in nodes), 25, "relay ended on time")
            got = (await client.get(f"/api/relays/{rid}")).json()
            assert (got["state"], got["reason"]) == ("ended", "finished")
            assert abs((datetime.fromisoformat(got["ended_at"]) - started).total_seconds() - 16) < 2.5
            air = app.state.services.air
            assert rid not in air.arbiter.running and rid not in air.live
    finally:
        if child.returncode is None:
            child.kill()
            await child.wait()
        await asyncio.gather(*(n.stop() for n in nodes))
