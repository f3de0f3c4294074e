"""Relays owned by one controller with takeover (issue 16 part 2), on PostgreSQL and a real
Mosquitto, with simulated units and a local radio station:

1. controller A (a real process) relays a station to 3 units (mode node_fetch, 24 s) and is
   SIGKILLed while they play it; B takes the relay's ``relay_owner`` lease within 10 s, the units
   keep playing without fetching the stream again (B's ``play_stream`` names the URL they play),
   and the relay ends at its scheduled end, recorded by B;
2. a relay run by A is stopped through B (an ``airing_request`` carried out by A): the units stop,
   B answers with the ended relay;
3. a live session on A (the phone's WebSocket) when A is SIGKILLed: B ends it within 10 s
   (``live_owner`` lease; recorded "controller lost"), its units stop, the zone is free for B.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.exceptions import ConnectionClosed

from controller.settings import Settings
from devices.broker import BrokerProcess
from firmware_sim.node import SimNode
from tests.conftest import ADMIN, make_settings, running_controller
from tests.e2e.helpers import (
    air,
    allowing,
    bulletin,
    provision,
    sim,
    states,
    wait_broadcast,
    wait_for,
    wait_online,
)
from tests.e2e.serve import next_msg, phone, talk
from tests.e2e.test_takeover import process_controller
from tests.firmware_sim.test_relay import Radio

logger = logging.getLogger(__name__)

pytestmark = [pytest.mark.broker, pytest.mark.postgres, pytest.mark.timeout(240)]


def ctl(data_dir: Path, port: int, url: str, radio: Radio) -> Settings:
    return allowing(make_settings(data_dir, port).model_copy(update={"database_url": url}), radio.base)


async def relay(api: httpx.AsyncClient, rid: str) -> dict[str, Any]:
    r = await api.get(f"/api/relays/{rid}")
    assert r.status_code == 200, r.text
    return dict(r.json())


def relaying(nodes: list[SimNode]) -> bool:
    return all(n.relay.state == "playing" for n in nodes)


async def test_a_killed_relay_owner_is_taken_over_and_the_relay_ends_on_time(
        pg_url: str, mosquitto: BrokerProcess, tmp_path: Path, radio: Radio) -> None:
    names = ["r-1", "r-2", "r-3"]
    nodes = [sim(n, mosquitto.port, telemetry_s=60) for n in names]
    try:
        async with running_controller(ctl(tmp_path / "b", mosquitto.port, pg_url, radio)) as (app_b, api_b):
            await provision(api_b, {"z": names})
            await asyncio.gather(*(n.start() for n in nodes))
            allowed = json.dumps([radio.base])
            async with process_controller(tmp_path / "a", mosquitto.port, pg_url,
                                          LOAPHUONG_RELAY__ALLOWED_STATIONS=allowed) as (child, api_a):
                await wait_online(api_a, names, 30)
                body = {"url": f"{radio.base}/live.mp3", "target": {"zones": ["z"]}, "duration_s": 24}
                r = await api_a.post("/api/relays", json=body)
                assert r.status_code == 201, r.text
                rid = r.json()["id"]
                await wait_for(lambda: relaying(nodes), 20, "units relay (A)")
                lease = app_b.state.services.relays.lease
                assert lease is not None and (lease.owner_of(rid) or {}).get("holder") != lease.holder
                fetches = radio.requests.count("/live.mp3")
                os.kill(child.pid, signal.SIGKILL)
                killed = time.monotonic()
                await child.wait()
            hub = app_b.state.services.relays
            await wait_for(lambda: (lease.owner_of(rid) or {}).get("holder") == lease.holder, 15, "B's lease")
            took = time.monotonic() - killed
            assert took <= 10.0, took
            await wait_for(lambda: hub.runs(rid) and hub.sessions[rid].state == "playing", 10, "B runs it")
            sess = hub.sessions[rid]
            await wait_for(lambda: all(sess.last_told(n) > 0 for n in names), 10, "B's play_stream sent")
            assert relaying(nodes)
            got = await relay(api_b, rid)
            assert got["owner"] == lease.holder and got["taken_over"] == 1, got
            await wait_for(lambda: all(n.relay.state == "" for n in nodes), 40, "the relay ends on time")
            assert radio.requests.count("/live.mp3") == fetches  # no unit restarted its stream

            async def ended() -> bool:
                return bool((await relay(api_b, rid))["state"] == "ended")

            await wait_for(ended, 10, "its end recorded")
            got = await relay(api_b, rid)
            assert got["reason"] == "finished", got
            length = (datetime.fromisoformat(got["ended_at"]) - datetime.fromisoformat(got["started_at"]))
            assert abs(length.total_seconds() - 24) < 2.5, got
            await wait_for(lambda: lease.owner_of(rid) is None, 5, "its lease gone with its end (written)")
            air = app_b.state.services.air
            assert rid not in air.arbiter.running and rid not in air.live
            logger.warning("relay: B took the lease %.2f s after the SIGKILL of A", took)
    finally:
        await asyncio.gather(*(n.stop() for n in nodes))


async def test_a_relay_run_by_a_is_stopped_through_b(
        pg_url: str, mosquitto: BrokerProcess, tmp_path: Path, radio: Radio) -> None:
    names = ["s-1", "s-2"]
    nodes = [sim(n, mosquitto.port, telemetry_s=60) for n in names]
    try:
        async with (running_controller(ctl(tmp_path / "a", mosquitto.port, pg_url, radio)) as (app_a, api_a),
                    running_controller(ctl(tmp_path / "b", mosquitto.port, pg_url, radio)) as (app_b, api_b)):
            await provision(api_a, {"z": names})
            await asyncio.gather(*(n.start() for n in nodes))
            await wait_online(api_a, names)
            body = {"url": f"{radio.base}/live.mp3", "target": {"zones": ["z"]}}
            r = await api_a.post("/api/relays", json=body)
            assert r.status_code == 201, r.text
            rid = r.json()["id"]
            await wait_for(lambda: relaying(nodes), 20, "units relay (A)")
            assert app_a.state.services.relays.runs(rid) and not app_b.state.services.relays.runs(rid)
            r = await api_b.delete(f"/api/relays/{rid}")
            assert r.status_code == 200, r.text
            assert (r.json()["state"], r.json()["reason"]) == ("ended", "stopped"), r.text
            await wait_for(lambda: all(n.relay.state == "" for n in nodes), 15, "units stop")
            assert app_a.state.services.relay_requests.stats["served"] == 1
            assert (await relay(api_a, rid))["state"] == "ended"
    finally:
        await asyncio.gather(*(n.stop() for n in nodes))


async def test_a_live_session_whose_controller_dies_is_ended_by_another(
        pg_url: str, mosquitto: BrokerProcess, tmp_path: Path) -> None:
    """The officer speaks through A (a process); A is SIGKILLed mid-sentence: the phone's socket goes
    with it; B takes the session's expired lease and ends it — recorded ended, reason "controller
    lost", its units stopped — and the zone airs B's bulletin next (nothing is blocked)."""
    names = ["lv-1", "lv-2"]
    nodes = [sim(n, mosquitto.port) for n in names]
    try:
        b = make_settings(tmp_path / "b", mosquitto.port).model_copy(update={"database_url": pg_url})
        async with running_controller(b) as (app_b, api_b):
            await provision(api_b, {"z": names})
            await asyncio.gather(*(n.start() for n in nodes))
            async with process_controller(tmp_path / "a", mosquitto.port, pg_url) as (child, api_a):
                await wait_online(api_a, names, 30)
                ws = await phone(str(api_a.base_url.netloc.decode()), ADMIN, {"zones": ["z"]})
                sid = (await next_msg(ws, "state", state="live", timeout=20))["session"]
                deadline = time.monotonic() + 20
                while not all(n.live.active == sid for n in nodes) and time.monotonic() < deadline:
                    await talk(ws, 200)
                assert all(n.live.active == sid for n in nodes)
                lease = app_b.state.services.live_hub.lease
                assert lease is not None
                await wait_for(lambda: (lease.owner_of(sid) or {}).get("holder") not in (None, lease.holder),
                               10, "A's lease on the session")

                async def recorded() -> bool:
                    r = await api_b.get(f"/api/live/sessions/{sid}")
                    return r.status_code == 200 and r.json()["state"] == "live"

                await wait_for(recorded, 10, "the session in the live log")
                os.kill(child.pid, signal.SIGKILL)
                killed = time.monotonic()
                await child.wait()
            with contextlib.suppress(ConnectionClosed, TimeoutError):  # the phone's connection went with A
                async with asyncio.timeout(10):
                    while True:
                        await ws.recv()

            async def ended() -> dict[str, Any] | None:
                r = await api_b.get(f"/api/live/sessions/{sid}")
                assert r.status_code == 200, r.text
                row = dict(r.json())
                return row if row["state"] == "ended" else None

            await wait_for(ended, 15, "B to end the session")
            took = time.monotonic() - killed
            row = await ended()
            assert row is not None and row["reason"] == "controller lost", row
            assert took <= 10.0, took
            await wait_for(lambda: not any(n.live.active for n in nodes), 10, "units stopped")
            await wait_for(lambda: lease.owner_of(sid) is None, 5, "its lease gone")
            assert app_b.state.services.live_hub.custody.stats["taken_over"] == 1  # type: ignore[union-attr]
            bid = await air(api_b, (await bulletin(api_b))["id"], {"zones": ["z"]})
            bc = await wait_broadcast(api_b, bid, 90)
            assert bc["status"] == "done" and states(bc) == dict.fromkeys(names, "played"), bc
            logger.warning("live: B ended the dead owner's session %.2f s after the SIGKILL", took)
    finally:
        await asyncio.gather(*(n.stop() for n in nodes))


