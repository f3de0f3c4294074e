"""A network partition between one controller and the broker (issue 16), the database still there.

Controller A reaches Mosquitto through a TCP proxy the test controls (tests/faults/tcp_cut.py);
B and the units reach it directly; both controllers share one PostgreSQL database. A airs a
bulletin and, while its units play it, the proxy black-holes A's link (nothing passes, nothing
is closed: to paho the connection looks alive for up to twice its 30 s keepalive). A must see
that its broker no longer passes its own probe back (devices/probe.py), give the broadcast up
and hand its row back; B takes it over and finishes it (a unit switched on after the cut gets it
from B); when the partition heals A takes nothing back, and what A queued while cut never
reaches a unit: no unit plays anything twice (the simulator's play log).
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

import pytest

from controller.settings import Settings
from devices.broker import BrokerProcess
from firmware_sim.playlog import PlayLog, double_plays, read_play_log, starts
from tests.conftest import make_settings, running_controller
from tests.e2e.helpers import air, bulletin, provision, states, wait_broadcast, wait_for, wait_online
from tests.e2e.test_takeover import LONG, units
from tests.faults.tcp_cut import tcp_cut

logger = logging.getLogger(__name__)

pytestmark = [pytest.mark.broker, pytest.mark.postgres, pytest.mark.timeout(240)]


def ctl(data_dir: Path, port: int, url: str) -> Settings:
    return make_settings(data_dir, port).model_copy(update={"database_url": url})


async def test_a_controller_cut_from_the_broker_gives_up_and_the_other_takes_over(
        pg_url: str, mosquitto: BrokerProcess, tmp_path: Path) -> None:
    names = [f"p-{i}" for i in range(5)]
    log = PlayLog(tmp_path / "play.jsonl")
    nodes = units(names, mosquitto.port, log)
    late = nodes[-1]  # off while A delivers: it gets the broadcast from B
    with tcp_cut("127.0.0.1", mosquitto.port) as proxy:
        try:
            async with (running_controller(ctl(tmp_path / "a", proxy.port, pg_url)) as (app_a, api_a),
                        running_controller(ctl(tmp_path / "b", mosquitto.port, pg_url)) as (app_b, api_b)):
                await provision(api_a, {"z": names})
                await asyncio.gather(*(n.start() for n in nodes[:-1]))
                await wait_online(api_a, names[:-1])
                await wait_online(api_b, names[:-1])
                bid = await air(api_a, (await bulletin(api_a, LONG))["id"], {"zones": ["z"]})
                await wait_for(lambda: all(bid in n.player.started for n in nodes[:-1]), 60, "units playing")
                da, db = app_a.state.services.delivery, app_b.state.services.delivery
                assert da.owns(bid) and not db.owns(bid)
                proxy.black_hole()
                cut = time.monotonic()
                await wait_for(lambda: not da.owns(bid) and da.active_count() == 0, 10, "A to give up")
                gave_up = time.monotonic() - cut
                await wait_for(lambda: db.owns(bid), 10, "B to take over")
                took = time.monotonic() - cut
                assert da.custody.stats["broker_lost"] == 1 and db.custody.stats["taken_over"] == 1
                await late.start()
                bc = await wait_broadcast(api_a, bid, 120)  # (read from the rows B writes)
                assert bc["status"] == "done" and states(bc) == dict.fromkeys(names, "played"), bc
                proxy.restore()  # the partition heals: A reconnects and takes nothing back
                link_a = app_a.state.services.link
                await wait_for(lambda: link_a.connected and link_a.broker_silent_s() < 1.0, 30, "A's broker")
                renewals, rounds = da.custody.stats["renew_errors"], da.custody.stats["rounds"]
                await wait_for(lambda: da.custody.stats["rounds"] >= rounds + 2, 15, "two rounds of A's")
                assert da.custody.stats["taken_over"] == 0 and da.active_count() == 0
                assert da.custody.stats["renew_errors"] == renewals  # the database was there all along
                logger.warning("partition: A gave up %.2f s after the cut, B took over %.2f s after it",
                               gave_up, took)
        finally:
            await asyncio.gather(*(n.stop() for n in nodes))
            log.close()
    events = read_play_log(log.path)
    assert double_plays(events) == {}
    assert starts(events) == {(n, bid): 1 for n in names}
    assert all(n.played == [bid] for n in nodes)
