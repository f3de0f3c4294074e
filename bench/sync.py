"""Start-skew benchmark: how far apart do units start one broadcast?

    python bench/sync.py                 # 40 units, 5 broadcasts per scenario
    python bench/sync.py --nodes 100

Scenarios, all in this one run against a Mosquitto (or embedded) broker and the real
controller: ``synced`` — clocks off by up to ±30 s, drifting ±50 ppm, behind links with
50 ms delay and up to 200 ms jitter per message and direction, with NTP-style clock sync;
``unsynced`` — the same units with sync switched off (the baseline the sync must beat);
``ideal`` — perfect clocks and links (the floor set by timers on this machine).
Skew = latest − earliest real instant at which the units' audio begins, for one broadcast: the
start instant less how far into the audio a unit started (a unit whose ``play`` came after the
instant joins mid-way, in step); ``start_spread_p99_ms`` is the spread of the start instants
themselves, ``late_joins`` how many started mid-way.
Two instants per unit: where its sound begins as *fired* (``p50_ms``/``p99_ms``/``max_ms``: when
the simulator's timer ran; 40 units and the controller share one event loop here, so the timers
due at one instant run one after another — ``ideal`` shows that floor) and as *aimed*
(``aimed_*``: the real instant the unit's clock put the start at, where an output that starts on
its instant begins — ``loaphuong unit``'s sound card does, within a few ms: the clock sync's own
error). A unit that joined mid-way (its timer > 50 ms late) counts where it actually began.
The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from devices.broker import BrokerProcess, mosquitto_path  # noqa: E402
from devices.mqtt import BrokerAddress  # noqa: E402
from firmware_sim.faults import Faults  # noqa: E402
from firmware_sim.node import SimNode  # noqa: E402

logger = logging.getLogger("bench.sync")


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, round(q * (len(s) - 1)))]


async def scenario(name: str, port: int, nodes: int, broadcasts: int, data_dir: Path,
                   faults_for: Any, warmup_s: float) -> dict[str, float]:
    import httpx

    from controller.app import create_app
    from controller.fleet.settings import MqttSettings
    from controller.settings import Settings

    settings = Settings(data_dir=data_dir / name, mqtt=MqttSettings(port=port),  # type: ignore[call-arg]
                        admin_password="bench-password")
    app = create_app(settings)
    ids = [f"{name}-{i:03d}" for i in range(nodes)]
    sims = [SimNode(n, BrokerAddress(port=port), heartbeat_s=15, faults=faults_for(i),
                    log_link_failures=False) for i, n in enumerate(ids)]
    skews: list[float] = []
    aimed: list[float] = []
    spreads: list[float] = []  # of the start instants themselves (late joiners included as late)
    missing = late = 0
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://c",
                                     auth=("admin", "bench-password"), timeout=120) as client:
            await client.post("/api/zones", json={"id": "z", "name": "Bench"})
            for n in ids:
                await client.post("/api/nodes", json={"id": n, "zones": ["z"]})
            await asyncio.gather(*(s.start() for s in sims))
            await asyncio.sleep(warmup_s)  # clock sync: a burst at connect, then one sample / 5 s
            b = (await client.post("/api/bulletins", json={"text": "Kiểm tra đồng bộ loa."})).json()
            for _ in range(broadcasts):
                bid = (await client.post("/api/broadcasts", json={
                    "bulletin_id": b["id"], "target": {"zones": ["z"]}})).json()["id"]
                deadline = time.monotonic() + 20
                while not all(bid in s.player.start_times for s in sims) and time.monotonic() < deadline:
                    await asyncio.sleep(0.05)
                got = [s.player.start_times[bid] for s in sims if bid in s.player.start_times]
                missing += len(sims) - len(got)
                # where each unit's audio begins on the real clock: a unit whose play came after the
                # instant joins mid-way (offset_ms into the audio), in step with the others
                origins = [start - offset for start, offset in got]
                late += sum(1 for _, offset in got if offset > 0)
                # a unit that never started (its clock put the command past expiry) counts as
                # starting 20 s late: it is not in step with anyone
                full = len(got) == len(sims)
                skews.append(max(origins) - min(origins) if full else 20_000.0)
                meant = [s.player.aimed[bid] - s.player.start_times[bid][1] for s in sims
                         if bid in s.player.aimed]
                aimed.append(max(meant) - min(meant) if full else 20_000.0)
                spreads.append(max(g[0] for g in got) - min(g[0] for g in got) if full else 20_000.0)
                await asyncio.sleep(b["audio"]["duration_ms"] * 0.1 / 1000 + 1)
            await asyncio.gather(*(s.stop() for s in sims))
    return {"p50_ms": round(statistics.median(skews), 1), "p99_ms": round(pct(skews, 0.99), 1),
            "max_ms": round(max(skews), 1), "units_not_started": missing, "late_joins": late,
            "start_spread_p99_ms": round(pct(spreads, 0.99), 1),
            "aimed_p50_ms": round(statistics.median(aimed), 1), "aimed_p99_ms": round(pct(aimed, 0.99), 1),
            "aimed_max_ms": round(max(aimed), 1)}


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    rng = random.Random(7)
    offsets = [rng.randint(-30_000, 30_000) for _ in range(args.nodes)]
    drifts = [rng.uniform(-50, 50) for _ in range(args.nodes)]

    def field(i: int, sync: bool) -> Faults:
        return Faults(clock_offset_ms=offsets[i], clock_drift_ppm=drifts[i], net_delay_ms=50,
                      jitter_ms=200, time_scale=0.1, no_clock_sync=not sync)

    kind = "mosquitto" if mosquitto_path() else "embedded"
    out: dict[str, Any] = {"bench": "sync", "broker": kind, "nodes": args.nodes, "warmup_s": args.warmup,
                           "broadcasts": args.broadcasts, "max_offset_ms": 30_000, "jitter_ms": 200}
    with tempfile.TemporaryDirectory(prefix="lp-sync-") as tmp, BrokerProcess(kind) as broker:
        for name, faults_for, warmup in (("synced", lambda i: field(i, True), args.warmup),
                                         ("unsynced", lambda i: field(i, False), 5.0),
                                         ("ideal", lambda i: Faults(time_scale=0.1), 5.0)):
            out[name] = await scenario(name, broker.port, args.nodes, args.broadcasts, Path(tmp),
                                       faults_for, warmup)
            logger.info("%s: %s", name, out[name])
    out["improvement_vs_unsynced"] = round(out["unsynced"]["p50_ms"] / max(out["synced"]["p50_ms"], 0.1), 1)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--nodes", type=int, default=40)
    ap.add_argument("--broadcasts", type=int, default=5)
    ap.add_argument("--warmup", type=float, default=45.0, help="seconds of clock sync before airing")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logger.setLevel(logging.INFO)
    print(json.dumps(asyncio.run(main_async(args))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
