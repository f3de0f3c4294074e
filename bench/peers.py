"""Controllers as peers: how long after controller A provisions a unit controller B knows it.

Two whole controllers (in this process) on a fresh PostgreSQL database and one Mosquitto. For
each of ``--units`` units, from the moment A's ``POST /api/nodes`` is sent: the time until A
answers, and until B's presence knows the unit (looked at every millisecond). Both controllers
share this process's event loop, so B's reload competes with A's request for it. The baseline,
in the same run: B's LISTEN connection is killed (pg_terminate_backend) and kept down, so B
learns only from its fallback poll of the change log (``database.feed_poll_s``, 10 s by
default); before the change feed B never learned until it restarted.

    python bench/peers.py [--units 50] [--baseline-units 5] [--poll-s 10]

The last line is one JSON object: A's answer time, B's notified and poll-only times (p50, p99, max).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import psycopg  # noqa: E402

from controller.core.db_settings import DatabaseSettings  # noqa: E402
from controller.fleet.settings import MqttSettings  # noqa: E402
from controller.services import Services  # noqa: E402
from devices.broker import BrokerProcess  # noqa: E402
from tests.conftest import make_settings, running_controller  # noqa: E402

logger = logging.getLogger("bench.peers")
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"


def _pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, round(q * (len(xs) - 1)))]


def _summary(xs: list[float], unit: float) -> dict[str, float]:
    return {"n": len(xs), "p50": round(statistics.median(xs) / unit, 3),
            "p99": round(_pct(xs, 0.99) / unit, 3), "max": round(max(xs) / unit, 3)}


async def _known_after(api: Any, sv_b: Services, node_id: str, timeout_s: float) -> tuple[float, float]:
    """(A's answer, B knowing the unit), each in seconds from the moment the POST was sent."""
    t0 = time.monotonic()
    answered = 0.0

    async def watch() -> float:
        while not sv_b.presence.knows(node_id):
            if time.monotonic() - t0 > timeout_s:
                raise RuntimeError(f"B never learned {node_id}")
            await asyncio.sleep(0.001)
        return time.monotonic() - t0

    watcher = asyncio.create_task(watch())
    r = await api.post("/api/nodes", json={"id": node_id, "zones": ["z1"]})
    answered = time.monotonic() - t0
    if r.status_code != 201:
        raise RuntimeError(r.text)
    return answered, await watcher


async def run(url: str, args: argparse.Namespace, tmp: Path, port: int) -> dict[str, Any]:
    def settings(name: str, **db: float) -> Any:
        (tmp / name).mkdir()
        base = make_settings(tmp / name, port)
        return base.model_copy(update={"database_url": url, "mqtt": MqttSettings(port=port),  # type: ignore[call-arg]
                                       "database": DatabaseSettings(feed_poll_s=args.poll_s, **db)})  # type: ignore[arg-type]

    async with running_controller(settings("a")) as (_, api_a), \
            running_controller(settings("b", feed_retry_s=60)) as (app_b, _):
        sv_b: Services = app_b.state.services
        while not sv_b.feed.listener.listening:
            await asyncio.sleep(0.01)
        if (await api_a.post("/api/zones", json={"id": "z1", "name": "Tổ dân phố 1"})).status_code != 201:
            raise RuntimeError("zone")
        notified = [await _known_after(api_a, sv_b, f"n{i}", 10) for i in range(args.units)]
        pid = sv_b.feed.listener.pid
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("SELECT pg_terminate_backend(%s)", (pid,))
        while sv_b.feed.listener.listening:
            await asyncio.sleep(0.01)
        polled = [await _known_after(api_a, sv_b, f"b{i}", args.poll_s + 10)
                  for i in range(args.baseline_units)]
        stats = sv_b.feed.stats
        return {"units": args.units, "poll_s": args.poll_s,
                "a_answered_ms": _summary([a for a, _ in notified], 0.001),
                "b_knows_notified_ms": _summary([b for _, b in notified], 0.001),
                "b_after_a_answered_ms": _summary([b - a for a, b in notified], 0.001),
                "b_knows_poll_only_s": _summary([b for _, b in polled], 1.0),
                "b_notified": stats["notified"], "b_from_poll": stats["from_poll"],
                "before_the_feed": "never (until B restarted)"}


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--units", type=int, default=50)
    ap.add_argument("--baseline-units", type=int, default=5)
    ap.add_argument("--poll-s", type=float, default=10.0)
    args = ap.parse_args()
    logging.basicConfig(level=logging.ERROR)
    name = f"lp_bench_{secrets.token_hex(4)}"
    admin = psycopg.connect(PG_ADMIN, autocommit=True)
    admin.execute(f'CREATE DATABASE "{name}"')
    try:
        with BrokerProcess("mosquitto") as broker, tempfile.TemporaryDirectory() as tmp:
            result = await run(f"postgresql://postgres@127.0.0.1:5432/{name}", args, Path(tmp), broker.port)
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()
    print(json.dumps(result))


if __name__ == "__main__":
    asyncio.run(main())
