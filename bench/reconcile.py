"""What delivery's reconcile (controller/airing/reconcile.py) costs the controller per sweep.

    python bench/reconcile.py                    # 1,000 and 5,000 units
    python bench/reconcile.py --units 2000 --runs 20

One broadcast to N units of one zone, air control and the reconcile on an in-memory bus (no
broker: the cost measured is the controller's own). Three cases, each the median of ``--runs``
checks of the whole broadcast:

* ``steady``   — every unit reports ``playing`` in its turn: nothing to ask (every sweep, 2 s);
* ``all_lost`` — every unit still ``verified`` past the start + margin (the play was lost, e.g. the
  broker was down): the check re-sends it once on the zone's topic and puts each unit in backoff;
* ``backoff``  — the check right after: every unit waits for its next ask.

The baseline is the bare loop every sweep already does over the same units (delivery's re-offer
test of each unit's state). The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from controller.airing.active import ActiveBroadcast, NodeDelivery  # noqa: E402
from controller.airing.aircontrol import AirControl  # noqa: E402
from controller.airing.audio_out import AudioOut  # noqa: E402
from controller.airing.models import DeliveryState  # noqa: E402
from controller.airing.reconcile import Reconciler  # noqa: E402
from controller.airing.settings import DeliverySettings  # noqa: E402
from devices import protocol as p  # noqa: E402
from tests.fakes import FakeUnitBus  # noqa: E402

S = DeliveryState
ZONE = p.AudioScope(kind="group", id="z")


def _ms(fn: Any, runs: int) -> float:
    samples = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t) * 1000)
    return round(statistics.median(samples), 2)


async def scenario(units: int, runs: int) -> dict[str, Any]:
    bus = FakeUnitBus()
    air = AirControl(bus, lambda node_id: ["z"], margin_ms=0)
    info, frames = p.chunk_audio(b"x" * 4096, duration_ms=600_000, chunk_size=4096)
    manifest = p.Manifest(bc="b-1", audio=info, expires_at=p.now_ms() + 3_600_000, hold=True)
    nodes = {f"u-{i:05d}": NodeDelivery(i, S.VERIFIED) for i in range(units)}
    active = ActiveBroadcast("b-1", manifest, frames, [ZONE], nodes, published=True)
    rec = Reconciler(air, AudioOut(bus), lambda node_id: True, {"b-1": active}.get, lambda *a: None,
                     DeliverySettings(reconcile_after_ms=500))  # type: ignore[call-arg]
    air.offer("b-1", priority=p.Priority.NORMAL, duration_ms=600_000, scopes=[ZONE], nodes=list(nodes),
              play_at=None, ready=lambda: True)

    def baseline() -> None:
        sum(1 for nd in active.nodes.values() if nd.state in (S.SENT, S.RECEIVING))

    for nd in nodes.values():
        nd.state = S.PLAYING
    steady = _ms(lambda: rec.check(active), runs)
    base = _ms(baseline, runs)
    await asyncio.sleep(0.6)  # past the start + margin
    lost = []
    for _ in range(runs):
        for nd in nodes.values():
            nd.state, nd.asks, nd.next_ask_ms = S.VERIFIED, 0, 0
        lost.append(_ms(lambda: rec.check(active), 1))
    backoff = _ms(lambda: rec.check(active), runs)
    return {"units": units, "steady_ms": steady, "all_lost_ms": round(statistics.median(lost), 2),
            "backoff_ms": backoff, "baseline_ms": base, "plays_per_lost_check": 1,
            "group_asks": rec.asked.get("play_group", 0), "unit_asks": rec.asked["play"]}


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--units", type=int, nargs="*", default=[1000, 5000])
    ap.add_argument("--runs", type=int, default=15)
    args = ap.parse_args()
    results = [await scenario(n, args.runs) for n in args.units]
    for r in results:
        print(f"{r['units']:>6} units: steady {r['steady_ms']} ms, all lost {r['all_lost_ms']} ms, "
              f"backoff {r['backoff_ms']} ms (baseline loop {r['baseline_ms']} ms)")
    print(json.dumps({"bench": "reconcile", "sweep_s": 2.0, "results": results}))


if __name__ == "__main__":
    asyncio.run(main())
