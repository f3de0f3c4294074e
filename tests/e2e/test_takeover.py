"""Owned delivery with takeover (issue 16 part 2), on PostgreSQL and a real Mosquitto, with
simulated units that write a play log (firmware_sim/playlog.py):

1. controller A (a real process) airs to 30 units and is SIGKILLed while they play; B takes the
   broadcast over within 10 s (its ``broadcast_owner`` row), finishes it from the database and
   the units' reports — three units switched on only after the kill get it from B — and every
   unit played it exactly once;
2. A and B air to the same zone at the same moment: one takes the zone (``zone_claim``), the
   other waits for it; no unit has a bulletin cut, each plays both once, one after the other;
3. a cancel sent through B of a broadcast A delivers stops it on the units (A carries it out);
4. A loses the database (a proxy cut) but not the broker: it gives its broadcast up, B takes it
   over and finishes it, no unit plays it twice.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from controller.settings import Settings
from devices.broker import BrokerProcess
from firmware_sim.faults import Faults
from firmware_sim.node import SimNode
from firmware_sim.playlog import PlayLog, double_plays, read_play_log, starts
from tests.conftest import ADMIN, make_settings, running_controller
from tests.e2e.helpers import air, bulletin, provision, sim, states, wait_broadcast, wait_for, wait_online
from tests.e2e.test_relay_crash import ROOT, free_tcp_port
from tests.faults.tcp_cut import tcp_cut

pytestmark = [pytest.mark.broker, pytest.mark.postgres, pytest.mark.timeout(240)]

LONG = ("Thông báo của Ủy ban nhân dân phường: sáng thứ bảy tuần này, từ bảy giờ đến mười một giờ, "
        "tại nhà văn hóa tổ dân phố số hai, phường tổ chức tiêm phòng dại cho chó mèo. Đề nghị các hộ "
        "gia đình đưa vật nuôi đến đúng giờ và mang theo sổ tiêm phòng.")


def controller(data_dir: Path, port: int, url: str) -> Settings:
    return make_settings(data_dir, port).model_copy(update={"database_url": url})


@asynccontextmanager
async def process_controller(data_dir: Path, port: int, url: str, **env: str) -> AsyncIterator[
        tuple[asyncio.subprocess.Process, httpx.AsyncClient]]:
    """``loaphuong serve`` as a child process on the shared database (killed at the end); ``env``:
    more of its environment (LOAPHUONG_* settings)."""
    http = free_tcp_port()
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "controller.cli", "serve", "--port", str(http), "--data-dir", str(data_dir),
        "--mqtt-port", str(port), "--database-url", url, cwd=ROOT, stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL, env={**os.environ, "LOAPHUONG_ADMIN_PASSWORD": ADMIN[1], **env})
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{http}", auth=ADMIN, timeout=30) as api:
            async def up() -> bool:
                try:
                    return (await api.get("/api/health")).status_code == 200
                except httpx.TransportError:
                    return False

            await wait_for(up, 60, "the controller process to serve")
            yield child, api
    finally:
        if child.returncode is None:
            child.kill()
            await child.wait()


def units(names: list[str], port: int, log: PlayLog, scale: float = 1.0) -> list[SimNode]:
    return [sim(n, port, Faults(time_scale=scale), play_log=log) for n in names]


def plays(log: Path) -> dict[tuple[str, str], list[tuple[int, int, str]]]:
    """(unit, bc) → its (start wall ms, end wall ms, end reason) in order."""
    out: dict[tuple[str, str], list[tuple[int, int, str]]] = {}
    begun: dict[tuple[str, str], int] = {}
    for e in read_play_log(log):
        if e.event == "start":
            begun[(e.unit, e.bc)] = e.wall_ms
        elif e.event == "end":
            out.setdefault((e.unit, e.bc), []).append((begun.pop((e.unit, e.bc), 0), e.wall_ms, e.reason))
    return out


async def test_a_killed_owner_is_taken_over_and_every_unit_plays_once(
        pg_url: str, mosquitto: BrokerProcess, tmp_path: Path) -> None:
    names = [f"k-{i:02d}" for i in range(30)]
    log = PlayLog(tmp_path / "play.jsonl")
    nodes = units(names, mosquitto.port, log)
    late = nodes[-3:]  # off while A delivers: B gives them the audio
    try:
        async with running_controller(controller(tmp_path / "b", mosquitto.port, pg_url)) as (app_b, api_b):
            await provision(api_b, {"z": names})
            await asyncio.gather(*(n.start() for n in nodes[:-3]))
            async with process_controller(tmp_path / "a", mosquitto.port, pg_url) as (child, api_a):
                await wait_online(api_a, names[:-3], 30)
                made = await bulletin(api_a, LONG)
                bid = await air(api_a, made["id"], {"zones": ["z"]})
                await wait_for(lambda: all(bid in n.player.started for n in nodes[:-3]), 60, "units playing")
                os.kill(child.pid, signal.SIGKILL)
                killed = time.monotonic()
                await child.wait()
            await asyncio.gather(*(n.start() for n in late))
            owner = app_b.state.services.delivery.owner
            me = app_b.state.services.link.client_id
            await wait_for(lambda: (owner.owner_of(bid) or {}).get("holder") == me, 15, "B to take over")
            took = time.monotonic() - killed
            assert took <= 10.0, took
            bc = await wait_broadcast(api_b, bid, 120)
            assert bc["status"] == "done" and states(bc) == dict.fromkeys(names, "played"), bc
            assert app_b.state.services.delivery.custody.stats["taken_over"] == 1
    finally:
        await asyncio.gather(*(n.stop() for n in nodes))
        log.close()
    assert double_plays(read_play_log(log.path)) == {}
    assert starts(read_play_log(log.path)) == {(n, bid): 1 for n in names}
    assert all(n.played == [bid] for n in nodes)


async def test_two_controllers_airing_one_zone_at_once_take_turns(
        pg_url: str, mosquitto: BrokerProcess, tmp_path: Path) -> None:
    names = [f"t-{i}" for i in range(6)]
    log = PlayLog(tmp_path / "play.jsonl")
    nodes = units(names, mosquitto.port, log, scale=0.5)
    try:
        async with (running_controller(controller(tmp_path / "a", mosquitto.port, pg_url)) as (app_a, api_a),
                    running_controller(controller(tmp_path / "b", mosquitto.port, pg_url)) as (app_b, api_b)):
            await provision(api_a, {"z": names})
            await asyncio.gather(*(n.start() for n in nodes))
            await wait_online(api_a, names)
            await wait_online(api_b, names)
            one, two = await bulletin(api_a, LONG), await bulletin(api_b, "Thông báo: chiều nay cắt điện.")
            at = (datetime.now(tz=UTC) + timedelta(seconds=6)).isoformat()  # the same instant on both
            bids = await asyncio.gather(air(api_a, one["id"], {"zones": ["z"]}, air_at=at),
                                        air(api_b, two["id"], {"zones": ["z"]}, air_at=at))
            for api, bid in zip((api_a, api_b), bids, strict=True):
                bc = await wait_broadcast(api, bid, 120)
                assert bc["status"] == "done" and states(bc) == dict.fromkeys(names, "played"), bc
            zones = [app_a.state.services.zones.stats, app_b.state.services.zones.stats]
            assert all(z["claims"] >= 1 and z["errors"] == 0 for z in zones), zones  # each took it, in turn
    finally:
        await asyncio.gather(*(n.stop() for n in nodes))
        log.close()
    assert double_plays(read_play_log(log.path)) == {}
    played = plays(log.path)
    for n in names:
        turns = sorted(played[(n, b)][0] for b in bids)
        assert [t[2] for t in turns] == ["played", "played"], turns  # nothing cut
        assert turns[0][1] <= turns[1][0] + 50, turns  # one after the other, never both at once


async def test_a_cancel_through_b_stops_the_broadcast_a_delivers(
        pg_url: str, mosquitto: BrokerProcess, tmp_path: Path) -> None:
    names = ["c-1", "c-2", "c-3"]
    log = PlayLog(tmp_path / "play.jsonl")
    nodes = units(names, mosquitto.port, log)
    try:
        async with (running_controller(controller(tmp_path / "a", mosquitto.port, pg_url)) as (app_a, api_a),
                    running_controller(controller(tmp_path / "b", mosquitto.port, pg_url)) as (app_b, api_b)):
            await provision(api_a, {"z": names})
            await asyncio.gather(*(n.start() for n in nodes))
            await wait_online(api_a, names)
            made = await bulletin(api_a, LONG)
            bid = await air(api_a, made["id"], {"zones": ["z"]})
            await wait_for(lambda: all(bid in n.player.started for n in nodes), 60, "units playing")
            assert app_a.state.services.delivery.owns(bid) and not app_b.state.services.delivery.owns(bid)
            r = await api_b.post(f"/api/broadcasts/{bid}/cancel")
            assert r.status_code == 200, r.text
            got: dict[str, Any] = r.json()
            assert got["status"] == "cancelled" and set(states(got).values()) == {"cancelled"}, got
            await wait_for(lambda: all(n.player.playing != bid for n in nodes), 15, "units stopped")
            assert app_a.state.services.airing_requests.stats["served"] == 1
    finally:
        await asyncio.gather(*(n.stop() for n in nodes))
        log.close()
    ends = [e for e in read_play_log(log.path) if e.event == "end" and e.bc == bid]
    assert sorted(e.unit for e in ends) == names and {e.reason for e in ends} == {"cancelled"}, ends


async def test_an_owner_that_loses_the_database_gives_up_and_the_other_finishes(
        pg_url: str, mosquitto: BrokerProcess, tmp_path: Path) -> None:
    """A reaches PostgreSQL through a proxy that is cut while its broadcast waits for an offline
    unit: A gives the broadcast up (sends nothing more), B takes it over, the unit switched on
    then gets it from B; A, its database back, does not take it again."""
    names = ["d-1", "d-2", "d-3"]
    log = PlayLog(tmp_path / "play.jsonl")
    nodes = units(names, mosquitto.port, log, scale=0.25)
    with tcp_cut("127.0.0.1", 5432) as proxy:
        via_proxy = pg_url.replace(":5432/", f":{proxy.port}/")
        try:
            async with (running_controller(controller(tmp_path / "a", mosquitto.port, via_proxy))
                        as (app_a, api_a),
                        running_controller(controller(tmp_path / "b", mosquitto.port, pg_url))
                        as (app_b, api_b)):
                await provision(api_a, {"z": names})
                await asyncio.gather(*(n.start() for n in nodes[:2]))
                await wait_online(api_a, names[:2])
                bid = await air(api_a, (await bulletin(api_a))["id"], {"zones": ["z"]})
                await wait_for(lambda: all(n.played == [bid] for n in nodes[:2]), 60, "d-1, d-2 played")
                da, db = app_a.state.services.delivery, app_b.state.services.delivery
                assert da.owns(bid)
                proxy.cut()
                await wait_for(lambda: not da.owns(bid) and da.active_count() == 0, 10, "A to give up")
                await wait_for(lambda: db.owns(bid), 10, "B to take over")
                await nodes[2].start()
                bc = await wait_broadcast(api_b, bid, 60)
                assert bc["status"] == "done" and states(bc) == dict.fromkeys(names, "played"), bc
                proxy.restore()
                await wait_for(lambda: da.custody.stats["renew_errors"] >= 1, 5, "A's failed renewals")
                assert da.custody.stats["taken_over"] == 0 and da.active_count() == 0
        finally:
            await asyncio.gather(*(n.stop() for n in nodes))
            log.close()
    assert double_plays(read_play_log(log.path)) == {}
    assert all(n.played == [bid] for n in nodes)
