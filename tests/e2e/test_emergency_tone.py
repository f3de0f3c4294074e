"""An emergency to 20 simulated units, real controller and Mosquitto: every unit sounds its local
attention tone (provisioned through its retained config) as the emergency's manifest arrives, then
plays the speech once, in step; a unit whose kept tone fails its checksum sounds none, says so
(its delivery row) and still plays the speech. Read from the simulator's appended play log."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from devices.broker import BrokerProcess
from firmware_sim.faults import Faults
from firmware_sim.playlog import PlayLog, read_play_log, starts, tones
from tests.conftest import make_settings, running_controller
from tests.e2e.helpers import air, bulletin, provision, sim, states, wait_broadcast, wait_for, wait_online

pytestmark = [pytest.mark.broker, pytest.mark.timeout(300)]

BAD = "e-07"  # its kept tone has a flipped byte


@pytest.mark.both_databases
async def test_an_emergency_sounds_each_units_tone_then_plays_the_speech_once(
        mosquitto: BrokerProcess, tmp_path: Path) -> None:
    ids = [f"e-{i:02d}" for i in range(20)]
    log = tmp_path / "plays.jsonl"
    play_log = PlayLog(log)
    async with running_controller(make_settings(tmp_path, mosquitto.port)) as (_, client):
        await provision(client, {"z": ids})
        nodes = [sim(n, mosquitto.port, Faults(time_scale=0.05, tone_corrupt=n == BAD), play_log=play_log)
                 for n in ids]
        await asyncio.gather(*(n.start() for n in nodes))
        try:
            await wait_online(client, ids, timeout=60)
            await wait_for(lambda: all(n.config is not None and n.config.attention for n in nodes), 60,
                           "every unit's config with its attention tone")
            b = await bulletin(client, "Khẩn cấp: cháy chợ, đề nghị bà con tránh xa khu vực chợ.",
                               priority="emergency")
            bid = await air(client, b["id"], {"zones": ["z"]}, priority="emergency")
            bc = await wait_broadcast(client, bid, 120)
        finally:
            await asyncio.gather(*(n.stop() for n in nodes))
            play_log.close()
    assert states(bc) == {n: "played" for n in ids}
    events = read_play_log(log)
    assert tones(events) == {(n, bid): 1 for n in ids if n != BAD}  # once each; none from the bad copy
    assert starts(events) == {(n, bid): 1 for n in ids}  # the speech once each, the bad one included
    for n in ids:
        mine = [e for e in events if e.unit == n and e.bc == bid]
        kinds = [e.event for e in mine]
        assert kinds == (["start", "end"] if n == BAD else ["tone", "start", "end"]), (n, kinds)
        assert mine[-1].reason == "played"
        if n != BAD:
            assert mine[0].wall_ms <= mine[1].wall_ms  # the tone came first, before the speech
    reasons = {d["node_id"]: {h["reason"] for h in d["history"]} for d in bc["deliveries"]}
    assert "attention tone failed its checksum: speech only" in reasons[BAD]
    assert all("attention tone sounded" in reasons[n] for n in ids if n != BAD)
    origins = [e.wall_ms - e.offset_ms for e in events if e.event == "start"]
    assert max(origins) - min(origins) < 1000  # in step (generous: 2 busy cores; bench/sync.py measures)
