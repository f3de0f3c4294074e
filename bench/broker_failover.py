"""How long units take to move to another broker when the one they are on is SIGKILLed.

N simulated units are given the list of 3 brokers (each starts on its own place of the ring,
devices/failover.py); the node with the most units is SIGKILLed; the time from the kill until
every one of its units is connected (CONNACK) and subscribed again on another node is measured,
p50 and max. Two runs in the same process:

* ``nats``: a 3-node NATS cluster with MQTT + JetStream, replicas 3 (devices/broker_cluster.py);
* ``baseline``: 3 independent Mosquittos, the floor set by the clients' own backoff and
  reconnect (nothing for the broker to recover).

    python bench/broker_failover.py --units 30

The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import statistics
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from devices.broker import BrokerProcess
from devices.broker_cluster import NatsCluster
from devices.mqtt import BrokerAddress
from firmware_sim.node import SimNode

logger = logging.getLogger("bench.broker_failover")


def _port(node: SimNode) -> int | None:
    link = node._rt.link
    return link.broker.port if link is not None and link.is_connected else None


async def _measure(ports: list[int], kill: Callable[[int], object], units: int,
                   timeout_s: float) -> dict[str, object]:
    addrs = [BrokerAddress(port=p) for p in ports]
    nodes = [SimNode(f"bf-{i:04d}", addrs, heartbeat_s=15.0, groups=["all", "z"], log_link_failures=False)
             for i in range(units)]
    await asyncio.gather(*(n.start(wait_s=60) for n in nodes))
    try:
        spread = Counter(_port(n) for n in nodes)
        victim = max(range(len(ports)), key=lambda i: spread[ports[i]])
        moving = [n for n in nodes if _port(n) == ports[victim]]
        connects = {n.node_id: n.stats.connects for n in moving}
        done: dict[str, float] = {}
        t0 = time.monotonic()
        kill(victim)
        while len(done) < len(moving) and time.monotonic() - t0 < timeout_s:
            for n in moving:
                if n.node_id not in done and _port(n) not in (None, ports[victim]) \
                        and n.stats.connects > connects[n.node_id] and n.groups_subscribed == {"all", "z"}:
                    done[n.node_id] = time.monotonic() - t0
            await asyncio.sleep(0.02)
        times = sorted(done.values())
        return {"units_on_killed_node": len(moving), "moved": len(times),
                "p50_s": round(statistics.median(times), 2) if times else None,
                "max_s": round(times[-1], 2) if times else None}
    finally:
        await asyncio.gather(*(n.stop() for n in nodes))


async def _nats(units: int, timeout_s: float) -> dict[str, object]:
    with NatsCluster(3) as cluster:
        return await _measure(cluster.mqtt_ports, cluster.kill, units, timeout_s)


async def _baseline(units: int, timeout_s: float) -> dict[str, object]:
    brokers = [BrokerProcess("mosquitto").start() for _ in range(3)]
    try:
        def kill(i: int) -> None:
            proc = brokers[i].proc
            if proc is not None:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait(5)
        return await _measure([b.port for b in brokers], kill, units, timeout_s)
    finally:
        for b in brokers:
            b.stop()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--units", type=int, default=30)
    ap.add_argument("--timeout", type=float, default=120.0, help="give up waiting for the move after S s")
    args = ap.parse_args()
    logging.basicConfig(level=logging.ERROR)
    nats = asyncio.run(_nats(args.units, args.timeout))
    base = asyncio.run(_baseline(args.units, args.timeout))
    print(json.dumps({"bench": "broker_failover", "units": args.units, "cores": os.cpu_count(),
                      "nats_3_nodes": nats, "baseline_3_mosquittos": base}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
