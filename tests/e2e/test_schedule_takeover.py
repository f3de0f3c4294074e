"""A schedule slot fired ahead (``lead_s``) whose firing controller dies before its air time (issue 16).

Controllers A (a real process, SIGKILLed) and B (in this process) share one PostgreSQL database
and a real Mosquitto; simulated units write a play log (firmware_sim/playlog.py). A leads the
schedules; a one-off slot set ``AHEAD_S`` ahead fires at once on A (lead 600 s): its run, its
broadcast (``play_at`` = the slot) and the broadcast's owner row are A's, the units download the
audio and hold it. Then A is SIGKILLed:

1. while the units hold the audio, before any ``play`` went out: B takes the broadcast over within
   10 s of A's last renewal and airs it at the slot — each unit starts it once, at the slot; the
   run says it aired on time;
2. after A's ``play`` (naming the slot) went out but before the slot: the units start at the slot
   by themselves; B takes the broadcast over after it has started and must not start it again —
   each unit plays it once, every delivery ends ``played`` — and the run's ``late_ms`` is the truth
   (the units started on time, not when B learnt of it);
3. a broadcast set for later through A (``air_at``, published ``lead_s`` ahead), A SIGKILLed before
   publishing it — the state a slot's broadcast is in between its firing and its claim: no owner
   row, a timer only on A. B sees it still waiting after its time and airs it: published within
   10 s of its publish time, every unit plays it once at its instant.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlmodel import select

from controller.schedules.lateness import settle
from devices.broker import BrokerProcess
from firmware_sim.node import SimNode
from firmware_sim.playlog import PlayLog, double_plays, read_play_log, starts
from scheduler.models import ScheduleRun
from tests.conftest import running_controller
from tests.e2e.helpers import air, bulletin, provision, states, wait_broadcast, wait_for, wait_online
from tests.e2e.test_takeover import LONG, controller, process_controller, units

logger = logging.getLogger(__name__)

pytestmark = [pytest.mark.broker, pytest.mark.postgres, pytest.mark.timeout(300)]

AHEAD_S = 30  # the slot this far ahead: fired at once (lead 600 s), audio held well before it
ON_TIME_MS = 1_000  # a unit started within this of the slot started at the slot
OWNER_TTL_S = 6.0  # DeliverySettings.owner_ttl_s (the default): A's row lapses this long after its renewal


def runs(app: Any, schedule_id: int) -> list[ScheduleRun]:
    with app.state.services.db.session() as s:
        return list(s.exec(select(ScheduleRun).where(ScheduleRun.schedule_id == schedule_id)).all())


def holding(nodes: list[SimNode], bc: str, *, told: bool) -> bool:
    """Every unit holds ``bc`` (verified, not started); ``told``: with its start instant (a ``play``)."""
    return all(any(q.bc == bc and (q.start_at is not None) == told for q in n.player.queue) for n in nodes)


async def fired_on_a(api_a: httpx.AsyncClient, app_b: Any, at: datetime) -> tuple[int, str]:
    """The one-off slot at ``at`` set through A, fired by A: (schedule id, its broadcast id)."""
    bid = (await bulletin(api_a, LONG))["id"]
    r = await api_a.post("/api/schedules", json={"bulletin_id": bid, "target": {"zones": ["z"]},
                                                 "when": {"kind": "once", "at": at.isoformat()}})
    assert r.status_code == 201, r.text
    sid = int(r.json()["id"])
    await wait_for(lambda: [r for r in runs(app_b, sid) if r.status != "firing"], 20, "A to fire the slot")
    [run] = runs(app_b, sid)
    a_id = (await api_a.get("/api/scheduler")).json()["me"]
    assert run.status == "aired" and run.fired_by == a_id and len(run.broadcast_ids) == 1, run
    return sid, run.broadcast_ids[0]


async def kill_and_wait_for_b(child: asyncio.subprocess.Process, app_b: Any, bc: str) -> float:
    """SIGKILL A; B's takeover of ``bc``: seconds from A's last renewal (the database's clock) to
    when B is seen holding it (an upper bound of the takeover)."""
    os.kill(child.pid, signal.SIGKILL)
    await child.wait()
    owner = app_b.state.services.delivery.owner
    last = await asyncio.to_thread(owner.owner_of, bc)
    assert last is not None and last["holder"] != owner.holder, last
    renewed_at = int(last["expires_at"]) - int(OWNER_TTL_S * 1000)  # (A renews with the default ttl)
    seen: dict[str, Any] = {}

    async def taken() -> bool:
        row = await asyncio.to_thread(owner.owner_of, bc)
        seen.update(row or {})
        return bool(row) and row["holder"] == owner.holder  # type: ignore[index]

    await wait_for(taken, 20, "B to take the broadcast over", every=0.05)
    return (int(seen["db_now"]) - renewed_at) / 1000


def start_offsets(log: Path, bc: str, slot_ms: int) -> dict[str, int]:
    """unit → its start of ``bc`` (wall clock) minus the slot, ms."""
    return {e.unit: e.wall_ms - slot_ms for e in read_play_log(log) if e.event == "start" and e.bc == bc}


@pytest.mark.parametrize("when", ["holding", "told"])
async def test_a_slot_whose_firing_controller_dies_before_its_air_time_airs_once_at_the_slot(
        when: str, pg_url: str, mosquitto: BrokerProcess, tmp_path: Path) -> None:
    names = [f"so-{i}" for i in range(4)]
    log = PlayLog(tmp_path / "play.jsonl")
    nodes = units(names, mosquitto.port, log)
    told = when == "told"
    # "told": A names the start 4 s ahead, so the test can kill it between its play and the slot
    margin = {"LOAPHUONG_DELIVERY__START_MARGIN_MS": "4000",
              "LOAPHUONG_DELIVERY__START_MARGIN_FLOOR_MS": "4000"} if told else {}
    try:
        async with process_controller(tmp_path / "a", mosquitto.port, pg_url, **margin) as (child, api_a):
            await wait_for(lambda: _leading(api_a), 30, "A to fire the schedules")
            b = controller(tmp_path / "b", mosquitto.port, pg_url)
            async with running_controller(b) as (app_b, api_b):
                await provision(api_a, {"z": names})
                await asyncio.gather(*(n.start() for n in nodes))
                await wait_online(api_a, names, 30)
                await wait_online(api_b, names, 30)
                at = (datetime.now(tz=UTC) + timedelta(seconds=AHEAD_S)).replace(microsecond=0)
                slot_ms = int(at.timestamp() * 1000)
                sid, bc = await fired_on_a(api_a, app_b, at)
                await wait_for(lambda: holding(nodes, bc, told=False), 20, "the units to hold the audio")
                if told:
                    await wait_for(lambda: holding(nodes, bc, told=True), AHEAD_S, "A's play", every=0.02)
                    assert datetime.now(tz=UTC) < at, "A's play came after the slot"
                took = await kill_and_wait_for_b(child, app_b, bc)
                logger.warning("schedule takeover (%s): B took the slot's broadcast %.2f s after A's last "
                               "renewal, %.1f s before the slot", when, took, (slot_ms - _now_ms()) / 1000)
                assert took <= 10.0, took
                done = await wait_broadcast(api_b, bc, 120)
                assert done["status"] == "done" and states(done) == dict.fromkeys(names, "played"), done
                assert all(d["state"] == "played" or d["reason"] for d in done["deliveries"]), done
                offsets = start_offsets(log.path, bc, slot_ms)
                logger.warning("schedule takeover (%s): the units started %s ms after the slot", when,
                               sorted(offsets.values()))
                assert sorted(offsets) == names, offsets
                assert all(abs(off) <= ON_TIME_MS for off in offsets.values()), offsets  # at the slot
                # what B's lateness listener records (it only ever raises late_ms): looked at once more
                await asyncio.to_thread(settle, app_b.state.services.db, bc)
                [run] = runs(app_b, sid)
                assert run.status == "aired" and (run.late_ms or 0) <= 2_000, (run, offsets)
    finally:
        await asyncio.gather(*(n.stop() for n in nodes))
        log.close()
    events = read_play_log(log.path)
    assert double_plays(events) == {}
    assert starts(events) == {(n, bc): 1 for n in names}
    assert all(n.played == [bc] for n in nodes)


def _now_ms() -> int:
    return int(datetime.now(tz=UTC).timestamp() * 1000)


async def _leading(api: httpx.AsyncClient) -> bool:
    return bool((await api.get("/api/scheduler")).json()["leading"])


async def test_a_broadcast_set_for_later_whose_controller_dies_before_publishing_it_airs_at_its_time(
        pg_url: str, mosquitto: BrokerProcess, tmp_path: Path) -> None:
    names = [f"sl-{i}" for i in range(3)]
    log = PlayLog(tmp_path / "play.jsonl")
    nodes = units(names, mosquitto.port, log)
    lead_s, ahead_s = 20, 40  # A publishes 20 s before the instant, set 40 s ahead: 20 s from now
    try:
        async with process_controller(tmp_path / "a", mosquitto.port, pg_url,
                                      LOAPHUONG_SCHEDULE__LEAD_S=str(lead_s)) as (child, api_a):
            b = controller(tmp_path / "b", mosquitto.port, pg_url)
            async with running_controller(b) as (app_b, api_b):
                await provision(api_b, {"z": names})
                await asyncio.gather(*(n.start() for n in nodes))
                await wait_online(api_a, names, 30)
                at = (datetime.now(tz=UTC) + timedelta(seconds=ahead_s)).replace(microsecond=0)
                bc = await air(api_a, (await bulletin(api_a, LONG))["id"], {"zones": ["z"]},
                               air_at=at.isoformat())
                os.kill(child.pid, signal.SIGKILL)  # long before its publish time: only A had its timer
                await child.wait()
                got = (await api_b.get(f"/api/broadcasts/{bc}")).json()
                assert got["status"] == "scheduled", got
                publish_ms = int(datetime.fromisoformat(got["air_at"]).timestamp() * 1000)
                assert publish_ms == int(at.timestamp() * 1000) - lead_s * 1000, got
                owner = app_b.state.services.delivery.owner
                seen: dict[str, Any] = {}

                async def taken() -> bool:
                    row = await asyncio.to_thread(owner.owner_of, bc)
                    seen.update(row or {})
                    return bool(row) and row["holder"] == owner.holder  # type: ignore[index]

                await wait_for(taken, ahead_s, "B to air the broadcast A left", every=0.1)
                took = (int(seen["db_now"]) - publish_ms) / 1000
                logger.warning("a broadcast set for later on a dead controller: B claimed it %.2f s after "
                               "its publish time, %.1f s before its instant", took,
                               (at.timestamp() * 1000 - _now_ms()) / 1000)
                assert took <= 10.0, took
                done = await wait_broadcast(api_b, bc, 120)
                assert done["status"] == "done" and states(done) == dict.fromkeys(names, "played"), done
                offsets = start_offsets(log.path, bc, int(at.timestamp() * 1000))
                logger.warning("... the units started %s ms after its instant", sorted(offsets.values()))
                assert sorted(offsets) == names, offsets
                assert all(abs(o) <= ON_TIME_MS for o in offsets.values()), offsets  # at its instant
                assert app_b.state.services.overdue.stats["rearmed"] >= 1
    finally:
        await asyncio.gather(*(n.stop() for n in nodes))
        log.close()
    events = read_play_log(log.path)
    assert double_plays(events) == {}
    assert starts(events) == {(n, bc): 1 for n in names}
