"""The child processes of bench/cluster_scale.py: simulated units given the list of every broker
node (each unit starts on its own place of the ring, devices/failover.py, so they spread over
the nodes and fail over), and the plain subscribers of the raw baseline, spread the same way.

    python bench/cluster_fleet.py --role sim --brokers H:P,H:P,H:P --nodes N --first F --count C \
        --play-log FILE            # units F .. F+C-1 of fleet_specs(N, id_prefix="cs")
    python bench/cluster_fleet.py --role raw --brokers ... --first F --count C --chunks K

Each child prints READY once its clients are connected, waits for a line on standard input,
then prints ``SUMMARY {json}`` (its own CPU seconds among it) and exits. :func:`run_baseline`
is the same-run baseline: the same bytes published once by one plain client through the cluster,
time until every plain subscriber has all of them.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import subprocess
import sys
import time
from asyncio.subprocess import Process
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.fanout import split, stop  # noqa: E402
from bench.raw_mqtt import raw_subscribers, subscriber, until_told_to_stop  # noqa: E402
from devices.failover import parse_brokers  # noqa: E402
from devices.mqtt import BrokerAddress  # noqa: E402

logger = logging.getLogger("bench.cluster_fleet")
PREFIX = "cs"  # the simulated units' ids: cs-0000 ...


def broker_arg(ports: list[int]) -> str:
    return ",".join(f"127.0.0.1:{p}" for p in ports)


async def spawn(role: str, brokers: str, total: int, per_proc: int, *extra: str) -> list[Process]:
    """Children of ``role`` sharing ``total`` clients, at most ``per_proc`` each, once all are READY."""
    procs = max(1, -(-total // max(1, per_proc)))
    children = []
    for first, count in split(total, procs):
        children.append(await asyncio.create_subprocess_exec(
            sys.executable, __file__, "--role", role, "--brokers", brokers, "--nodes", str(total),
            "--first", str(first), "--count", str(count), *extra,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, cwd=ROOT))
    try:
        for child in children:
            assert child.stdout is not None
            line = await asyncio.wait_for(child.stdout.readline(), 600)
            if line.strip() != b"READY":
                raise RuntimeError(f"a {role} child did not start: {line!r}")
    except BaseException:  # not ready in time, or the bench interrupted: no child left behind
        for child in children:
            if child.returncode is None:
                child.kill()
                await child.wait()
        raise
    return children


async def sim_units(brokers: list[BrokerAddress], nodes: int, first: int, count: int, play_log: Path) -> None:
    """Units ``first`` .. ``first + count - 1``, heartbeats and telemetry at the protocol's pace
    (15 s / 60 s), playing in real time, every start and end appended to ``play_log``."""
    from firmware_sim.fleet import Fleet, fleet_specs
    from firmware_sim.playlog import PlayLog

    specs = fleet_specs(nodes, id_prefix=PREFIX, zones=1)[first:first + count]
    fleet = Fleet(specs, brokers, keep_audio=False, play_log=PlayLog(play_log))
    ready = await fleet.start(wait_s=300)
    if ready < count:
        logger.warning("sim %d..%d: %d/%d ready", first, first + count - 1, ready, count)
    await until_told_to_stop()
    print("SUMMARY " + json.dumps({**fleet.summary(), "cpu_s": round(time.process_time(), 2)}), flush=True)
    await fleet.stop()


async def run_baseline(ports: list[int], subscribers: int, frames: list[bytes], per_proc: int,
                       timeout_s: float = 300) -> dict[str, float]:
    """Seconds from the first publish until every subscriber has every frame (and acked it): all of
    them (``seconds``; ``timeout_s`` if some never did), p50 and p99 of the subscribers."""
    children = await spawn("raw", broker_arg(ports), subscribers, per_proc, "--chunks", str(len(frames)))
    acks: dict[bytes, float] = {}
    done = asyncio.Event()
    t0 = time.perf_counter()

    def on_ack(topic: str, payload: bytes, retained: bool) -> None:
        acks.setdefault(payload, time.perf_counter() - t0)
        if len(acks) >= subscribers:
            done.set()

    pub = subscriber("raw-pub", BrokerAddress(port=ports[0]), "bench/ack", qos=1, on_message=on_ack)
    pub.start()
    try:
        await asyncio.wait_for(pub.connected.wait(), 60)
        await asyncio.sleep(1.0)  # the SUBACK of bench/ack is awaited on connect; let the consumers settle
        t0 = time.perf_counter()
        await asyncio.gather(*(pub.publish("bench/data", f, qos=1) for f in frames))
        try:
            await asyncio.wait_for(done.wait(), timeout_s)
        except TimeoutError:
            logger.warning("raw baseline: %d/%d subscribers had everything after %.0f s",
                           len(acks), subscribers, timeout_s)
        elapsed = time.perf_counter() - t0
    finally:
        summaries = await stop(children)
        await pub.stop()
    times = sorted(acks.values())
    k = int(0.99 * subscribers)  # the p99 of all the subscribers: None if fewer than that many finished
    p99 = times[k] if len(times) > k else None
    return {"seconds": round(elapsed, 3), "p99_s": None if p99 is None else round(p99, 3),
            "p50_s": round(times[len(times) // 2], 3) if times else None,
            "subscribers": subscribers, "complete": len(acks),
            "processes": len(children), "cpu_s": round(sum(s["cpu_s"] for s in summaries), 2)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--role", choices=["sim", "raw"], required=True)
    ap.add_argument("--brokers", required=True)
    ap.add_argument("--nodes", type=int, default=0)
    ap.add_argument("--first", type=int, default=0)
    ap.add_argument("--count", type=int, default=0)
    ap.add_argument("--chunks", type=int, default=0)
    ap.add_argument("--play-log", type=Path, default=None)
    args = ap.parse_args()
    logging.basicConfig(level=logging.ERROR, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    brokers = [BrokerAddress(host=h, port=port) for h, port in parse_brokers(args.brokers)]
    if args.role == "sim":
        if args.play_log is None:
            ap.error("--role sim needs --play-log")
        asyncio.run(sim_units(brokers, args.nodes, args.first, args.count, args.play_log))
    else:
        asyncio.run(raw_subscribers(brokers, args.first, args.count, args.chunks))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
