"""The firing wheel (scheduler/wheel.py, scheduler/prepared.py): slots taken from the job store
ahead of their instant, built then, fired at the instant as one prepared batch; what changed after
building is aired the usual way; a leader that dies holding slots taken ahead loses none and
doubles none (the next leader's gap repair hands them out again, the run row admits each once)."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlmodel import Session, select

from scheduler.clock import epoch_ms
from scheduler.models import Schedule, ScheduleRun
from scheduler.runner import ScheduleService
from tests.scheduler.fakes import FakeAirer, scheduler_db
from tests.scheduler.ward import broadcasts, fast, in_s, make_ward, once, runner, runs, wait_until

pytestmark = pytest.mark.timeout(90)

#: no takeover wanted here: a lease and database timeouts that a busy machine does not lose
AHEAD = fast(prepare_s=5, lease_ttl_s=6, renew_s=2, db_timeout_s=3)


def _onces(url: str, n: int, at_s: float) -> tuple[list[int], int]:
    setup = scheduler_db(url)
    slot = in_s(at_s)
    with Session(setup, expire_on_commit=False) as s:
        rows = [Schedule(bulletin_id=1, targets={"all": True}, kind="once",
                         spec={"kind": "once", "at": slot.isoformat()}, created_by="op") for _ in range(n)]
        s.add_all(rows)
        s.commit()
        ids = [r.id for r in rows if r.id is not None]
    setup.dispose()
    return ids, epoch_ms(slot)


def _service(url: str, airer: FakeAirer) -> tuple[ScheduleService, list[int], list[float]]:
    svc = ScheduleService(lambda: scheduler_db(url), AHEAD, airer=airer, holder="wheel")
    handed_out: list[int] = []  # slots APScheduler's own round handed out (the wheel took none of them)
    on_batch = svc._on_batch

    def counting(batch: list[tuple[int, int, list[object]]]) -> None:
        handed_out.append(len(batch))
        on_batch(batch)  # type: ignore[arg-type]

    svc.executor._on_batch = counting  # type: ignore[assignment]
    lags: list[float] = []
    svc.on_fire = lambda _sid, _slot, lag: lags.append(lag)
    return svc, handed_out, lags


def _runs(url: str) -> list[ScheduleRun]:
    eng = scheduler_db(url)
    with Session(eng) as s:
        out = list(s.exec(select(ScheduleRun)).all())
    eng.dispose()
    return out


async def test_a_burst_is_taken_ahead_built_and_fired_as_one_prepared_batch(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'sched.db'}"
    ids, slot_ms = _onces(url, 60, 7)
    airer = FakeAirer()
    svc, handed_out, lags = _service(url, airer)
    await svc.start()
    try:
        await wait_until(lambda: svc.leading, 10, "leading")
        for sid in ids:
            svc.changed(sid)
        assert svc.wheel is not None
        await wait_until(lambda: svc.wheel is not None and svc.wheel.pending() == 60, 10, "taken ahead")
        assert airer.written == [] and len(airer.prepared) == 60  # built, nothing written yet
        await wait_until(lambda: len(airer.handed) == 60, 30, "60 handoffs")
        fired = svc.wheel.fired
    finally:
        await svc.stop()
    assert sorted(sl.schedule_id for sl in airer.written) == sorted(ids)  # each once, as prepared
    assert handed_out == [] and fired == 1  # one group at one instant; APScheduler handed out nothing
    assert min(lags) >= 0  # fired at its instant (slot - lead), not when it was built
    runs = _runs(url)
    assert sorted(r.schedule_id for r in runs) == sorted(ids)
    assert {(r.status, r.slot_at, r.late_ms) for r in runs} == {("aired", slot_ms, 0)}


async def test_what_changed_after_building_is_aired_the_usual_way(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'sched.db'}"
    ids, slot_ms = _onces(url, 10, 7)
    airer = FakeAirer()
    svc, _, _ = _service(url, airer)
    await svc.start()
    try:
        await wait_until(lambda: svc.leading, 10, "leading")
        for sid in ids:
            svc.changed(sid)
        await wait_until(lambda: svc.wheel is not None and svc.wheel.pending() == 10, 10, "taken ahead")
        airer.changed = True  # say, a bulletin rejected since: the airer's inputs are not what it built from
        await wait_until(lambda: len(airer.handed) == 10, 30, "10 handoffs")
    finally:
        await svc.stop()
    assert airer.written == []  # the prepared rows were not written ...
    assert sorted(sl.schedule_id for sl in airer.asked[-10:]) == sorted(ids)  # ... air_many judged them anew
    assert sorted((r.schedule_id, r.slot_at) for r in _runs(url)) == sorted((i, slot_ms) for i in ids)


async def test_a_schedule_disabled_after_building_does_not_air(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'sched.db'}"
    ids, _ = _onces(url, 10, 7)
    airer = FakeAirer()
    svc, _, _ = _service(url, airer)
    await svc.start()
    try:
        await wait_until(lambda: svc.leading, 10, "leading")
        for sid in ids:
            svc.changed(sid)
        await wait_until(lambda: svc.wheel is not None and svc.wheel.pending() == 10, 10, "taken ahead")
        eng = scheduler_db(url)
        with Session(eng) as s:  # written elsewhere (another controller): this one is not told
            row = s.get(Schedule, ids[3])
            assert row is not None
            row.enabled, row.version = False, row.version + 1
            s.add(row)
            s.commit()
        eng.dispose()
        await wait_until(lambda: len(airer.handed) == 9, 30, "9 handoffs")
    finally:
        await svc.stop()
    assert airer.written == []  # the batch no longer matched the rows: none of it written as built
    assert sorted(r.schedule_id for r in _runs(url)) == sorted(set(ids) - {ids[3]})


async def test_a_leader_killed_holding_slots_taken_ahead_loses_none_and_doubles_none(sqlite_url: str) -> None:
    db = make_ward(sqlite_url)
    settings = fast(prepare_s=5, grace_s=15)  # a quick takeover; on a busy machine it stays within grace
    ids = [once(db, in_s(5)) for _ in range(5)]
    a, b = runner(sqlite_url, settings, holder="ctl-a"), runner(sqlite_url, settings, holder="ctl-b")
    await a.start()
    try:
        await wait_until(lambda: a.leading, 10, "a leads")
        await b.start()
        for sid in ids:
            a.changed(sid)
        await wait_until(lambda: a.wheel is not None and a.wheel.pending() == 5, 10, "taken ahead by a")
        assert runs(db) == []
        await a.stop(release=False)  # killed: its jobs already point past the slots
        await wait_until(lambda: b.leading, 30, "b takes over")
        await wait_until(lambda: len(runs(db)) == 5, 30, "the five slots")
    finally:
        await a.stop()
        await b.stop()
    got = runs(db)
    assert sorted(r.schedule_id for r in got) == sorted(ids) and len(broadcasts(db)) == 5  # once each
    assert {(r.status, r.fired_by) for r in got} == {("aired", "ctl-b")}
    db.dispose()
