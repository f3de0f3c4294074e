"""A relay the controller itself fetches and republishes (mode ``republish``: the units cannot reach
the station, they play the controller's live frames) survives its controller (issue 16).

On PostgreSQL and a real Mosquitto, with a local MP3 station and simulated units: controller A
(a real process) republishes the station to 2 units; its renewals show as the relay's
``owner_seen_at`` moving on. A is SIGKILLed while the units play: B takes the ``relay_owner``
lease within 10 s, pulls the station itself and the units play B's frames (a live session of
B's); the relay records who it was taken from and ``takeover_s``, the time from A's last renewal
to B's taking it, on the database clock. How long the units were silent is measured and logged.

The same when A is cut from the broker (a proxy black-holes its link, the database still there):
A stops pulling and hands the lease back, B takes the relay over and the units play B's frames;
when the partition heals A takes nothing back and the units stay on B's session.
"""

from __future__ import annotations

import asyncio
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

from controller.live.session import pcm_rms
from controller.settings import Settings
from devices.broker import BrokerProcess
from firmware_sim.node import SimNode
from tests.conftest import make_settings, running_controller
from tests.e2e.helpers import allowing, provision, sim, wait_for, wait_online
from tests.e2e.test_relay_sessions import Mp3Radio, serve, tone_mp3
from tests.e2e.test_takeover import process_controller
from tests.faults.tcp_cut import tcp_cut

logger = logging.getLogger(__name__)

pytestmark = [pytest.mark.broker, pytest.mark.postgres, pytest.mark.timeout(240)]


async def relay(api: httpx.AsyncClient, rid: str) -> dict[str, Any]:
    r = await api.get(f"/api/relays/{rid}")
    assert r.status_code == 200, r.text
    return dict(r.json())


def loud_times(node: SimNode) -> list[float]:
    """When the unit played an audible frame (monotonic)."""
    return [t for t, _, pcm in node.live.output if pcm_rms(pcm) > 1000]


def silence_s(node: SimNode, taken: float) -> float:
    """How long the unit was quiet: from the last audible frame it played before B took the relay
    (A's, from its buffer after the kill) to its first audible frame after (B's)."""
    times = loud_times(node)
    before, after = [t for t in times if t <= taken], [t for t in times if t > taken]
    assert before and after, (len(before), len(after))
    return after[0] - before[-1]


async def seen_moves(api: httpx.AsyncClient, rid: str) -> str:
    """The owner's renewals show: ``owner_seen_at`` moves on; the latest value."""
    first = (await relay(api, rid))["owner_seen_at"]
    assert first is not None

    async def moved() -> bool:
        return bool((await relay(api, rid))["owner_seen_at"] > first)

    await wait_for(moved, 15, "the owner's next renewal in owner_seen_at")
    return str((await relay(api, rid))["owner_seen_at"])


async def test_a_republished_relay_is_taken_over_when_its_controller_is_killed(
        pg_url: str, mosquitto: BrokerProcess, tmp_path: Path) -> None:
    radio = Mp3Radio(tone_mp3(tmp_path))
    serve(radio)
    names = ["rk-1", "rk-2"]
    nodes = [sim(n, mosquitto.port) for n in names]
    b = allowing(make_settings(tmp_path / "b", mosquitto.port).model_copy(update={"database_url": pg_url}),
                 radio.url)
    try:
        async with running_controller(b) as (app_b, api_b):
            await provision(api_b, {"z": names})
            await asyncio.gather(*(n.start() for n in nodes))
            allowed = json.dumps(b.relay.allowed_stations)
            async with process_controller(tmp_path / "a", mosquitto.port, pg_url,
                                          LOAPHUONG_RELAY__ALLOWED_STATIONS=allowed) as (child, api_a):
                await wait_online(api_a, names, 30)
                r = await api_a.post("/api/relays", json={"url": radio.url, "mode": "republish",
                                                          "target": {"zones": ["z"]}})
                assert r.status_code == 201, r.text
                rid, a_id = r.json()["id"], r.json()["owner"]
                await wait_for(lambda: all(len(loud_times(n)) > 10 for n in nodes), 30, "A's frames played")
                a_live = {n.live.active for n in nodes}
                last_seen = await seen_moves(api_b, rid)  # read through B: the row A renews
                os.kill(child.pid, signal.SIGKILL)
                killed = time.monotonic()
                await child.wait()
            hub, lease = app_b.state.services.relays, app_b.state.services.relays.lease
            await wait_for(lambda: (lease.owner_of(rid) or {}).get("holder") == lease.holder, 15, "B's lease")
            taken = time.monotonic()
            took = taken - killed
            assert took <= 10.0, took
            await wait_for(lambda: hub.runs(rid) and hub.sessions[rid].state == "playing", 15, "B pulls it")
            await wait_for(lambda: all(sum(t > taken for t in loud_times(n)) > 10 for n in nodes), 30,
                           "units play B's frames")
            b_live = hub.sessions[rid].detail["live_session"]
            assert {n.live.active for n in nodes} == {b_live} and b_live not in a_live
            quiet = max(silence_s(n, taken) for n in nodes)
            got = await relay(api_b, rid)
            assert (got["owner"], got["state"], got["taken_over"], got["taken_from"]) == (
                lease.holder, "playing", 1, a_id), got
            assert 0 < got["takeover_s"] <= 10.0 + 2, got  # from A's last renewal, database clock
            assert datetime.fromisoformat(got["owner_seen_at"]) > datetime.fromisoformat(last_seen)  # B's now
            logger.warning("republish relay: B took it %.2f s after the SIGKILL of A (%.2f s after A's last "
                           "renewal); units silent %.2f s at most", took, got["takeover_s"], quiet)
            r = await api_b.delete(f"/api/relays/{rid}")
            assert r.status_code == 200 and r.json()["state"] == "ended", r.text
            await wait_for(lambda: all(not n.live.active for n in nodes), 15, "units left B's session")
            await wait_for(lambda: lease.owner_of(rid) is None, 10, "its lease gone with its end")
    finally:
        await asyncio.gather(*(n.stop() for n in nodes))
        radio.up.clear()
        radio.shutdown()
        radio.server_close()


