"""The controller is killed (SIGKILL) just before its slots: after the restart the slot within
the grace period airs once, late; the one beyond it is reported missed — nothing silently lost."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from pathlib import Path

import pytest

from scheduler.clock import epoch_ms
from tests.scheduler.ward import (
    Sink,
    broadcasts,
    fast,
    in_s,
    make_ward,
    once,
    runner,
    runs,
    wait_until,
)

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(150)
async def test_killed_just_before_the_slots(sqlite_url: str) -> None:
    db = make_ward(sqlite_url)
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.scheduler.child", sqlite_url, "victim", cwd=ROOT,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL)
    try:
        assert child.stdout is not None
        # a child's start (imports, migrations) took over 20 s once on two busy cores
        line = await asyncio.wait_for(child.stdout.readline(), 60)
        assert line.strip() == b"leading"
        t0 = time.monotonic()
        # slots far enough ahead that a slow machine still kills the child before it fires
        slots = [in_s(6), in_s(9)]
        early, late = once(db, slots[0]), once(db, slots[1])  # the child fires them 1 s early (lead)
        await asyncio.sleep(1.2)  # it has picked both up (reconcile every 0.5 s) but fired none
        os.kill(child.pid, signal.SIGKILL)
        await asyncio.wait_for(child.wait(), 5)
    finally:
        if child.returncode is None:
            child.kill()
            await child.wait()
    assert runs(db) == []
    await asyncio.sleep(10.5 - (time.monotonic() - t0))  # both slots have passed
    sink = Sink()
    # back 4.5 s after one slot and 1.5 s after the other, however long the restart takes on a busy
    # machine: the runner judges lateness by this clock
    back_ms = epoch_ms(slots[0]) + 4500
    svc = runner(sqlite_url, fast(grace_s=3), sink=sink, holder="restarted", clock=lambda: back_ms)
    await svc.start()
    try:
        await wait_until(lambda: len(runs(db)) == 2, 6, "both slots handled after the restart")
        await asyncio.sleep(0.5)
    finally:
        await svc.stop()
    [r_early], [r_late] = runs(db, early), runs(db, late)
    assert r_early.status == "missed" and "beyond the 3 s grace" in r_early.reason
    assert r_late.status == "aired" and r_late.late_ms is not None and 0 < r_late.late_ms <= 3000
    assert (r_early.late_ms, r_late.late_ms) == (4500, epoch_ms(slots[0]) + 4500 - epoch_ms(slots[1]))
    assert [b.id for b in broadcasts(db)] == r_late.broadcast_ids == [b for b, _, _ in sink.aired]
    assert {r.fired_by for r in (r_early, r_late)} == {"restarted"}
    db.dispose()
