"""A zone's timed power window switches its units (issue 14): a real Mosquitto, a simulated unit,
the controller's window applier; and the applier's arithmetic and its once-only claim."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from controller.core.db import Database
from controller.fleet.models import Zone, ZoneWindow
from controller.fleet.windows import ZoneWindows, last_switch
from devices.broker import BrokerProcess
from scheduler import TIMEZONE
from tests.conftest import make_settings, running_controller
from tests.e2e.helpers import provision, sim, wait_for, wait_online

pytestmark = [pytest.mark.broker, pytest.mark.timeout(120)]


async def test_a_window_switches_the_zone_off_and_on(mosquitto: BrokerProcess, tmp_path: Path) -> None:
    async with running_controller(make_settings(tmp_path, mosquitto.port)) as (app, c):
        await provision(c, {"tdp1": ["tdp1-01"], "tdp2": ["tdp2-01"]})
        units = [sim(n, mosquitto.port, heartbeat_s=1.0) for n in ("tdp1-01", "tdp2-01")]
        await asyncio.gather(*(u.start() for u in units))
        try:
            await wait_online(c, ["tdp1-01", "tdp2-01"])

            async def power(node: str) -> object:
                return (await c.get(f"/api/nodes/{node}")).json()["telemetry"].get("power")

            now = datetime.now(TIMEZONE)
            earlier = (now - timedelta(hours=3)).strftime("%H:%M")
            r = await c.post("/api/zones/tdp1/windows",
                             json={"on_at": earlier, "off_at": now.strftime("%Hh%M")})
            assert r.status_code == 201, r.text
            w = r.json()
            # "6h30" is read as 06:30; every day by default
            assert w["off_at"] == now.strftime("%H:%M") and w["days"] == list(range(7))

            async def off() -> bool:
                return await power("tdp1-01") is False

            await wait_for(off, 30, "tdp1-01 switched off by its zone's window")
            assert await power("tdp2-01") is not False  # another zone: untouched
            assert app.state.services.windows.sent == 1
            listed = (await c.get("/api/zones/tdp1/windows")).json()
            assert [x["id"] for x in listed] == [w["id"]]
            paused = await c.patch(f"/api/zone-windows/{w['id']}", json={"enabled": False})
            assert paused.status_code == 200 and paused.json()["enabled"] is False
            # an "on" window due now switches it back on
            r = await c.post("/api/zones/tdp1/windows",
                             json={"on_at": now.strftime("%H:%M"), "off_at": earlier})
            assert r.status_code == 201, r.text

            async def on() -> bool:
                return await power("tdp1-01") is True

            await wait_for(on, 30, "tdp1-01 switched on again")
            bad = await c.post("/api/zones/tdp1/windows", json={"on_at": "25h", "off_at": "06:00"})
            assert bad.status_code == 422 and bad.json()["code"] == "invalid"
            assert (await c.delete(f"/api/zone-windows/{w['id']}")).status_code == 204
        finally:
            await asyncio.gather(*(u.stop() for u in units))


def test_last_switch_picks_the_latest_due_one() -> None:
    w = ZoneWindow(id=1, zone_id="z", on_at="06:00", off_at="21:30", days=[0, 1, 2, 3, 4])  # Mon-Fri
    mon_noon = datetime(2026, 12, 7, 12, 0, tzinfo=TIMEZONE)  # a Monday
    sw = last_switch(w, mon_noon)
    assert sw is not None and sw.on and sw.at_ms == int(mon_noon.replace(hour=6).timestamp() * 1000)
    sw = last_switch(w, mon_noon.replace(hour=5))  # before 06:00 on Monday: Sunday is off, none
    assert sw is None
    sw = last_switch(w, datetime(2026, 12, 8, 2, 0, tzinfo=TIMEZONE))  # Tuesday 02:00: Monday's 21:30 off
    assert sw is not None and not sw.on
    night = ZoneWindow(id=2, zone_id="z", on_at="18:00", off_at="05:00", days=list(range(7)))
    sw = last_switch(night, datetime(2026, 12, 8, 4, 0, tzinfo=TIMEZONE))
    assert sw is not None and sw.on  # on since yesterday 18:00


def test_a_switch_is_claimed_once_and_not_when_late(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'w.db'}")
    db.migrate(tmp_path)
    at = datetime(2026, 12, 7, 6, 0, tzinfo=TIMEZONE)
    t = [int(at.timestamp() * 1000) + 30_000]
    with db.session() as s:
        s.add(Zone(id="z", name="Z"))
        s.commit()
        s.add(ZoneWindow(zone_id="z", on_at="06:00", off_at="22:00", days=list(range(7))))
        s.commit()
    a = ZoneWindows(db, None, clock=lambda: t[0])  # type: ignore[arg-type]
    b = ZoneWindows(db, None, clock=lambda: t[0])  # type: ignore[arg-type]
    assert [sw.on for sw in a.due()] == [True]
    assert b.due() == [] and a.due() == []  # claimed: sent once, by one controller
    t[0] = int(at.replace(hour=22).timestamp() * 1000) + 11 * 60_000  # 11 min after 22:00: too late
    assert a.due() == []
    db.dispose()
