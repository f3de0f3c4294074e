"""Bulletin audio where every controller reaches it (issue 16): controller A renders a bulletin, airs
it, sets a second broadcast of it for later and stops; controller B, on the same database with an
EMPTY data directory, airs the slot A left to simulated units on a real Mosquitto, they report
``played``, and B previews and downloads the audio A rendered (controller/core/audiostore.py).
And a broadcast A left on its way (units playing, one unit off) is restored by B from the
database, its audio from the store, and finished: every unit plays it once.

Before the audio store, B failed every such slot: "No such file or directory …/audio/18/183b….mp3".
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from controller.settings import Settings
from devices.broker import BrokerProcess
from firmware_sim.faults import Faults
from scheduler.settings import ScheduleSettings
from tests.conftest import make_settings, running_controller
from tests.e2e.helpers import air, bulletin, provision, sim, states, wait_broadcast, wait_for, wait_online

pytestmark = [pytest.mark.broker, pytest.mark.timeout(240)]

UNITS = ["t-1", "t-2", "t-3"]


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def shared_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'shared.db'}"
    else:
        yield request.getfixturevalue("pg_url")


def controller(data_dir: Path, port: int, url: str) -> Settings:
    base = make_settings(data_dir, port)
    # lead 0: a broadcast set for later is published at its time (by whoever runs then)
    return base.model_copy(update={"database_url": url, "schedule": ScheduleSettings(lead_s=0)})  # type: ignore[call-arg]


def files(d: Path) -> list[Path]:
    return sorted(f for f in d.rglob("*") if f.is_file()) if d.exists() else []


async def test_a_controller_with_an_empty_data_dir_airs_previews_and_serves_audio_another_rendered(
        shared_url: str, mosquitto: BrokerProcess, tmp_path: Path) -> None:
    nodes = [sim(n, mosquitto.port, Faults(time_scale=0.25)) for n in UNITS]
    try:
        async with running_controller(controller(tmp_path / "a", mosquitto.port, shared_url)) as (_, api_a):
            await provision(api_a, {"z": UNITS})
            await asyncio.gather(*(n.start() for n in nodes))
            await wait_online(api_a, UNITS)
            made = await bulletin(api_a, "Thông báo: chiều nay phường phun thuốc muỗi tại tổ dân phố 2.")
            now = await air(api_a, made["id"], {"zones": ["z"]})
            assert set(states(await wait_broadcast(api_a, now, 90)).values()) == {"played"}
            later = (datetime.now(tz=UTC) + timedelta(seconds=8)).isoformat()
            slot = await air(api_a, made["id"], {"zones": ["z"]}, air_at=later)
        # A is gone; B has never seen the audio
        b_dir = tmp_path / "b"
        assert files(b_dir / "audio") == [] and files(tmp_path / "a" / "audio")
        async with running_controller(controller(b_dir, mosquitto.port, shared_url)) as (app_b, api_b):
            bc = await wait_broadcast(api_b, slot, 120)
            assert bc["status"] == "done" and states(bc) == dict.fromkeys(UNITS, "played"), bc
            assert all(slot in n.player.start_times and now in n.player.start_times for n in nodes)

            sha = made["audio"]["sha256"]
            store = app_b.state.services.audio
            aired = dict(store.stats)  # airing read it from the database once; now B's cache serves it
            r = await api_b.get(f"/api/bulletins/{made['id']}/audio")  # download
            assert r.status_code == 200 and hashlib.sha256(r.content).hexdigest() == sha
            assert r.headers["content-type"] == "audio/mpeg"
            r = await api_b.get(f"/api/speech/audio/{sha}")  # preview by hash
            assert r.status_code == 200 and hashlib.sha256(r.content).hexdigest() == sha
            assert store.stats["db_reads"] == aired["db_reads"] >= 1
            assert store.stats["cache_hits"] == aired["cache_hits"] + 1  # the preview (the download: a file)
            assert f"{sha}.mp3" in [f.name for f in files(b_dir / "audio")]
            await wait_online(api_b, UNITS)
    finally:
        await asyncio.gather(*(n.stop() for n in nodes))


async def test_a_broadcast_on_its_way_is_finished_by_a_controller_with_an_empty_data_dir(
        shared_url: str, mosquitto: BrokerProcess, tmp_path: Path) -> None:
    """A airs to t-1 and t-2 and stops once they play; t-3 was off. B (empty data dir) restores the
    broadcast from the database — its audio from the store — and t-3, switched on, gets the audio
    from B and plays it; each unit plays it once."""
    nodes = [sim(n, mosquitto.port) for n in UNITS]
    try:
        async with running_controller(controller(tmp_path / "a", mosquitto.port, shared_url)) as (_, api_a):
            await provision(api_a, {"z": UNITS})
            await asyncio.gather(*(n.start() for n in nodes[:2]))
            await wait_online(api_a, UNITS[:2])
            made = await bulletin(api_a)
            bid = await air(api_a, made["id"], {"zones": ["z"]})
            await wait_for(lambda: all(n.player.started == [bid] for n in nodes[:2]), 30, "t-1, t-2 playing")
        b_dir = tmp_path / "b"
        await nodes[2].start()  # comes up while no controller runs
        async with running_controller(controller(b_dir, mosquitto.port, shared_url)) as (app_b, api_b):
            bc = await wait_broadcast(api_b, bid, 90)
            assert states(bc) == dict.fromkeys(UNITS, "played"), bc
            assert [n.played for n in nodes] == [[bid]] * 3
            assert app_b.state.services.audio.stats["db_reads"] >= 1
            assert f"{made['audio']['sha256']}.mp3" in [f.name for f in files(b_dir / "audio")]
    finally:
        await asyncio.gather(*(n.stop() for n in nodes))
