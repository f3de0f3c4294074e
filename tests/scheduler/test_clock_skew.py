"""Issue 16: controllers whose clocks are 30 s off the database's (and 60 s off each other) share
the schedule lease on PostgreSQL without stealing it, take it over from a dead holder within the
lease's own time (not the skew's), and fire each slot once.

Each controller's schedule runner is a process of its own (tests/scheduler/child.py) with its
wall clock skewed (``LP_CLOCK_OFFSET_S``: ``time.time`` and the job scheduler's ``datetime.now``);
the lease's expiry is the database's clock (scheduler/lease.py), its local validity the monotonic
one. If the lease compared expiry on a controller's own clock, the controller 30 s fast would
steal a live lease at once, and one 30 s slow would wait a minute to take over a dead one.

What a skewed controller does *not* fix, documented in docs/deploy.md: it fires a slot by its
own clock (30 s early when 30 s fast), and the units, which sync their clocks to it, play it then."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from scheduler.lease import Lease
from tests.scheduler.ward import FAST, in_s, make_ward, once, runs, wait_until

pytestmark = [pytest.mark.postgres, pytest.mark.slow, pytest.mark.timeout(240)]

ROOT = Path(__file__).resolve().parents[2]
SKEW_S = 30.0
WATCH_S = 5.0  # a standby watched this long (4 lease lives, 16 renewals) must not take a live lease
TAKEOVER_S = 8.0  # lease ttl 1.2 s + renewals + the child's reconcile: far below the 30 s skew


@asynccontextmanager
async def child(url: str, holder: str, offset_s: float) -> AsyncIterator[asyncio.subprocess.Process]:
    """A schedule runner with its clock ``offset_s`` off, once it has started (its log says so)."""
    env = {**os.environ, "LP_CLOCK_OFFSET_S": str(offset_s)}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.scheduler.child", url, holder, cwd=ROOT, env=env,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
    assert proc.stderr is not None
    drain: asyncio.Task[None] | None = None
    try:
        seen: list[str] = []
        while not any(f"schedule runner {holder} started" in line for line in seen):
            line = await asyncio.wait_for(proc.stderr.readline(), 60)  # a busy machine's start
            assert line, f"{holder} exited: {seen}"
            seen.append(line.decode(errors="replace"))
        assert offset_s == 0 or any("wall clock" in line for line in seen), seen
        drain = asyncio.create_task(_drain(proc.stderr))
        yield proc
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        if drain is not None:
            drain.cancel()


async def _drain(stream: asyncio.StreamReader) -> None:
    while await stream.readline():
        pass


async def kill(proc: asyncio.subprocess.Process) -> float:
    os.kill(proc.pid, signal.SIGKILL)
    await asyncio.wait_for(proc.wait(), 10)
    return time.monotonic()


async def holds_alone(lease: Lease, holder: str, watch_s: float) -> None:
    """``holder`` keeps the lease, in the same epoch (never taken from it), for ``watch_s``."""
    epoch = lease.current()["epoch"]
    end = time.monotonic() + watch_s
    while time.monotonic() < end:
        row = lease.current()
        assert (row["holder"], row["epoch"]) == (holder, epoch), row
        await asyncio.sleep(0.1)


async def test_controllers_30s_off_the_database_share_the_lease_and_fire_each_slot_once(pg_url: str) -> None:
    db = make_ward(pg_url)
    lease = Lease(db.engine, "observer", FAST.lease_ttl_s)  # reads the row, never takes it
    async with child(pg_url, "on-time", 0) as on_time:
        await wait_until(lambda: lease.current()["holder"] == "on-time", 30, "on-time leading")
        async with child(pg_url, "fast", +SKEW_S) as fast_one:
            await holds_alone(lease, "on-time", WATCH_S)  # the fast one sees a live lease as live
            s1 = once(db, in_s(4))
            await wait_until(lambda: [(r.status, r.fired_by) for r in runs(db, s1)] == [("aired", "on-time")],
                             15, "slot 1 aired by the on-time controller")
            # due 36 s from now by the database: 6 s ahead by the fast controller's clock
            s2 = once(db, in_s(SKEW_S + 6))
            dead_at = await kill(on_time)
            await wait_until(lambda: lease.current()["holder"] == "fast", TAKEOVER_S,
                             "the fast one taking over")
            fast_took_s = time.monotonic() - dead_at
            await wait_until(lambda: [r.status for r in runs(db, s2)] == ["aired"], 20,
                             "slot 2 aired by the fast controller (by its own clock)")
            [r2] = runs(db, s2)
            assert r2.fired_by == "fast" and r2.late_ms == 0, r2  # on time by its clock
            async with child(pg_url, "slow", -SKEW_S):
                await holds_alone(lease, "fast", WATCH_S)
                dead_at = await kill(fast_one)
                await wait_until(lambda: lease.current()["holder"] == "slow", TAKEOVER_S,
                                 "the slow one taking over the fast one's lease")
                slow_took_s = time.monotonic() - dead_at
                await asyncio.sleep(2 * FAST.reconcile_s + FAST.lead_s)  # it has looked at every slot
                assert [(r.schedule_id, r.status) for r in runs(db)] == [(s1, "aired"), (s2, "aired")]
    assert fast_took_s < TAKEOVER_S and slow_took_s < TAKEOVER_S  # the lease's time, not the skew's
    db.dispose()
