"""Issue 13: "a slot that aired 30 s late after a controller restart is recorded late_ms 0".

Broker-free, SQLite: a slot is fired ``lead_s`` ahead (run aired, late_ms 0, the broadcast to play
at the slot); the controller is away across the slot, and after its restart the units report
``playing`` 30 s after the slot. Afterwards the run says late_ms 30000 and why; a slot whose units
started on time stays 0; a broadcast no slot made is left alone."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy.exc import OperationalError
from sqlmodel import select

import controller.schedules.lateness as lateness
from controller.airing.models import Broadcast, Delivery, DeliveryEvent, DeliveryState
from controller.core.db import Database
from controller.schedules.airer import ScheduleAirer
from controller.schedules.lateness import LateAirings, settle
from scheduler.clock import epoch_ms
from scheduler.firing import FireConfig, air_slot
from tests.fakes import until
from tests.scheduler.ward import Sink, broadcasts, in_s, make_ward, once, runs


def fire_ahead(db: Database, schedule_id: int, slot_ms: int) -> str:
    """The runner fires the slot 600 s ahead (pre-delivery) and records it aired, late 0."""
    airer = ScheduleAirer(default_valid_s=3600, owner="c1", to_delivery=Sink(), to_relays=lambda ids: None)
    cfg = FireConfig(grace_ms=900_000, holder="c1", clock=lambda: slot_ms - 600_000)
    res = air_slot(db.engine, cfg, airer, schedule_id=schedule_id, version=1, slot_ms=slot_ms,
                   may_fire=lambda: True)
    assert res.outcome == "aired", res
    [(bc_id, _)] = res.broadcasts
    return bc_id


def units_report_playing(db: Database, bc_id: str, at_ms: int) -> None:
    with db.session() as s:
        for node in ("n1", "n2"):
            d = Delivery(broadcast_id=bc_id, node_id=node, state=DeliveryState.PLAYING.value,
                         updated_at=at_ms)
            s.add(d)
            s.flush()
            assert d.id is not None
            s.add(DeliveryEvent(delivery_id=d.id, state=DeliveryState.PLAYING.value, at=at_ms + 40))
        s.commit()


def clear_deliveries(db: Database, bc_id: str) -> None:
    """create_broadcast wrote the deliveries (queued); the test writes what the units reported."""
    with db.session() as s:
        for d in s.exec(select(Delivery).where(Delivery.broadcast_id == bc_id)).all():
            s.delete(d)
        s.commit()


async def test_a_slot_aired_30_s_late_after_a_restart_records_its_lateness(tmp_path: Path) -> None:
    db = make_ward(f"sqlite:///{tmp_path / 'w.db'}")
    slot = in_s(3600)
    sid = once(db, slot)
    slot_ms = epoch_ms(slot)
    bc_id = fire_ahead(db, sid, slot_ms)
    [run] = runs(db, sid)
    assert (run.status, run.late_ms, run.broadcast_ids) == ("aired", 0, [bc_id])  # what it said before
    [bc] = broadcasts(db)
    assert bc.play_at == slot_ms
    assert settle(db, bc_id) is False  # not started yet: nothing recorded, look again later

    clear_deliveries(db, bc_id)
    units_report_playing(db, bc_id, slot_ms + 30_000)  # after the restart, 30 s after the slot
    late = LateAirings(db)
    late.changed(bc_id)  # what DeliveryService calls on each change
    await until(lambda: runs(db, sid)[0].late_ms != 0, "the run's lateness recorded", 30)
    [run] = runs(db, sid)
    assert run.status == "aired" and run.late_ms == 30_040
    assert "30.0 s after its slot" in run.reason
    late.changed(bc_id)  # settled: no second look, nothing changes
    assert runs(db, sid)[0].late_ms == 30_040
    db.dispose()


async def test_on_time_slots_and_other_broadcasts_keep_late_0(tmp_path: Path) -> None:
    db = make_ward(f"sqlite:///{tmp_path / 'w.db'}")
    slot = in_s(3600)
    sid = once(db, slot)
    slot_ms = epoch_ms(slot)
    bc_id = fire_ahead(db, sid, slot_ms)
    clear_deliveries(db, bc_id)
    units_report_playing(db, bc_id, slot_ms + 300)  # started in step, reported a little after
    assert settle(db, bc_id) is True
    assert runs(db, sid)[0].late_ms == 0 and runs(db, sid)[0].reason == ""
    assert settle(db, "b-not-a-slot") is True  # unknown broadcast: nothing to do
    with db.session() as s:  # a broadcast no slot made (the API's), playing late: no run to correct
        s.add(Broadcast(id="b-api", bulletin_id=1, audio_sha256="a" * 64, air_at=slot_ms, play_at=slot_ms,
                        expires_at=slot_ms + 60_000))
        s.commit()
    units_report_playing(db, "b-api", slot_ms + 60_000)
    assert settle(db, "b-api") is True and runs(db, sid)[0].late_ms == 0
    db.dispose()


async def test_a_look_that_found_the_database_away_is_tried_again(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 16: every report of a slot's broadcast came while the database was away (they waited
    in the writer), so no later change asks again: the failed look is retried, past a look that
    finds the database back but the reports not written yet, until the lateness is recorded."""
    db = make_ward(f"sqlite:///{tmp_path / 'w.db'}")
    slot = in_s(3600)
    sid = once(db, slot)
    slot_ms = epoch_ms(slot)
    bc_id = fire_ahead(db, sid, slot_ms)
    clear_deliveries(db, bc_id)
    looks: list[str] = []

    def flaky(db_: Database, broadcast_id: str) -> bool:
        looks.append(broadcast_id)
        if len(looks) == 1:
            raise OperationalError("SELECT 1", {}, Exception("connection refused"))
        return settle(db_, broadcast_id)

    monkeypatch.setattr(lateness, "settle", flaky)
    late = LateAirings(db, retry_s=0.05)
    late.changed(bc_id)  # the units' last report: the database is away
    await until(lambda: len(looks) >= 2, "a second look", 10)
    assert runs(db, sid)[0].late_ms == 0  # back, but the reports still wait in the writer
    units_report_playing(db, bc_id, slot_ms + 30_000)  # the writer writes them
    await until(lambda: runs(db, sid)[0].late_ms == 30_040, "the lateness recorded after all", 10)
    n = len(looks)
    late.changed(bc_id)  # settled: no more looks
    assert len(looks) == n
    db.dispose()
