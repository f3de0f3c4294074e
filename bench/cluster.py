"""Owned delivery with takeover: how long after its owner dies another controller delivers a broadcast.

Controller A (a real ``loaphuong serve`` process, started first: it also leads the schedules) and
controller B (in this process) on a fresh PostgreSQL database and one Mosquitto, ``--units``
simulated units in one zone (in this process, with a play log). A airs a bulletin to all of
them; once they play, A is SIGKILLed. Measured from the kill: until B holds the broadcast's
``broadcast_owner`` row (takeover), until B leads the schedules (the scheduler lease), until the
broadcast is ``done``; and how many units played it twice (from the play log). The baseline, in
the same run: a second A process airs the next bulletin and is stopped cleanly (SIGTERM: it gives
its rows back, so B takes over at its next round, without waiting for the lease to expire).

    python bench/cluster.py [--units 30] [--rounds 1]   (--rounds: of the clean-stop baseline)

The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import secrets
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
import psycopg  # noqa: E402

from devices.broker import BrokerProcess  # noqa: E402
from firmware_sim.playlog import PlayLog, double_plays, read_play_log  # noqa: E402
from tests.conftest import make_settings, running_controller  # noqa: E402
from tests.e2e.helpers import air, bulletin, provision, wait_broadcast, wait_for, wait_online  # noqa: E402
from tests.e2e.test_takeover import LONG, process_controller, units  # noqa: E402

logger = logging.getLogger("bench.cluster")
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"


async def _until(pred: Any, timeout_s: float, t0: float) -> float:
    """Seconds from ``t0`` until ``pred()`` holds (polled every 20 ms)."""
    deadline = time.monotonic() + timeout_s
    while not pred():
        if time.monotonic() > deadline:
            raise RuntimeError("timed out")
        await asyncio.sleep(0.02)
    return time.monotonic() - t0


async def _kill_round(sig: int, child: Any, api_a: httpx.AsyncClient, api_b: Any, sv_b: Any,
                      nodes: list[Any]) -> dict[str, float]:
    """A airs to every unit and gets ``sig`` while they play; B's times from the signal."""
    made = await bulletin(api_a, LONG)
    bid = await air(api_a, made["id"], {"zones": ["z"]})
    await wait_for(lambda: all(bid in n.player.started for n in nodes), 60, "units playing")
    os.kill(child.pid, sig)
    t0 = time.monotonic()
    me = sv_b.link.client_id
    out = {"takeover_s": await asyncio.to_thread(_poll_owner, sv_b.delivery.owner, bid, me, t0)}
    if sig == signal.SIGKILL:
        out["leader_s"] = await _until(lambda: sv_b.schedules.leading, 30, t0)
    await wait_broadcast(api_b, bid, 180)
    out["done_s"] = time.monotonic() - t0
    await child.wait()
    return out


async def _leads(api: httpx.AsyncClient) -> bool:
    return bool((await api.get("/api/scheduler")).json().get("leading"))


def _poll_owner(owner: Any, bid: str, me: str, t0: float) -> float:
    deadline = time.monotonic() + 60
    while (owner.owner_of(bid) or {}).get("holder") != me:
        if time.monotonic() > deadline:
            raise RuntimeError("B never took the broadcast over")
        time.sleep(0.02)
    return time.monotonic() - t0


async def run(url: str, args: argparse.Namespace, tmp: Path, port: int) -> dict[str, Any]:
    names = [f"u-{i:04d}" for i in range(args.units)]
    log = PlayLog(tmp / "play.jsonl")
    nodes = units(names, port, log)
    settings = make_settings(tmp / "b", port).model_copy(update={"database_url": url})
    killed: list[dict[str, float]] = []
    clean: list[dict[str, float]] = []
    try:
        # A first: it leads the schedules when B starts, and owns what it airs
        async with process_controller(tmp / "a-0", port, url) as (child, api_a):
            await provision(api_a, {"z": names})
            await wait_for(lambda: _leads(api_a), 30, "A leading the schedules")
            async with running_controller(settings) as (app_b, api_b):
                sv_b = app_b.state.services
                await asyncio.gather(*(n.start() for n in nodes))
                await wait_online(api_a, names, 60)
                await wait_online(api_b, names, 60)
                killed.append(await _kill_round(signal.SIGKILL, child, api_a, api_b, sv_b, nodes))
                for i in range(args.rounds):  # the baseline: A stopped cleanly gives its rows back
                    async with process_controller(tmp / f"a-{i + 1}", port, url) as (again, api_again):
                        await wait_online(api_again, names, 60)
                        clean.append(await _kill_round(signal.SIGTERM, again, api_again, api_b, sv_b, nodes))
    finally:
        await asyncio.gather(*(n.stop() for n in nodes))
        log.close()
    events = read_play_log(log.path)

    def med(rows: list[dict[str, float]], key: str) -> float:
        return round(statistics.median(r[key] for r in rows), 3)

    return {"bench": "cluster", "units": args.units, "rounds": args.rounds,
            "owner_killed": {k: med(killed, k) for k in ("takeover_s", "leader_s", "done_s")},
            "baseline_owner_stopped_cleanly": {k: med(clean, k) for k in ("takeover_s", "done_s")},
            "played_twice": len(double_plays(events)),
            "plays": sum(1 for e in events if e.event == "start"),
            "expected_plays": (1 + args.rounds) * args.units}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--units", type=int, default=30)
    ap.add_argument("--rounds", type=int, default=1)
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    logging.getLogger("controller.airing").setLevel(logging.INFO)
    name = f"lp_bench_{secrets.token_hex(4)}"
    admin = psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=3)
    admin.execute(f'CREATE DATABASE "{name}"')
    try:
        with tempfile.TemporaryDirectory() as d, BrokerProcess("mosquitto") as broker:
            url = f"postgresql://postgres@127.0.0.1:5432/{name}"
            result = asyncio.run(run(url, args, Path(d), broker.port))
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()
    print(json.dumps(result))


if __name__ == "__main__":
    main()