async def test_a_republished_relay_is_taken_over_when_its_controller_is_cut_from_the_broker(
        pg_url: str, mosquitto: BrokerProcess, tmp_path: Path) -> None:
    radio = Mp3Radio(tone_mp3(tmp_path))
    serve(radio)
    names = ["rc-1", "rc-2"]
    nodes = [sim(n, mosquitto.port) for n in names]

    def ctl(name: str, port: int) -> Settings:
        base = make_settings(tmp_path / name, port).model_copy(update={"database_url": pg_url})
        return allowing(base, radio.url)

    try:
        with tcp_cut("127.0.0.1", mosquitto.port) as proxy:
            async with (running_controller(ctl("a", proxy.port)) as (app_a, api_a),
                        running_controller(ctl("b", mosquitto.port)) as (app_b, api_b)):
                await provision(api_a, {"z": names})
                await asyncio.gather(*(n.start() for n in nodes))
                await wait_online(api_a, names)
                await wait_online(api_b, names)
                r = await api_a.post("/api/relays", json={"url": radio.url, "mode": "republish",
                                                          "target": {"zones": ["z"]}})
                assert r.status_code == 201, r.text
                rid = r.json()["id"]
                await wait_for(lambda: all(len(loud_times(n)) > 10 for n in nodes), 30, "A's frames played")
                ha, hb = app_a.state.services.relays, app_b.state.services.relays
                proxy.black_hole()
                cut = time.monotonic()
                await wait_for(lambda: not ha.runs(rid), 15, "A to let the relay go")
                await wait_for(lambda: hb.runs(rid) and hb.sessions[rid].state == "playing", 15, "B pulls it")
                taken = time.monotonic()
                await wait_for(lambda: all(sum(t > taken for t in loud_times(n)) > 10 for n in nodes), 30,
                               "units play B's frames")
                b_live = hb.sessions[rid].detail["live_session"]
                assert {n.live.active for n in nodes} == {b_live}
                got = await relay(api_b, rid)
                assert (got["owner"], got["taken_over"]) == (hb.owner, 1) and got["takeover_s"] > 0, got
                proxy.restore()  # healed: A takes nothing back, the units stay on B's session
                link_a = app_a.state.services.link
                await wait_for(lambda: link_a.connected and link_a.broker_silent_s() < 1.0, 30, "A's broker")
                assert ha.custody is not None
                rounds = ha.custody.stats["rounds"]
                await wait_for(lambda: ha.custody.stats["rounds"] >= rounds + 2, 15, "two rounds of A's")
                assert not ha.runs(rid) and hb.runs(rid) and {n.live.active for n in nodes} == {b_live}
                heard = [sum(t > taken for t in loud_times(n)) for n in nodes]
                await wait_for(lambda: all(sum(t > taken for t in loud_times(n)) > h + 10
                                           for n, h in zip(nodes, heard, strict=True)), 20, "B frames on")
                logger.warning("republish relay, partition: B ran it %.2f s after A was cut (%.2f s after "
                               "A's last renewal)", taken - cut, got["takeover_s"])
    finally:
        await asyncio.gather(*(n.stop() for n in nodes))
        radio.up.clear()
        radio.shutdown()
        radio.server_close()
