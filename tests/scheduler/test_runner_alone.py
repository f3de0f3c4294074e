"""The schedule runner with no controller at all: a database holding only the scheduler's tables,
a fake SlotAirer, the real APScheduler job store. It fires the slot once and hands what the
airer made to its ``handoff`` on the event loop."""

from __future__ import annotations

import asyncio
import threading
from datetime import timedelta
from pathlib import Path

import pytest
from sqlmodel import Session, select

from scheduler.clock import epoch_ms
from scheduler.models import Schedule, ScheduleRun
from scheduler.ports import Aired
from scheduler.runner import ScheduleService
from tests.scheduler.fakes import FakeAirer, scheduler_db
from tests.scheduler.ward import FAST, in_s, wait_until

pytestmark = pytest.mark.timeout(60)


async def test_the_runner_fires_through_the_port_and_hands_off_on_the_loop(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'sched.db'}"
    setup = scheduler_db(url)
    slot = in_s(4)
    with Session(setup, expire_on_commit=False) as s:
        row = Schedule(bulletin_id=1, targets={"all": True}, kind="once",
                       spec={"kind": "once", "at": slot.isoformat()}, created_by="op")
        s.add(row)
        s.commit()
        sid = row.id
    assert sid is not None
    airer = FakeAirer(answer=Aired(broadcasts=[("bc-1", epoch_ms(slot - timedelta(seconds=1)))]))
    svc = ScheduleService(lambda: scheduler_db(url), FAST, airer=airer, holder="alone")
    await svc.start()
    try:
        await wait_until(lambda: svc.leading, 5, "leading")
        svc.changed(sid)
        await wait_until(lambda: airer.handed, 10, "the handoff")
        await asyncio.sleep(0.3)  # nothing more comes
    finally:
        await svc.stop()
    assert [a.schedule_id for a in airer.asked] == [sid] and airer.asked[0].slot_ms == epoch_ms(slot)
    assert airer.handed == [Aired(broadcasts=[("bc-1", epoch_ms(slot) - 1000)])]
    assert airer.handed_on == [threading.get_ident()]  # called on the event loop, not a slot thread
    with Session(setup) as s:
        [run] = s.exec(select(ScheduleRun)).all()
    assert (run.status, run.fired_by, run.broadcast_ids) == ("aired", "alone", ["bc-1"])
    setup.dispose()
