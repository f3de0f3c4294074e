"""Lost commands and broker outages around the start instant (issue 13, "Truth"): a real controller,
a real Mosquitto and simulated units. The controller reconciles (controller/airing/reconcile.py):
a unit whose reports disagree with what it was told is asked again.

What must hold after each, read from the simulator's appended play log and the API: every unit
starts each broadcast at most once, and every delivery ends in a final state (with a reason when
it did not play) — here every unit plays, as each fault leaves it time to.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from devices.broker import BrokerProcess
from firmware_sim.faults import Faults
from firmware_sim.node import SimNode
from firmware_sim.playlog import PlayEvent, PlayLog, double_plays, read_play_log, starts
from tests.conftest import make_settings, running_controller
from tests.e2e.helpers import (
    TEXT,
    air,
    bulletin,
    provision,
    sim,
    states,
    wait_broadcast,
    wait_for,
    wait_online,
)

logger = logging.getLogger(__name__)

pytestmark = [pytest.mark.broker, pytest.mark.timeout(120)]

LONG = " ".join([TEXT] * 5)  # about 20 s of speech: a unit asked again still has some to join
SCALE = 0.5  # the units play at twice the speed (their offsets stay in real milliseconds)


@dataclass
class Ward:
    app: Any
    client: httpx.AsyncClient
    nodes: dict[str, SimNode]
    log_path: Path

    def events(self) -> list[PlayEvent]:
        return read_play_log(self.log_path)

    def asked(self, kind: str) -> int:
        """How often the controller's reconcile asked a unit again (``play``, ``stop``, ...)."""
        return int(self.app.state.services.delivery.reconcile.asked.get(kind, 0))


@asynccontextmanager
async def ward(broker: BrokerProcess, tmp_path: Path, zones: dict[str, list[str]],
               faults: dict[str, Faults] | None = None) -> AsyncIterator[Ward]:
    log_path = tmp_path / "plays.jsonl"
    log = PlayLog(log_path)
    settings = make_settings(tmp_path, broker.port, sweep_s=0.5)
    async with running_controller(settings) as (app, client):
        await provision(client, zones)
        ids = [n for members in zones.values() for n in members]
        nodes = {n: sim(n, broker.port, (faults or {}).get(n, Faults(time_scale=SCALE)), heartbeat_s=2.0,
                        play_log=log) for n in ids}
        await asyncio.gather(*(n.start() for n in nodes.values()))
        try:
            await wait_online(client, ids)
            yield Ward(app, client, nodes, log_path)
        finally:
            await asyncio.gather(*(n.stop() for n in nodes.values()))
            log.close()


def at_iso(seconds_ahead: float) -> tuple[str, float]:
    """An ``air_at`` this far ahead, and its instant (epoch seconds)."""
    t = time.time() + seconds_ahead
    return datetime.fromtimestamp(t, UTC).isoformat(), t


async def all_verified(w: Ward, bid: str, units: list[str], timeout: float = 30) -> None:
    async def ok() -> bool:
        got = states((await w.client.get(f"/api/broadcasts/{bid}")).json())
        return all(got.get(n) == "verified" for n in units)

    await wait_for(ok, timeout, f"{units} verified")


def played_once_each(w: Ward, bc: dict[str, Any], units: list[str]) -> list[PlayEvent]:
    """Every unit played ``bc`` and started it exactly once; its start events."""
    assert states(bc) == {n: "played" for n in units}, states(bc)
    events = w.events()
    assert double_plays(events) == {}
    assert {n: starts(events)[(n, bc["id"])] for n in units} == {n: 1 for n in units}
    return [e for e in events if e.bc == bc["id"] and e.event == "start"]


