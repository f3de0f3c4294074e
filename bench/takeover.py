"""Scheduler takeover: how long after the leading controller is SIGKILLed a standby fires.

A schedule runner in a child process takes the lease on a fresh PostgreSQL database (SQLite with
``--sqlite``); a standby runner waits in this process; the child is SIGKILLed and the time until
the standby leads is measured. Run for the default lease settings and, as the baseline, for the
previous ones (ttl 15 s, renew 5 s: 13.9 s measured in the two-controller trial of issue 16).

    python bench/takeover.py [--rounds 3] [--sqlite]

The last line is one JSON object: per setting, takeover seconds (each round, max) and the bound
ttl + renew.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import secrets
import signal
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from scheduler.settings import ScheduleSettings  # noqa: E402
from tests.scheduler.ward import make_ward, runner  # noqa: E402

logger = logging.getLogger("bench.takeover")
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"


async def one_round(url: str, settings: ScheduleSettings) -> float:
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.scheduler.child", url, f"victim-{secrets.token_hex(2)}",
        settings.model_dump_json(), cwd=ROOT, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL)
    standby = runner(url, settings, holder=f"standby-{secrets.token_hex(2)}")
    try:
        assert child.stdout is not None
        if (await asyncio.wait_for(child.stdout.readline(), 60)).strip() != b"leading":
            raise RuntimeError("the child never led")
        await standby.start()
        await asyncio.sleep(settings.renew_s * 1.5)  # the standby has tried and been refused
        if standby.leading:
            raise RuntimeError("the standby leads while the child holds the lease")
        os.kill(child.pid, signal.SIGKILL)
        killed = time.monotonic()
        deadline = killed + settings.lease_ttl_s + settings.renew_s + 30
        while not standby.leading:
            if time.monotonic() > deadline:
                raise RuntimeError("no takeover")
            await asyncio.sleep(0.02)
        return time.monotonic() - killed
    finally:
        if child.returncode is None:
            child.kill()
            await child.wait()
        await standby.stop()


def fresh_url(sqlite: bool, tmp: Path) -> tuple[str, str | None]:
    if sqlite:
        return f"sqlite:///{tmp / f'{secrets.token_hex(3)}.db'}", None
    import psycopg

    name = f"lp_bench_{secrets.token_hex(4)}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as c:
        c.execute(f'CREATE DATABASE "{name}"')
    return f"postgresql://postgres@127.0.0.1:5432/{name}", name


def drop(name: str | None) -> None:
    if name is None:
        return
    import psycopg

    with psycopg.connect(PG_ADMIN, autocommit=True) as c:
        c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def measure(settings: ScheduleSettings, rounds: int, sqlite: bool, tmp: Path) -> dict[str, object]:
    times = []
    for _ in range(rounds):
        url, name = fresh_url(sqlite, tmp)
        try:
            make_ward(url)
            times.append(round(await one_round(url, settings), 2))
        finally:
            drop(name)
    return {"ttl_s": settings.lease_ttl_s, "renew_s": settings.renew_s, "takeover_s": times,
            "max_s": max(times), "bound_s": settings.lease_ttl_s + settings.renew_s}


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--sqlite", action="store_true")
    args = ap.parse_args()
    rounds = max(1, min(args.rounds, 10))
    with tempfile.TemporaryDirectory() as d:
        now = await measure(ScheduleSettings(), rounds, args.sqlite, Path(d))
        before = await measure(ScheduleSettings(lease_ttl_s=15, renew_s=5), rounds, args.sqlite, Path(d))
    print(json.dumps({"bench": "takeover", "db": "sqlite" if args.sqlite else "postgresql",
                      "defaults": now, "baseline_previous_defaults": before}))


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    asyncio.run(main())
