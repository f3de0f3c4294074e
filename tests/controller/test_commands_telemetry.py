"""Telemetry as units report it: the latest value in the API and a bounded history."""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace

import pytest
from sqlmodel import select

from controller.core.db import Database
from controller.core.writer import DbWriter
from controller.fleet import telemetry as telemetry_module
from controller.fleet.models import TelemetrySample
from controller.fleet.presence import Presence
from controller.fleet.telemetry import TelemetryHistory
from devices import protocol as p
from devices.broker import BrokerProcess, free_port
from devices.link import ControllerLink
from devices.mqtt import BrokerAddress
from firmware_sim.faults import Faults
from tests.conftest import make_settings, running_controller
from tests.e2e.helpers import provision, sim, wait_for, wait_online

FIELDS = {"power", "volume", "playing", "source", "rssi_dbm", "temp_c", "storage_free_kb", "ip", "uptime_s",
          "clock_offset_ms", "faults", "fw", "ts"}


@pytest.mark.broker
@pytest.mark.timeout(60)
async def test_latest_telemetry_and_history_in_the_api(mosquitto: BrokerProcess, tmp_path: Path) -> None:
    async with running_controller(make_settings(tmp_path, mosquitto.port)) as (app, client):
        await provision(client, {"z": ["m-1"]})
        node = sim("m-1", mosquitto.port, Faults(hw_faults=["amplifier", "speaker_line"]), fw="2.3.1")
        await node.start()
        try:
            await wait_online(client, ["m-1"])
            await wait_for(lambda: app.state.services.telemetry.stored >= 1, 10, "a sample")
            await app.state.services.writer.flush()
            body = (await client.get("/api/nodes/m-1/telemetry")).json()
            latest = body["latest"]
            assert FIELDS <= set(latest)
            assert latest["fw"] == "2.3.1" and latest["source"] == "idle"
            assert latest["faults"] == ["amplifier", "speaker_line"]
            assert isinstance(latest["rssi_dbm"], int) and latest["ip"].startswith("10.")
            [sample] = body["history"]
            assert sample["fw"] == "2.3.1" and sample["at"].endswith("+07:00")
            assert (await client.get("/api/nodes/nope/telemetry")).status_code == 404
            assert (await client.get("/api/nodes/m-1/telemetry?limit=0")).status_code == 422
        finally:
            await node.stop()


async def test_history_is_thinned_by_change_and_time_and_pruned(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    clock = [1000.0]  # the history's monotonic clock, moved by hand: a busy machine cannot stretch a gap
    monkeypatch.setattr(telemetry_module, "time", SimpleNamespace(monotonic=lambda: clock[0]))

    async def later(seconds: float) -> None:
        clock[0] += seconds
        await asyncio.sleep(seconds)  # the samples' own (wall-clock) times stay apart too

    db = Database(f"sqlite:///{tmp_path / 'h.db'}")
    db.migrate()
    writer = DbWriter(db)
    link = ControllerLink(BrokerAddress(port=free_port()))  # never started: only the handler table
    presence = Presence(link, writer)
    presence.provision("n-1")
    hist = TelemetryHistory(link, presence, writer, every_s=0.6, min_gap_s=0.2, keep_s=0.5)

    def send(node_id: str = "n-1", **kw: object) -> None:
        hist._on_telemetry(node_id, p.Telemetry(node_id=node_id, **kw))  # type: ignore[arg-type]

    for _ in range(20):  # a burst of identical reports: one sample
        send(volume=70)
    send("stranger", volume=1)  # not provisioned: not stored
    await later(0.1)
    send(volume=40)  # a change, but within min_gap of the last stored sample: skipped
    await later(0.2)
    send(volume=70)  # unchanged and every_s not passed: skipped
    send(volume=40)  # a change after min_gap: stored
    await later(0.65)
    send(volume=40)  # unchanged, but every_s passed: stored
    await writer.flush()
    with db.session() as s:
        rows = s.exec(select(TelemetrySample).order_by(TelemetrySample.at)).all()
        assert [(r.node_id, r.data["volume"]) for r in rows] == [("n-1", 70), ("n-1", 40), ("n-1", 40)]
        assert [r.id for r in hist.history(s, "n-1", limit=2)] == [rows[2].id, rows[1].id]  # newest first
    await asyncio.sleep(0.6)
    hist.prune()
    await writer.flush()
    with db.session() as s:
        assert s.exec(select(TelemetrySample)).all() == []
    db.dispose()
