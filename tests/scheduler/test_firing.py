"""scheduler/firing.py alone: the slot's time logic with a fake SlotAirer and a fake clock.

Only the scheduler's own tables exist here (no bulletin, unit or broadcast table): the scheduler
decides aired / late / missed / skipped / duplicate and records the run; what airs is the airer's.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from scheduler.firing import FireConfig, air_slot, fail_stuck_runs
from scheduler.models import Schedule, ScheduleRun
from scheduler.ports import Aired
from tests.scheduler.fakes import SLOT, FakeAirer, scheduler_db


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    eng = scheduler_db(f"sqlite:///{tmp_path / 'sched.db'}")
    yield eng
    eng.dispose()


def schedule(engine: Engine, **kw: object) -> int:
    fields: dict[str, object] = {"bulletin_id": 1, "targets": {"all": False, "zones": ["z1"], "nodes": []},
                                 "kind": "daily", "spec": {"kind": "daily", "times": ["06:00"]},
                                 "created_by": "op", **kw}
    row = Schedule.model_validate(fields)
    with Session(engine, expire_on_commit=False) as s:
        s.add(row)
        s.commit()
        assert row.id is not None
        return row.id


def fire(engine: Engine, airer: FakeAirer, sid: int, *, now: int, slot: int = SLOT, version: int = 1,
         grace_ms: int = 60_000, leader: bool = True) -> str:
    cfg = FireConfig(grace_ms=grace_ms, holder="ctl-a", clock=lambda: now)
    res = air_slot(engine, cfg, airer, schedule_id=sid, version=version, slot_ms=slot,
                   may_fire=lambda: leader)
    return res.outcome


def runs(engine: Engine) -> list[ScheduleRun]:
    with Session(engine) as s:
        return list(s.exec(select(ScheduleRun)).all())


def test_an_on_time_slot_is_asked_of_the_airer_once(engine: Engine) -> None:
    sid = schedule(engine, repeat=3, interval_s=60, priority="priority", valid_for_s=120)
    airer = FakeAirer()
    assert fire(engine, airer, sid, now=SLOT - 1000) == "aired"
    assert fire(engine, airer, sid, now=SLOT - 500) == "duplicate"  # the UNIQUE slot row
    [slot] = airer.asked
    assert (slot.schedule_id, slot.slot_ms, slot.bulletin_id, slot.priority, slot.created_by) == (
        sid, SLOT, 1, "priority", "op")
    assert slot.spaced and slot.plays() == [SLOT, SLOT + 60_000, SLOT + 120_000] and slot.late_ms == 0
    assert dict(slot.targets) == {"all": False, "zones": ["z1"], "nodes": []} and slot.valid_for_s == 120
    [run] = runs(engine)
    assert (run.status, run.late_ms, run.reason, run.broadcast_ids, run.fired_by) == (
        "aired", 0, "", ["bc-1"], "ctl-a")
    with Session(engine) as s:
        assert s.get(Schedule, sid).last_slot_at == SLOT  # type: ignore[union-attr]


def test_late_slots_air_marked_late_until_the_grace_and_are_missed_beyond(engine: Engine) -> None:
    late, gone = schedule(engine), schedule(engine)
    airer = FakeAirer()
    assert fire(engine, airer, late, now=SLOT + 2500, grace_ms=3000) == "aired"
    assert fire(engine, airer, gone, now=SLOT + 3001, grace_ms=3000) == "missed"
    assert [a.schedule_id for a in airer.asked] == [late]
    by_id = {r.schedule_id: r for r in runs(engine)}
    assert by_id[late].reason == "aired 2.5 s after its slot (within the grace period)"
    assert by_id[late].late_ms == 2500
    assert by_id[gone].status == "missed" and "beyond the 3 s grace" in by_id[gone].reason


def test_a_relay_slot_joins_late_while_its_window_is_open(engine: Engine) -> None:
    relay = {"url": "http://radio.example/live.m3u8", "mode": "node_fetch", "duration_s": 600}
    sid, past = (schedule(engine, bulletin_id=None, relay=relay) for _ in range(2))
    airer = FakeAirer(answer=Aired(relays=[f"relay-s{sid}-{SLOT}"]))
    assert fire(engine, airer, sid, now=SLOT + 120_000, grace_ms=1000) == "aired"
    assert fire(engine, airer, past, now=SLOT + 596_000, grace_ms=1000) == "missed"  # window − 5 s
    [slot] = airer.asked
    assert slot.relay == relay and slot.bulletin_id is None
    run = next(r for r in runs(engine) if r.schedule_id == sid)
    assert run.broadcast_ids == [f"relay-s{sid}-{SLOT}"]
    assert run.reason == "relay joined 120.0 s after its slot (its window was still open)"


def test_exception_dates_changed_deleted_and_not_leading(engine: Engine) -> None:
    holiday = schedule(engine, exceptions=["2026-12-03"])
    changed, off = schedule(engine, version=2), schedule(engine, enabled=False)
    airer = FakeAirer()
    assert fire(engine, airer, holiday, now=SLOT) == "skipped"
    assert fire(engine, airer, changed, now=SLOT, version=1) == "stale"
    assert fire(engine, airer, off, now=SLOT) == "gone"
    assert fire(engine, airer, changed, now=SLOT, version=2, leader=False) == "not-leader"
    assert airer.asked == []
    [run] = runs(engine)
    assert (run.schedule_id, run.status) == (holiday, "skipped") and "2026-12-03" in run.reason


def test_a_refusal_fails_the_run_with_the_airers_reason(engine: Engine) -> None:
    sid = schedule(engine)
    why = "bulletin 1 was rejected (1 of 2 aired)"
    airer = FakeAirer(answer=Aired(broadcasts=[("bc-1", SLOT)], failure=why))
    assert fire(engine, airer, sid, now=SLOT - 10) == "failed"
    [run] = runs(engine)
    assert (run.status, run.reason, run.broadcast_ids) == ("failed", why, ["bc-1"])


def test_a_controller_dying_mid_slot_leaves_what_it_made_on_the_run(engine: Engine) -> None:
    sid = schedule(engine)
    airer = FakeAirer(crash_after=["bc-1"])
    with pytest.raises(RuntimeError):
        fire(engine, airer, sid, now=SLOT)
    [run] = runs(engine)
    assert (run.status, run.broadcast_ids) == ("firing", ["bc-1"])  # the claim committed with bc-1
    assert fail_stuck_runs(engine, older_than_ms=-60_000) == 1
    [run] = runs(engine)
    assert run.status == "failed" and "(1 created: bc-1)" in run.reason
