"""A recorded bulletin airs through the same broadcasts, arbiter and delivery as a text one."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path

import pytest

from devices.broker import BrokerProcess
from firmware_sim.faults import Faults
from tests.conftest import make_settings, running_controller
from tests.e2e.helpers import air, provision, sim, states, wait_broadcast, wait_online
from tests.tts.test_recording import make_audio

pytestmark = [pytest.mark.broker, pytest.mark.timeout(120)]


@pytest.mark.both_databases
async def test_uploaded_recording_is_played_by_the_zone(mosquitto: BrokerProcess, tmp_path: Path) -> None:
    async with running_controller(make_settings(tmp_path / "data", mosquitto.port)) as (_, client):
        await provision(client, {"z": ["r-1", "r-2"], "other": ["r-3"]})
        nodes = {n: sim(n, mosquitto.port, Faults(time_scale=0.5)) for n in ("r-1", "r-2", "r-3")}
        await asyncio.gather(*(n.start() for n in nodes.values()))
        try:
            await wait_online(client, list(nodes))
            data = make_audio(tmp_path, "ogg", seconds=2)
            r = await client.post("/api/bulletins/recordings", files={"file": ("loa.ogg", data, "audio/ogg")})
            assert r.status_code == 201, r.text
            b = r.json()
            bid = await air(client, b["id"], {"zones": ["z"]})
            bc = await wait_broadcast(client, bid, 60)
            assert states(bc) == {"r-1": "played", "r-2": "played"}
            for n in ("r-1", "r-2"):
                assert nodes[n].played == [bid]
                assert hashlib.sha256(nodes[n].audio[bid]).hexdigest() == b["audio"]["sha256"]
            assert nodes["r-3"].played == []
        finally:
            await asyncio.gather(*(n.stop() for n in nodes.values()))
