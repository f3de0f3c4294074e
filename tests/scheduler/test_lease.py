"""Several controllers, one database: exactly one fires, another takes over when it dies, and
no slot is aired twice — on SQLite and on PostgreSQL."""

from __future__ import annotations

import asyncio
import threading
import time
from datetime import timedelta

import pytest

from controller.schedules.engine import scheduler_engine
from scheduler.firing import FireConfig, air_slot
from scheduler.lease import Lease
from tests.scheduler.proxy import CuttableProxy
from tests.scheduler.ward import (
    FAST,
    Sink,
    add,
    airer,
    broadcasts,
    fast,
    in_s,
    make_ward,
    once,
    runner,
    runs,
    wait_until,
)

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def url(request: pytest.FixtureRequest) -> str:
    return str(request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "pg_url"))


#: What a machine whose cores are busy adds to a takeover (threads and the event loop run late);
#: the lease TTL + 2 renewals + this stays under FAST.grace_s, so the gap's slot still airs.
TAKEOVER = FAST.model_copy(update={"grace_s": 15})


async def test_one_fires_the_other_takes_over_when_it_dies(url: str) -> None:
    db = make_ward(url)
    base = in_s(2)
    times = [(base + timedelta(milliseconds=1500 * k)).strftime("%H:%M:%S") for k in range(5)]
    sid = add(db, {"kind": "daily", "times": times})
    # a grace long enough for a takeover on a busy machine (renewals taking seconds): the point is
    # each slot exactly once, by the leader or by the one taking over, never both; not the timing
    a, b = runner(url, TAKEOVER, holder="ctl-a"), runner(url, TAKEOVER, holder="ctl-b")
    both: list[float] = []
    stop = threading.Event()

    def watch() -> None:  # the two must never both believe they hold the lease
        while not stop.is_set():
            if a.lease.valid() and b.lease.valid():
                both.append(time.time())
            time.sleep(0.005)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    await a.start()
    await b.start()
    try:
        await wait_until(lambda: a.leading or b.leading, 3, "a leader")
        leader, standby = (a, b) if a.leading else (b, a)
        await wait_until(lambda: len(runs(db, sid)) == 2, 8, "two slots fired by the leader")
        assert not standby.leading
        await leader.stop(release=False)  # killed: its lease must run out before anyone else fires
        await wait_until(lambda: standby.leading, 30, "the takeover")
        await wait_until(lambda: len(runs(db, sid)) == 5, 30, "the other three slots")
        await asyncio.sleep(0.5)
    finally:
        stop.set()
        await a.stop()
        await b.stop()
    got = runs(db, sid)
    assert len({r.slot_at for r in got}) == 5 and len(broadcasts(db)) == 5  # each slot exactly once
    assert {r.status for r in got} == {"aired"}  # a slot in the takeover gap airs late, within grace
    assert [r.fired_by for r in got[:2]] == [leader.holder] * 2 and got[-1].fired_by == standby.holder
    assert both == []
    db.dispose()


async def test_the_slot_row_stops_a_second_airing_even_in_split_brain(url: str) -> None:
    """Two controllers both convinced they fire (a clock jump, a paused VM): the UNIQUE slot row
    still lets only one create broadcasts."""
    db = make_ward(url)
    slot = in_s(30)
    sid = once(db, slot)
    engines = [scheduler_engine(url, 2), scheduler_engine(url, 2)]
    results: list[str] = []
    go = threading.Barrier(2)

    def fire(i: int) -> None:
        go.wait()
        res = air_slot(engines[i], FireConfig(grace_ms=5000, holder=f"ctl-{i}"), airer(),
                       schedule_id=sid, version=1, slot_ms=int(slot.timestamp() * 1000),
                       may_fire=lambda: True)
        results.append(res.outcome)

    threads = [threading.Thread(target=fire, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    assert sorted(results) == ["aired", "duplicate"]
    assert len(runs(db, sid)) == 1 and len(broadcasts(db)) == 1
    for e in engines:
        e.dispose()
    db.dispose()


def test_lease_row_semantics(url: str) -> None:
    db = make_ward(url)
    eng = scheduler_engine(url, 2)
    a, b = Lease(eng, "ctl-a", ttl_s=0.6), Lease(eng, "ctl-b", ttl_s=0.6)
    assert a.try_acquire() and a.valid()
    assert not b.try_acquire() and not b.valid()
    first = a.current()
    assert first["holder"] == "ctl-a" and first["epoch"] == 1
    assert a.try_acquire()  # renewing keeps the epoch
    assert a.current()["epoch"] == 1
    time.sleep(0.7)
    assert not a.valid()  # without renewals the holder stops trusting its lease by itself
    assert b.try_acquire() and b.current() | {"db_now": None, "expires_at": None, "acquired_at": None} == {
        "holder": "ctl-b", "epoch": 2, "db_now": None, "expires_at": None, "acquired_at": None}
    b.release()
    assert a.try_acquire() and a.current()["epoch"] == 3  # a released lease is free at once
    eng.dispose()
    db.dispose()


@pytest.mark.postgres
async def test_postgresql_unreachable_for_a_while_then_the_scheduler_recovers(pg_url: str) -> None:
    """The link to PostgreSQL is cut (connections dropped, new ones refused) across a slot: the
    leader stops firing, then takes the lease again and airs the slot late, once."""
    db = make_ward(pg_url)
    proxy = CuttableProxy("127.0.0.1", 5432)
    await proxy.start()
    via_proxy = pg_url.replace("127.0.0.1:5432", f"127.0.0.1:{proxy.port}")
    sid = once(db, in_s(3))
    sink = Sink()
    svc = runner(via_proxy, fast(grace_s=20), sink=sink)
    await svc.start()
    try:
        await wait_until(lambda: svc.leading, 5, "leading")
        await proxy.cut()
        await wait_until(lambda: not svc.leading, 4, "the leader to stop firing")
        await asyncio.sleep(3)  # the slot passes while the database is unreachable
        assert runs(db, sid) == [] and sink.aired == []
        await proxy.restore()
        await wait_until(lambda: sink.aired, 10, "the slot aired after the outage")
        await asyncio.sleep(0.5)
    finally:
        await svc.stop()
        await proxy.cut()
    [run] = runs(db, sid)
    assert run.status == "aired" and run.late_ms is not None and run.late_ms > 0 and len(sink.aired) == 1
    db.dispose()
