"""An emergency while 30 % of the ward's units flap (issue 13, "Faults"): 10 units against a real
controller and Mosquitto, 3 of them losing power every few seconds (or their network link).

What must hold afterwards, read from the simulator's appended play log: every unit started the
emergency at most once (a flapping unit that comes back holds the verified file in flash and is
answered as finished once it played or lost power mid-way, never played again), every unit that
stayed up played it exactly once, and every delivery ended in a final state (with a reason when
it did not play) by the broadcast's expiry at the latest.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from devices.broker import BrokerProcess
from devices.mqtt import BrokerAddress
from firmware_sim.flap import FlapMode, Flapper, FlapPlan
from firmware_sim.fleet import Fleet, NodeSpec
from firmware_sim.playlog import PlayLog, double_plays, read_play_log, starts
from tests.conftest import make_settings, running_controller
from tests.e2e.helpers import air, bulletin, provision, wait_broadcast, wait_for, wait_online

logger = logging.getLogger(__name__)

pytestmark = [pytest.mark.broker, pytest.mark.timeout(300)]

UNITS = [f"fl-{i:02d}" for i in range(10)]
STORM = "Khẩn cấp: bão số 5 sắp đổ bộ, người dân không ra khỏi nhà."
VALID_S = 60  # the emergency is deliverable this long: every unit is final by then


@pytest.mark.parametrize("mode", ["power", "network"])
async def test_emergency_with_30_percent_flapping_units_plays_at_most_once_each(
        mosquitto: BrokerProcess, tmp_path: Path, mode: FlapMode) -> None:
    log_path = tmp_path / "plays.jsonl"
    log = PlayLog(log_path)
    async with running_controller(make_settings(tmp_path, mosquitto.port)) as (_, client):
        await provision(client, {"w": UNITS})
        fleet = Fleet([NodeSpec(n) for n in UNITS], BrokerAddress(port=mosquitto.port),
                      heartbeat_s=2.0, time_scale=0.5, play_log=log)
        flapper = Flapper(list(fleet.nodes.values()),
                          FlapPlan(0.3, every_s=3.0, mode=mode, down_s=1.0, seed=13))
        flapping = set(flapper.ids)
        try:
            assert await fleet.start() == len(UNITS)
            await wait_online(client, UNITS)
            storm = await bulletin(client, STORM)
            flapper.start()
            bid = await air(client, storm["id"], {"all": True}, priority="emergency", valid_for_s=VALID_S)
            bc = await wait_broadcast(client, bid, VALID_S + 60)
            flaps_during = dict(flapper.flaps)
            # go on flapping after the end: coming back must not play it again either
            await wait_for(lambda: all(flapper.flaps[n] >= flaps_during.get(n, 0) + 2 for n in flapping),
                           30, "two more flaps of each flapping unit")
        finally:
            await flapper.stop()
            await fleet.stop()
            log.close()

    events = read_play_log(log_path)
    assert double_plays(events) == {}, "a unit played the emergency twice"
    assert all(n <= 1 for n in starts(events).values()) and {e.bc for e in events} <= {bid}
    assert len(flapping) == 3 and all(flaps_during.get(n, 0) >= 1 for n in flapping)
    final = {d["node_id"]: (d["state"], d["reason"]) for d in bc["deliveries"]}
    logger.info("%s flapping %s: %s", mode, sorted(flapping), final)
    assert set(final) == set(UNITS)
    for unit in set(UNITS) - flapping:  # the units that stayed up played it, once
        assert final[unit] == ("played", ""), (unit, final[unit])
        assert starts(events)[(unit, bid)] == 1
        assert fleet.nodes[unit].played == [bid]
    for unit, (state, reason) in final.items():
        assert state == "played" or reason, f"{unit} ended {state} without a reason"
        if state == "played":
            assert starts(events)[(unit, bid)] == 1, f"{unit} reported played but never started"
