"""Schedule fire jitter with many active schedules in the real job store (SQLite).

    python bench/schedule.py                     # 10,000 schedules
    python bench/schedule.py --schedules 2000
    python bench/schedule.py --burst 1000 --window 1    # 1,000 slots on one second

Each scenario: a fresh SQLite database with a small ward, N active daily schedules (random
times of day, none inside the measuring window) whose N jobs the runner puts into APScheduler's
SQLAlchemy job store when it takes the lease, then one-off probe schedules a few seconds ahead:
``single`` — one slot per second for ``--window`` seconds; then ``burst`` — ``--burst`` slots on
each second for ``--window`` seconds (wards schedule on round times). For every probe:

* ``fire_lag``    = when the slot **fired** − when its job was due (slot − lead). A slot has fired
  when its run row is committed together with its broadcasts and their delivery rows: from then it
  airs exactly once whatever happens to this controller (the runner's ``on_fire``);
* ``handoff_lag`` = when its broadcast was handed to delivery (on the event loop) − when the job
  was due: the fire plus the hop to the loop;
* ``cpu_ms`` (burst) = this process's CPU time from a burst second's due instant to its last
  handoff: what the burst costs, apart from waiting for a core on a busy machine.

The baseline is the same run with 10 schedules; ``--usual`` adds the loaded run again without
the firing wheel (``schedule.prepare_s = 0``: APScheduler's round hands each slot out at its
instant, the way before it). The last line printed is one JSON object (with the load average).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import random
import statistics
import sys
import tempfile
import time
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlmodel import select  # noqa: E402

from controller.api.schemas import ScheduleCreate  # noqa: E402
from controller.bulletins.models import AudioAsset, Bulletin  # noqa: E402
from controller.core.db import Database  # noqa: E402
from controller.fleet.models import Node, NodeZone, Zone  # noqa: E402
from controller.schedules.airer import ScheduleAirer  # noqa: E402
from controller.schedules.crud import create_schedule  # noqa: E402
from controller.schedules.engine import scheduler_engine  # noqa: E402
from devices.protocol import now_ms  # noqa: E402
from scheduler.clock import TIMEZONE  # noqa: E402
from scheduler.models import Schedule, ScheduleRun  # noqa: E402
from scheduler.runner import ScheduleService  # noqa: E402
from scheduler.settings import ScheduleSettings  # noqa: E402

logger = logging.getLogger("bench.schedule")
LEAD_S = 2.0


def stats(values: list[float]) -> dict[str, float]:
    if not values:
        return {"n": 0}
    v = sorted(values)
    p99 = v[min(len(v) - 1, int(len(v) * 0.99))]
    return {"n": len(v), "p50": round(statistics.median(v), 2), "p99": round(p99, 2),
            "max": round(v[-1], 2)}


def seed(db: Database, count: int, avoid: tuple[datetime, datetime]) -> None:
    with db.session() as s:
        s.add(Zone(id="z1", name="Z1"))
        s.add_all([Node(id="n1"), Node(id="n2")])
        s.flush()
        s.add_all([NodeZone(node_id="n1", zone_id="z1"), NodeZone(node_id="n2", zone_id="z1")])
        s.add(AudioAsset(sha256="b" * 64, size=240_000, duration_ms=60_000, codec="mp3", sample_rate=24_000,
                         bitrate_kbps=32, engine="bench", voice="vi", path="bb/none.mp3"))
        s.add(Bulletin(title="Bench", text="Bench", voice="vi", audio_sha256="b" * 64,
                       approved_sha256="b" * 64))
        s.commit()
        rng = random.Random(1)
        now = now_ms()
        lo, hi = (avoid[0].hour * 3600 + avoid[0].minute * 60, avoid[1].hour * 3600 + avoid[1].minute * 60)
        rows: list[Schedule] = []
        while len(rows) < count:
            sec = rng.randrange(86_400)
            if lo <= sec <= hi or (hi < lo and (sec >= lo or sec <= hi)):
                continue
            t = f"{sec // 3600:02d}:{sec // 60 % 60:02d}:{sec % 60:02d}"
            rows.append(Schedule(bulletin_id=1, targets={"all": False, "zones": ["z1"], "nodes": []},
                                 kind="daily",
                                 spec={"kind": "daily", "times": [t]}, version_at=now, created_at=now,
                                 updated_at=now, created_by="bench"))
        s.add_all(rows)
        s.commit()


def probe_schedules(db: Database, plan: list[tuple[datetime, str]]) -> dict[int, str]:
    """The probes as once-schedules: the first through the API's code (checked), the others as the
    same rows at their own instants, in one transaction (one commit each would take longer than the
    burst is ahead on a busy machine). Schedule id → its phase."""
    bodies = [ScheduleCreate.model_validate({"bulletin_id": 1, "target": {"zones": ["z1"]},
                                             "when": {"kind": "once", "at": slot.isoformat()}})
              for slot, _ in plan]
    with db.session() as s:
        row = create_schedule(s, bodies[0], created_by="bench")
        now = now_ms()
        rows = [Schedule(bulletin_id=1, targets=dict(row.targets), kind="once",
                         spec=b.when.model_dump(mode="json"), version_at=now, created_at=now, updated_at=now,
                         created_by="bench") for b in bodies[1:]]
        s.add_all(rows)
        s.commit()
        ids = [row.id] + [r.id for r in rows]
    return {sid: kind for sid, (_, kind) in zip(ids, plan, strict=True) if sid is not None}


async def scenario(count: int, burst: int, window_s: int, prepare_s: float = 5.0) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="lp-bench-sched-") as tmp:
        url = f"sqlite:///{Path(tmp) / 'bench.db'}"
        db = Database(url)
        db.migrate()
        start = datetime.now(tz=TIMEZONE)
        seed(db, count, (start - timedelta(minutes=2), start + timedelta(minutes=15)))
        handoff: dict[str, float] = {}
        fires: dict[int, float] = {}
        cpu_at: dict[str, float] = {}  # this process's CPU time at each handoff
        cpu_due: dict[int, float] = {}  # ... at each burst second's due instant (slot ms -> s)
        settings = ScheduleSettings(lead_s=LEAD_S, grace_s=300, lease_ttl_s=30, renew_s=5, reconcile_s=2,
                                    prepare_s=prepare_s)
        airer = ScheduleAirer(default_valid_s=600, owner="bench",
                              to_delivery=lambda bc, _at: (handoff.__setitem__(bc, time.time()),
                                                           cpu_at.__setitem__(bc, time.process_time())),
                              to_relays=lambda _relay: None)
        svc = ScheduleService(partial(scheduler_engine, url, settings.db_timeout_s), settings, airer=airer,
                              holder="bench")
        svc.on_fire = lambda sid, _slot, lag: fires.__setitem__(sid, lag * 1000)
        t0 = time.monotonic()
        await svc.start()
        while not svc.leading:
            await asyncio.sleep(0.02)
        takeover_s = time.monotonic() - t0
        probes = window_s * (1 + burst)
        ahead = timedelta(seconds=LEAD_S + 4 + 0.01 * probes)  # the runner adds each job meanwhile
        first = (datetime.now(tz=TIMEZONE) + ahead).replace(microsecond=0)
        plan = [(first + timedelta(seconds=i), "single") for i in range(window_s)]
        plan += [(first + timedelta(seconds=window_s + 1 + i // burst), "burst")
                 for i in range(window_s * burst)]
        phase = probe_schedules(db, plan)
        loop = asyncio.get_running_loop()
        for slot in sorted({s for s, k in plan if k == "burst"}):
            due = slot.timestamp() - LEAD_S - time.time()
            at = int(slot.timestamp() * 1000)
            loop.call_later(due, lambda at=at: cpu_due.__setitem__(at, time.process_time()))
        for sid in phase:
            svc.changed(sid)
        deadline = time.monotonic() + 2 * window_s + LEAD_S + 30 + 0.03 * probes
        while len(handoff) < len(plan) and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        with db.session() as s:
            runs = list(s.exec(select(ScheduleRun)).all())
        by_bc = {b: (r.schedule_id, r.slot_at) for r in runs for b in r.broadcast_ids}
        jobs = len(svc.sched.get_jobs())
        await svc.stop()
        db.dispose()
    out: dict[str, Any] = {"schedules": count + len(plan), "jobs_in_store": jobs,
                           "takeover_s": round(takeover_s, 2), "runs": len(runs),
                           "aired": sum(1 for b in by_bc if b in handoff)}
    for kind in ("single", "burst"):
        lags = [handoff[b] * 1000 - (slot_at - LEAD_S * 1000) for b, (sid, slot_at) in by_bc.items()
                if b in handoff and phase.get(sid) == kind]
        out[kind] = {"probes": sum(1 for k in phase.values() if k == kind),
                     **({"cpu_ms": burst_cpu(by_bc, cpu_at, cpu_due)} if kind == "burst" else {}),
                     "fire_lag_ms": stats([v for sid, v in fires.items() if phase.get(sid) == kind]),
                     "handoff_lag_ms": stats(lags)}
    return out


def burst_cpu(by_bc: dict[str, tuple[int, int]], cpu_at: dict[str, float],
              cpu_due: dict[int, float]) -> dict[str, float]:
    """This process's CPU from each burst second's due instant to its last handoff (ms): the work a
    burst costs, whatever else the machine runs (its wall-clock lag is that CPU plus waiting for a core)."""
    last: dict[int, float] = {}
    for b, (_, slot_at) in by_bc.items():
        if b in cpu_at and slot_at in cpu_due:
            last[slot_at] = max(last.get(slot_at, 0.0), cpu_at[b])
    return stats([(c - cpu_due[at]) * 1000 for at, c in last.items()])


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    baseline = await scenario(10, args.burst, args.window)
    logger.warning("baseline: %s", baseline)
    loaded = await scenario(args.schedules, args.burst, args.window)
    logger.warning("loaded: %s", loaded)
    usual: dict[str, Any] = {}
    if args.usual:
        usual = await scenario(args.schedules, args.burst, args.window, prepare_s=0)
        logger.warning("usual path (no wheel): %s", usual)
    ratio = {}
    for kind in ("single", "burst"):
        b, m = baseline[kind]["fire_lag_ms"].get("p50", 0), loaded[kind]["fire_lag_ms"].get("p50", 0)
        ratio[kind] = round(m / b, 2) if b else None
    return {"bench": "schedule", "db": "sqlite", "lead_s": LEAD_S, **loaded, "baseline": baseline,
            "fire_p50_vs_baseline": ratio, **({"usual_path": usual} if usual else {}),
            "load_avg": [round(x, 2) for x in os.getloadavg()]}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--schedules", type=int, default=10_000, help="active schedules in the job store")
    ap.add_argument("--burst", type=int, default=10, help="probe slots on the same second in the burst phase")
    ap.add_argument("--window", type=int, default=10, help="seconds of each probe phase")
    ap.add_argument("--usual", action="store_true",
                    help="also the loaded run without the firing wheel (schedule.prepare_s = 0: "
                         "APScheduler's "
                         "round hands the slots out at their instant), for comparison")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    result = asyncio.run(main_async(args))
    print(json.dumps(result, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
