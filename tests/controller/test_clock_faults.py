"""A unit whose clock is 20 s off before its first clock-sync sample (issue 13, D4), with a real
controller and Mosquitto: ``sync_time`` (and ``ping``) reach it whatever its clock says, it syncs,
then plays a broadcast in step with a healthy unit, once."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from devices.broker import BrokerProcess
from firmware_sim.faults import Faults
from firmware_sim.playlog import PlayLog, read_play_log, starts
from tests.conftest import make_settings, running_controller
from tests.controller.command_helpers import Ctl, start
from tests.e2e.helpers import air, bulletin, provision, sim, wait_broadcast, wait_for, wait_online

pytestmark = [pytest.mark.broker, pytest.mark.timeout(120)]

#: Far more than any sync error, far less than the clock error: "in step" versus 20 s apart.
IN_STEP_MS = 1000


@pytest_asyncio.fixture
async def ctl(mosquitto: BrokerProcess, tmp_path: Path) -> AsyncIterator[Ctl]:
    async with running_controller(make_settings(tmp_path, mosquitto.port)) as (app, client):
        yield app, client


async def command(client: object, node_id: str, name: str) -> dict[str, object]:
    r = await client.post(f"/api/nodes/{node_id}/commands", json={"name": name, "args": {}})  # type: ignore[attr-defined]
    assert r.status_code == 200, r.text
    [res] = r.json()["results"]
    return dict(res)


@pytest.mark.parametrize("clock_off_ms", [20_000, -20_000], ids=["fast", "slow"])
async def test_unit_20s_off_before_its_first_sync_syncs_then_plays_in_step_once(
        ctl: Ctl, mosquitto: BrokerProcess, tmp_path: Path, clock_off_ms: int) -> None:
    _, client = ctl
    await provision(client, {"z": ["ref-1", "off-1"]})
    log_path = tmp_path / "plays.jsonl"
    log = PlayLog(log_path)
    ref = sim("ref-1", mosquitto.port, time_scale=1.0, play_log=log)
    # no clock sync of its own (no burst at connect): it has no sample until it is told to sync,
    # so the commands that reach it are judged on a clock 20 s off
    off = sim("off-1", mosquitto.port, Faults(clock_offset_ms=clock_off_ms, no_clock_sync=True),
              time_scale=1.0, play_log=log)
    await start([ref, off])
    try:
        await wait_online(client, ["ref-1", "off-1"])
        assert off.sync.offset_ms is None
        ping = await command(client, "off-1", "ping")
        assert ping["status"] == "ok", ping  # D4: a unit 20 s fast timed out here
        res = await command(client, "off-1", "sync_time")
        assert res["status"] == "ok", res
        # the burst it started: offset controller − unit ≈ −clock_off_ms
        await wait_for(lambda: off.sync.offset_ms is not None
                       and abs(off.sync.offset_ms + clock_off_ms) < IN_STEP_MS / 4, 30, "off-1 synced")

        b = await bulletin(client, "Kiểm tra loa: hai cụm loa phát cùng lúc.")
        bid = await air(client, b["id"], {"zones": ["z"]})
        done = await wait_broadcast(client, bid, 90)
    finally:
        await off.stop()
        await ref.stop()
        log.close()

    assert {d["node_id"]: d["state"] for d in done["deliveries"]} == {"ref-1": "played", "off-1": "played"}
    assert starts(read_play_log(log_path)) == {("ref-1", bid): 1, ("off-1", bid): 1}  # once each
    # the instant each unit's audio began (real clock): where it started less how far into it
    origin = {n.node_id: n.player.start_times[bid][0] - n.player.start_times[bid][1] for n in (ref, off)}
    assert abs(origin["off-1"] - origin["ref-1"]) < IN_STEP_MS, origin
