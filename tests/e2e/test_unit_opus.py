"""A ward whose speech settings choose ``opus``: the controller renders a bulletin as Ogg Opus and
airs it over Mosquitto to a real unit agent (``loaphuong unit``'s UnitAgent) on a PulseAudio null
sink. The unit reports it played, and what came out of the sink is the file the controller made:
its duration, its shape (against ffmpeg's decode of the file downloaded from the API), started on
the instant the unit planned."""

from __future__ import annotations

import array
import asyncio
import audioop
from collections.abc import Iterator
from pathlib import Path

import pytest

from devices.broker import BrokerProcess
from firmware_sim.unit.agent import UnitAgent
from firmware_sim.unit.pulse import PulseOutput
from firmware_sim.unit.state import AudioSettings, UnitConfig
from tests.conftest import make_settings, running_controller
from tests.e2e.helpers import air, bulletin, provision, states, wait_broadcast, wait_online
from tests.firmware_sim.unit.sound import (
    RATE,
    PulseServer,
    Recorder,
    correlation,
    envelope,
    ffmpeg_decode,
    loud_span_ms,
)

pytestmark = [pytest.mark.broker, pytest.mark.timeout(180)]

TEXT = "Thông báo: sáng thứ bảy phường tổ chức tiêm chủng cho trẻ em tại nhà văn hóa tổ dân phố ba."


@pytest.fixture
def pulse() -> Iterator[PulseServer]:
    with PulseServer(("lp_opus",)) as server:
        yield server


async def test_an_opus_ward_is_heard_from_a_real_unit(mosquitto: BrokerProcess, pulse: PulseServer,
                                                      tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "controller", mosquitto.port)
    settings = settings.model_copy(update={"tts": settings.tts.model_copy(update={"codec": "opus"})})
    async with running_controller(settings) as (_, client):
        await provision(client, {"z": ["opus-1"]})
        cfg = UnitConfig(node_id="opus-1", brokers=[f"127.0.0.1:{mosquitto.port}"], heartbeat_s=1.0,
                         audio=AudioSettings(output="pulse", server=pulse.server, sink="lp_opus",
                                             mixer="software"))
        agent = UnitAgent(tmp_path / "unit", cfg)
        await agent.start(wait=True)
        try:
            await wait_online(client, ["opus-1"])
            b = await bulletin(client, TEXT)
            assert b["audio"]["codec"] == "opus", b["audio"]
            r = await client.get(f"/api/bulletins/{b['id']}/audio")
            assert r.status_code == 200 and r.content[:4] == b"OggS", r.headers
            with Recorder(pulse.server, "lp_opus") as rec:
                bid = await air(client, b["id"], {"zones": ["z"]})
                bc = await wait_broadcast(client, bid, 60)
                await asyncio.sleep(0.3)  # the recorder's last blocks (the tail of the bulletin)
            assert states(bc) == {"opus-1": "played"}, bc["deliveries"]
            volume = agent.node.player.volume
        finally:
            await agent.stop("test over")
    assert isinstance(agent.output, PulseOutput)
    (_bc, planned), = agent.output.starts
    ref = ffmpeg_decode(r.content, RATE)
    ref = array.array("h", audioop.mul(ref.tobytes(), 2, volume / 100))
    onset = rec.onset()
    assert onset is not None, "nothing came out of the sink"
    index, wall = onset
    lead_in_ms = next(i for i, v in enumerate(ref) if abs(v) > 1500) * 1000 / RATE
    error_ms = (wall - planned) * 1000 - lead_in_ms
    assert abs(error_ms) <= 50, f"the sound started {error_ms:+.1f} ms from the unit's planned instant"
    got = rec.samples()[index:]
    assert abs(loud_span_ms(got, RATE) - loud_span_ms(ref, RATE)) <= 40, "not the bulletin's duration"
    start = int(lead_in_ms * RATE / 1000)
    c = correlation(envelope(got, RATE), envelope(ref[start:], RATE))
    assert c >= 0.9, f"what came out does not match the controller's file (envelope correlation {c:.2f})"