async def test_a_relay_holds_its_zones_cluster_wide(
        pg_url: str, mosquitto: BrokerProcess, tmp_path: Path, radio: Radio) -> None:
    """A relays to zone z; a bulletin B airs to z meanwhile waits (zone_claim) and plays once the
    relay is stopped, on every unit, never over the relay."""
    names = ["zc-1", "zc-2"]
    nodes = [sim(n, mosquitto.port, telemetry_s=60) for n in names]
    try:
        async with (running_controller(ctl(tmp_path / "a", mosquitto.port, pg_url, radio)) as (_, api_a),
                    running_controller(ctl(tmp_path / "b", mosquitto.port, pg_url, radio)) as (app_b, api_b)):
            await provision(api_a, {"z": names})
            await asyncio.gather(*(n.start() for n in nodes))
            await wait_online(api_a, names)
            await wait_online(api_b, names)
            body = {"url": f"{radio.base}/live.mp3", "target": {"zones": ["z"]}}
            r = await api_a.post("/api/relays", json=body)
            assert r.status_code == 201, r.text
            rid = r.json()["id"]
            await wait_for(lambda: relaying(nodes), 20, "units relay (A)")
            bid = await air(api_b, (await bulletin(api_b))["id"], {"zones": ["z"]})
            await wait_for(lambda: app_b.state.services.zones.stats["refused"] >= 1
                           or "z" in app_b.state.services.air.arbiter.foreign, 20, "B to see the zone held")
            assert not any(n.player.started for n in nodes) and relaying(nodes)  # nothing over the relay
            r = await api_b.delete(f"/api/relays/{rid}")
            assert r.status_code == 200, r.text
            bc = await wait_broadcast(api_b, bid, 90)
            assert bc["status"] == "done" and states(bc) == dict.fromkeys(names, "played"), bc
            assert all(n.played == [bid] for n in nodes)
    finally:
        await asyncio.gather(*(n.stop() for n in nodes))
