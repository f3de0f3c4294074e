"""A firing controller that cannot reach its broker (its ``reach()`` false: a partition, the
database still there) hands the scheduler lease back at once and does not seek it until it reaches
the broker again; the other controller fires the slot, once. Real SQLite, APScheduler's job store."""

from __future__ import annotations

import pytest

from tests.scheduler.ward import Sink, in_s, make_ward, once, runner, runs, wait_until

pytestmark = pytest.mark.timeout(60)


async def test_a_leader_without_its_broker_hands_the_lease_to_the_other(sqlite_url: str) -> None:
    db = make_ward(sqlite_url)
    broker = {"a": True}
    sink_a, sink_b = Sink(), Sink()
    a = runner(sqlite_url, sink=sink_a, holder="ctl-a", reach=lambda: broker["a"])
    b = runner(sqlite_url, sink=sink_b, holder="ctl-b")
    await a.start()
    try:
        await wait_until(lambda: a.leading, 5, "A to lead")
        await b.start()
        sid = once(db, in_s(6))
        broker["a"] = False  # A's probe is no longer echoed
        await wait_until(lambda: not a.leading and a.status()["broker_lost"], 3, "A to stop firing")
        await wait_until(lambda: b.leading, 3, "B to lead")  # at its next renewal: A handed the lease back
        assert a.lease.current()["holder"] == "ctl-b"
        await wait_until(lambda: runs(db, sid), 15, "the slot to fire")
        broker["a"] = True  # A reaches its broker again: it seeks the lease, but B holds it
        await wait_until(lambda: not a.cut_off, 3, "A to seek the lease again")
        await wait_until(lambda: sink_b.aired, 5, "B's handoff")
        [run] = runs(db, sid)
        assert (run.status, run.fired_by) == ("aired", "ctl-b")
        assert b.leading and not a.leading and sink_a.aired == [] and len(sink_b.aired) == 1
        assert not a.status()["broker_lost"]
    finally:
        await b.stop()
        await a.stop()
    db.dispose()
