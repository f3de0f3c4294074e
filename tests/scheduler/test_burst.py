"""A burst: many slots on one second (wards schedule on round times). The runner airs each once,
the scheduler round writes its job updates in one transaction, and the slots go to the airer in
a few batches (each batch one claiming transaction), not one task and commit per slot."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlmodel import Session, select

from scheduler.clock import epoch_ms
from scheduler.jobs import BatchedJobStore
from scheduler.models import Schedule, ScheduleRun
from scheduler.runner import ScheduleService
from tests.scheduler.fakes import FakeAirer, scheduler_db
from tests.scheduler.ward import fast, in_s, wait_until

pytestmark = pytest.mark.timeout(90)

BURST = 60


async def test_a_burst_of_slots_on_one_second_airs_each_once_in_few_batches(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'sched.db'}"
    setup = scheduler_db(url)
    slot = in_s(6)  # time to write the schedules and hand them to the runner first
    with Session(setup, expire_on_commit=False) as s:
        rows = [Schedule(bulletin_id=1, targets={"all": True}, kind="once",
                         spec={"kind": "once", "at": slot.isoformat()}, created_by="op")
                for _ in range(BURST)]
        s.add_all(rows)
        s.commit()
        ids = [r.id for r in rows]
    airer = FakeAirer()
    # APScheduler's own round (the firing wheel, taking slots ahead: tests/scheduler/test_wheel.py)
    svc = ScheduleService(lambda: scheduler_db(url), fast(prepare_s=0), airer=airer, holder="burst")
    batches: list[int] = []
    on_batch = svc._on_batch

    def counting(batch: list[tuple[int, int, list[object]]]) -> None:
        batches.append(len(batch))
        on_batch(batch)  # type: ignore[arg-type]

    svc.executor._on_batch = counting  # type: ignore[assignment]
    store = svc.sched._jobstores["default"]
    assert isinstance(store, BatchedJobStore)
    await svc.start()
    try:
        await wait_until(lambda: svc.leading, 10, "leading")
        for sid in ids:
            assert sid is not None
            svc.changed(sid)
        await wait_until(lambda: len(airer.handed) == BURST, 60, f"{BURST} handoffs")
        flushes = store.flushes
    finally:
        await svc.stop()
    with Session(setup) as s:
        runs = s.exec(select(ScheduleRun)).all()
    assert sorted(r.schedule_id for r in runs) == sorted(ids)  # each slot once
    assert {(r.status, r.slot_at) for r in runs} == {("aired", epoch_ms(slot))}
    assert sum(batches) == BURST and len(batches) < BURST // 4, batches  # a few batches, not 60 tasks
    assert flushes < BURST // 4, flushes  # the round's job removals: a few transactions, not 60
    setup.dispose()