@pytest.mark.both_databases
async def test_a_lost_play_is_asked_again_and_the_unit_joins_in_step(mosquitto: BrokerProcess,
                                                                     tmp_path: Path) -> None:
    units = ["lp-1", "lp-2", "lp-3"]
    faults = {"lp-2": Faults(lose_commands={"play": 1}, time_scale=SCALE)}
    async with ward(mosquitto, tmp_path, {"z": units}, faults) as w:
        b = await bulletin(w.client, LONG)
        bid = await air(w.client, b["id"], {"zones": ["z"]}, valid_for_s=60)
        bc = await wait_broadcast(w.client, bid, 60)
        assert w.nodes["lp-2"].commands.lost["play"] == 1 and w.asked("play") >= 1
    first = {e.unit: e for e in played_once_each(w, bc, units)}
    assert first["lp-2"].offset_ms >= 2500  # asked ~3 s after the start: it joined mid-way, in step


@pytest.mark.both_databases
async def test_a_lost_stop_is_sent_again_and_recorded_preempted(mosquitto: BrokerProcess,
                                                                 tmp_path: Path) -> None:
    """An emergency in zone z pre-empts a normal broadcast of zones z and y (policy drop); y's unit
    loses the stop and plays on until the controller stops it again."""
    faults = {"st-y": Faults(lose_commands={"stop": 1}, time_scale=SCALE)}
    async with ward(mosquitto, tmp_path, {"z": ["st-z"], "y": ["st-y"]}, faults) as w:
        b = await bulletin(w.client, LONG)
        normal = await air(w.client, b["id"], {"zones": ["z", "y"]}, valid_for_s=60)

        async def both_playing() -> bool:
            got = states((await w.client.get(f"/api/broadcasts/{normal}")).json())
            return got == {"st-z": "playing", "st-y": "playing"}

        await wait_for(both_playing, 30, "the normal broadcast playing on both units")
        storm = await air(w.client, b["id"], {"zones": ["z"]}, priority="emergency", valid_for_s=60)
        bc = await wait_broadcast(w.client, normal, 40)
        final = {d["node_id"]: (d["state"], d["reason"]) for d in bc["deliveries"]}
        assert final == {"st-z": ("failed", "preempted"), "st-y": ("failed", "preempted")}
        assert w.nodes["st-y"].commands.lost["stop"] == 1 and w.asked("stop") >= 1
        em = await wait_broadcast(w.client, storm, 40)
        assert states(em) == {"st-z": "played"}
    events = w.events()
    assert double_plays(events) == {}
    ends = {e.unit: e.reason for e in events if e.bc == normal and e.event == "end"}
    assert ends == {"st-z": "preempted", "st-y": "preempted"}  # y stopped too, by the second stop


async def test_a_duplicated_play_never_plays_twice(mosquitto: BrokerProcess, tmp_path: Path) -> None:
    """du-2's acks and answers come 4 s late, past the reconcile margin (3 s): the controller asks
    it again while it already plays; the unit answers ``already`` and starts nothing."""
    units = ["du-1", "du-2"]
    faults = {"du-2": Faults(ack_delay_s=4.0, time_scale=SCALE)}
    async with ward(mosquitto, tmp_path, {"z": units}, faults) as w:
        b = await bulletin(w.client, LONG)
        bid = await air(w.client, b["id"], {"zones": ["z"]}, valid_for_s=60)
        bc = await wait_broadcast(w.client, bid, 60)
        assert w.asked("play") >= 1
    played_once_each(w, bc, units)


async def test_a_unit_rebooting_between_verified_and_its_start_plays_once(mosquitto: BrokerProcess,
                                                                          tmp_path: Path) -> None:
    units = ["rb-1", "rb-2"]
    async with ward(mosquitto, tmp_path, {"z": units}) as w:
        b = await bulletin(w.client, LONG)
        when, start = at_iso(8)
        bid = await air(w.client, b["id"], {"zones": ["z"]}, air_at=when, valid_for_s=60)
        await all_verified(w, bid, units)
        await w.nodes["rb-2"].kill()  # power lost before the start instant: it misses the play
        await asyncio.sleep(max(0.0, start + 1 - time.time()))
        await w.nodes["rb-2"].start()  # boots with the verified file kept in flash
        bc = await wait_broadcast(w.client, bid, 60)
    first = {e.unit: e for e in played_once_each(w, bc, units)}
    assert first["rb-2"].offset_ms > 0 and first["rb-2"].boot > first["rb-1"].boot  # rebooted; mid-way


async def test_the_broker_restarting_between_the_last_chunk_and_the_play(mosquitto: BrokerProcess,
                                                                         tmp_path: Path) -> None:
    units = ["br-1", "br-2", "br-3"]
    async with ward(mosquitto, tmp_path, {"z": units}) as w:
        b = await bulletin(w.client, LONG)
        when, _ = at_iso(8)
        bid = await air(w.client, b["id"], {"zones": ["z"]}, air_at=when, valid_for_s=60)
        await all_verified(w, bid, units)
        await asyncio.to_thread(mosquitto.restart, 1.0)  # retained messages lost with it
        bc = await wait_broadcast(w.client, bid, 60)
    played_once_each(w, bc, units)


async def test_the_broker_down_around_the_start_instant(mosquitto: BrokerProcess, tmp_path: Path) -> None:
    """Down from 2 s before the start instant to 3 s after it (5 s): the play goes once the link is
    back, naming the instant that passed, so every unit joins in step further into the audio."""
    units = ["bd-1", "bd-2", "bd-3"]
    async with ward(mosquitto, tmp_path, {"z": units}) as w:
        b = await bulletin(w.client, LONG)
        when, start = at_iso(8)
        bid = await air(w.client, b["id"], {"zones": ["z"]}, air_at=when, valid_for_s=60)
        await all_verified(w, bid, units)
        await asyncio.sleep(max(0.0, start - 2 - time.time()))
        await asyncio.to_thread(mosquitto.stop)
        await asyncio.sleep(5)
        await asyncio.to_thread(mosquitto.start)
        bc = await wait_broadcast(w.client, bid, 60)
    first = played_once_each(w, bc, units)
    assert all(e.offset_ms >= 2000 for e in first), [(e.unit, e.offset_ms) for e in first]


async def test_an_emergency_while_a_tenth_of_the_units_are_mid_download(mosquitto: BrokerProcess,
                                                                       tmp_path: Path) -> None:
    """Ten units; one loses most chunks of the normal bulletin (it is still repairing when the
    emergency comes). Every unit plays the emergency once; every delivery of both ends final, with
    a reason when it did not play; no unit starts either broadcast twice."""
    units = [f"md-{i}" for i in range(10)]
    faults = {"md-0": Faults(drop_chunks=set(range(1, 40)), time_scale=SCALE)}
    async with ward(mosquitto, tmp_path, {"z": units}, faults) as w:
        b = await bulletin(w.client, LONG)
        normal = await air(w.client, b["id"], {"zones": ["z"]}, valid_for_s=60)

        async def slow_unit_receiving() -> bool:
            got = states((await w.client.get(f"/api/broadcasts/{normal}")).json())
            ready = sum(s == "verified" for s in got.values())
            return got.get("md-0") in ("sent", "receiving") and ready >= 5

        await wait_for(slow_unit_receiving, 30, "md-0 mid-download while others verified")
        storm = await air(w.client, b["id"], {"zones": ["z"]}, priority="emergency", valid_for_s=60)
        em = await wait_broadcast(w.client, storm, 60)
        bc = await wait_broadcast(w.client, normal, 60)
    assert states(em) == {n: "played" for n in units}
    logger.info("normal: %s", {d["node_id"]: (d["state"], d["reason"]) for d in bc["deliveries"]})
    for d in bc["deliveries"]:
        assert d["state"] == "played" or d["reason"], d
    events = w.events()
    assert double_plays(events) == {}
    assert all(starts(events)[(n, storm)] == 1 for n in units)
