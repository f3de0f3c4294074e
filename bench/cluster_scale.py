"""Issue 16's measurement: an emergency to every unit of a province-sized cluster, with the owning
controller and one broker node SIGKILLed 1 s after the tap.

Two ``loaphuong serve`` processes (A, B) on a fresh PostgreSQL database of their own, a 3-node
NATS cluster with MQTT + JetStream (devices/broker_cluster.py, the config of docs/deploy.md), and
``--units`` simulated units in ``--per-proc``-sized processes (bench/cluster_fleet.py), each unit
given the list of the three nodes (they spread over them by the ring and fail over). Heartbeats
and telemetry at the protocol's pace, playback in real time, every start and end appended to one
play log. In order:

1. the same-run baseline: the bulletin's manifest + chunks published once by a plain client to
   ``--units`` plain QoS 1 subscribers spread over the same three nodes (before the units start);
2. idle: CPU of each controller, broker node and simulator process over ``--idle-s`` with every
   unit online (per 1,000 units), the controllers' memory (RSS);
3. ``clean``: an emergency to the zone of every unit POSTed through A, nothing killed: the speed
   and the CPU of a broadcast;
4. ``faults``: the same emergency again, and ``--kill-after-s`` (1 s) after the POST the broadcast's
   owner (its ``broadcast_owner`` row) is SIGKILLed, and so is the node with the most clients
   among those the survivor is not on (``--keep-nodes``: the owner only).

Each tap is timed from just before the POST (wall clock, the play log's): every unit's attention
tone and speech start (p50/p99/max), units missed (no start by the end) and played twice (the
play log), the takeover (the owner row held by the survivor, from the kill), the broadcast done;
CPU % of one core of every process alive; egress (the controllers', the broker nodes') per audio
byte; database writes (pg_stat_database) and the broadcast's rows. ``--consumer-replicas 1``
runs NATS with unreplicated consumers (cheaper; what a node's loss then costs is measured).

    python bench/cluster_scale.py --units 2000        # default 500 units per simulator process

The last line printed is one JSON object. Loopback only; every wait is bounded.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import secrets
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import psycopg  # noqa: E402

from bench.cluster_fleet import PREFIX, broker_arg, run_baseline, spawn  # noqa: E402
from bench.cluster_procs import (  # noqa: E402
    Controller,
    PgStats,
    cpu_window,
    nats_bytes,
    nats_connections,
    rss_mb,
    start_controller,
)
from bench.emergency import TEXT, pct  # noqa: E402
from bench.fanout import stop  # noqa: E402
from devices import protocol as p  # noqa: E402
from devices.broker_cluster import NatsCluster  # noqa: E402
from firmware_sim.playlog import double_plays, read_play_log  # noqa: E402

logger = logging.getLogger("bench.cluster_scale")
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
ZONE = "zone1"


def prepare_database(url: str, units: int) -> None:
    """The schema, one zone and ``units`` units, written straight into the database (thousands)."""
    from controller.core.db import Database
    from controller.fleet.models import Node, NodeZone, Zone
    from firmware_sim.fleet import fleet_specs

    db = Database(url)
    db.migrate()
    ids = [s.node_id for s in fleet_specs(units, id_prefix=PREFIX)]
    with db.session() as s:
        s.add(Zone(id=ZONE, name="Bench"))
        s.add_all([Node(id=i, name=f"Loa {i}") for i in ids])
        s.flush()
        s.add_all([NodeZone(node_id=i, zone_id=ZONE) for i in ids])
        s.commit()
    db.dispose()


async def frames_of(api: Any, bulletin: dict[str, Any]) -> list[bytes]:
    """What a controller sends of one broadcast to one scope: its manifest and its chunks."""
    r = await api.get(f"/api/bulletins/{bulletin['id']}/audio")
    r.raise_for_status()
    info, chunks = p.chunk_audio(r.content, duration_ms=bulletin["audio"]["duration_ms"])
    manifest = p.Manifest(bc="b-bench", title="x" * 20, priority=p.Priority.EMERGENCY, audio=info,
                          expires_at=int(time.time() * 1000) + 600_000, hold=True)
    return [p.encode(manifest), *chunks]


async def bounded(pred: Any, timeout_s: float, every_s: float = 0.1) -> float | None:
    """Seconds until ``pred()`` (sync or async) holds, None if not within ``timeout_s``."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout_s:
        res = pred()
        if asyncio.iscoroutine(res):
            res = await res
        if res:
            return time.monotonic() - t0
        await asyncio.sleep(every_s)
    return None


def owner_of(url: str, bid: str) -> str | None:
    with psycopg.connect(url, autocommit=True, connect_timeout=3) as c:
        row = c.execute("SELECT holder FROM broadcast_owner WHERE broadcast_id = %s", (bid,)).fetchone()
    return str(row[0]) if row else None


def broadcast_state(url: str, bid: str) -> tuple[str, dict[str, int]]:
    with psycopg.connect(url, autocommit=True, connect_timeout=3) as c:
        status = c.execute("SELECT status FROM broadcast WHERE id = %s", (bid,)).fetchone()
        states = c.execute("SELECT state, count(*) FROM delivery WHERE broadcast_id = %s GROUP BY state",
                           (bid,)).fetchall()
    return (str(status[0]) if status else "", {str(s): int(n) for s, n in states})


def play_figures(log: Path, bid: str, t0: float, units: int) -> dict[str, Any]:
    """From the units' play log: tone and speech start times after the tap, missed, doubles."""
    events = read_play_log(log)
    tone: dict[str, float] = {}
    start: dict[str, float] = {}
    for e in events:
        if e.bc == bid and e.event in ("tone", "start"):
            (tone if e.event == "tone" else start).setdefault(e.unit, e.wall_ms / 1000 - t0)

    def spread(xs: list[float]) -> dict[str, float | int | None]:
        return {"units": len(xs), "p50_s": round(pct(xs, 0.5), 3), "p99_s": round(pct(xs, 0.99), 3),
                "max_s": round(max(xs), 3) if xs else None}

    return {"tone": spread(list(tone.values())), "speech": spread(list(start.values())),
            "missed": units - len(start), "played_twice": len(double_plays(events)),
            "starts": sum(1 for e in events if e.bc == bid and e.event == "start")}


async def units_online(ctls: list[Controller], units: int, timeout_s: float) -> float:
    async def all_online() -> bool:
        counts = [await c.online() for c in ctls]
        return all(n >= units for n in counts)

    took = await bounded(all_online, timeout_s, every_s=1.0)
    if took is None:
        raise RuntimeError(f"not every unit online on both controllers within {timeout_s:.0f} s: "
                           f"{[await c.online() for c in ctls]}")
    return took


def victim_node(cluster: NatsCluster, survivor: Controller) -> int:
    """The node with the most clients that the survivor is not on (the owner's may be it)."""
    conns = nats_connections(cluster)
    ports = cluster.mqtt_ports
    others = [i for i, port in enumerate(ports) if not survivor.broker.endswith(f":{port}")]
    return max(others, key=lambda i: conns.get(str(ports[i]), 0))


async def post_emergency(api: Any, bulletin: dict[str, Any], url: str,
                         timeout_s: float) -> tuple[str, float, str]:
    """The tap: POST of an emergency to every unit; (broadcast id, POST seconds, owner row's holder)."""
    t0 = time.time()
    r = await api.post("/api/broadcasts", json={"bulletin_id": bulletin["id"], "priority": "emergency",
                                                "target": {"zones": [ZONE]}})
    post_s = time.time() - t0
    if r.status_code != 201:
        raise RuntimeError(f"the emergency POST answered {r.status_code}: {r.text[:300]}")
    bid = r.json()["id"]
    holder: list[str | None] = [None]

    def owned() -> bool:
        holder[0] = owner_of(url, bid)
        return holder[0] is not None

    await bounded(owned, timeout_s, every_s=0.02)
    return bid, post_s, holder[0] or ""


async def tap(args: argparse.Namespace, ctx: dict[str, Any], ctls: list[Controller], cluster: NatsCluster,
              bulletin: dict[str, Any], kill: bool) -> dict[str, Any]:
    """An emergency through A; with ``kill``, its owner (and a node) SIGKILLed ``--kill-after-s`` later."""
    url, stats, a, b = ctx["url"], PgStats(PG_ADMIN, ctx["db"]), ctls[0], ctls[1]
    before = {"nats": nats_bytes(cluster), **{c.name: (await c.health())["mqtt"]["bytes_out"] for c in ctls}}
    pids = {n.name: n.proc.pid for n in cluster.nodes if n.alive and n.proc} | ctx["sim_pids"]
    meter = cpu_window({c.name: c.pid for c in ctls} | pids)
    t0, t_kill = time.time(), time.monotonic()
    bid, post_s, holder = await post_emergency(a.api, bulletin, url, args.timeout_s)
    owner = next((c for c in ctls if c.client_id == holder), a)
    survivor, out = (b if owner is a else a), {owner.name: 0}
    node, killed_at_s, took = None, None, None
    if kill:
        victim = victim_node(cluster, survivor)
        await asyncio.sleep(max(0.0, t0 + args.kill_after_s - time.time() - 0.1))
        out[owner.name] = (await owner.health())["mqtt"]["bytes_out"] - before[owner.name]
        ctx["cpu_owner"] = meter.read([owner.name])
        await asyncio.sleep(max(0.0, t0 + args.kill_after_s - time.time()))
        owner.kill()
        node = None if args.keep_nodes else cluster.kill(victim).name
        t_kill, killed_at_s = time.monotonic(), round(time.time() - t0, 2)
        logger.info("owner %s and node %s killed %.2f s after the tap", owner.name, node, killed_at_s)
        meter = cpu_window({survivor.name: survivor.pid} | pids)
        took = await bounded(lambda: owner_of(url, bid) == survivor.client_id, args.timeout_s, every_s=0.05)
    done = await bounded(lambda: broadcast_state(url, bid)[0] not in ("scheduled", "sending", "active"),
                         args.timeout_s, every_s=0.5)
    done_at = time.monotonic()
    cpu = meter.read([k for k in meter.pids if k not in (node, owner.name if kill else "")])
    status, states = await asyncio.to_thread(broadcast_state, url, bid)
    for c in (ctls if not kill else [survivor]):
        out[c.name] = (await c.health())["mqtt"]["bytes_out"] - before[c.name]
    nats_out = sum(v - before["nats"].get(k, 0) for k, v in nats_bytes(cluster).items())
    audio = bulletin["audio"]["size"]
    return {"bc": bid, "post_s": round(post_s, 3), "owner": owner.name, "killed_node": node,
            "killed_at_s": killed_at_s, "takeover_s": None if took is None else round(took, 2),
            "done_s": None if done is None else round(done_at - t_kill, 2),  # from the kill, else the tap
            "status": status, "deliveries": states, **play_figures(ctx["play_log"], bid, t0, args.units),
            "cpu_pct_owner_until_kill": ctx.pop("cpu_owner", None),
            "cpu_pct": cpu, "egress_per_audio_byte": {
                "controllers": round(sum(out.values()) / audio, 2),
                "nats_surviving_nodes": round(nats_out / audio, 1)},
            "db": await database_figures(url, bid, stats, states)}
async def database_figures(url: str, bid: str, stats: PgStats, states: dict[str, int]) -> dict[str, Any]:
    """The database's writes since ``stats`` began, and the broadcast's rows."""
    await asyncio.sleep(1.0)  # the statistics collector's lag
    writes = stats.delta()
    with psycopg.connect(url, autocommit=True, connect_timeout=3) as c:
        events = c.execute("SELECT count(*) FROM deliveryevent d JOIN delivery x ON d.delivery_id = x.id "
                           "WHERE x.broadcast_id = %s", (bid,)).fetchone()
    return {"writes": writes, "deliveries": sum(states.values()),
            "delivery_events": int(events[0]) if events else 0}


async def idle(args: argparse.Namespace, ctls: list[Controller], cluster: NatsCluster,
               sim_pids: dict[str, int]) -> dict[str, Any]:
    """CPU of everything over ``--idle-s`` with every unit online and nothing on air."""
    meter = cpu_window({c.name: c.pid for c in ctls} | {n.name: n.proc.pid for n in cluster.nodes if n.proc}
                       | sim_pids)
    await asyncio.sleep(args.idle_s)
    cpu = meter.read()
    per_k = 1000 / args.units
    return {"seconds": args.idle_s, "cpu_pct": cpu,
            "controller_cpu_pct_per_1000_units": round(sum(cpu[c.name] for c in ctls) / len(ctls) * per_k, 1),
            "nats_cpu_pct_per_1000_units": round(sum(cpu[n.name] for n in cluster.nodes) * per_k, 1),
            "controller_rss_mb": {c.name: rss_mb(c.pid) for c in ctls},
            "nats_rss_mb": {n.name: rss_mb(n.proc.pid) for n in cluster.nodes if n.proc}}


async def run(args: argparse.Namespace, db: str, tmp: Path) -> dict[str, Any]:
    url = f"postgresql://postgres@127.0.0.1:5432/{db}"
    await asyncio.to_thread(prepare_database, url, args.units)
    with NatsCluster(3, consumer_replicas=args.consumer_replicas) as cluster:
        brokers = broker_arg(cluster.mqtt_ports)
        async with (start_controller("A", tmp / "a", url, brokers) as a,
                    start_controller("B", tmp / "b", url, brokers) as b):
            r = await a.api.post("/api/bulletins", json={"text": TEXT, "priority": "emergency"})
            r.raise_for_status()
            bulletin = r.json()
            frames = await frames_of(a.api, bulletin)
            raw = await run_baseline(cluster.mqtt_ports, args.units, frames, args.per_proc, args.baseline_s)
            log = tmp / "play.jsonl"
            t_up = time.monotonic()
            sims = await spawn("sim", brokers, args.units, args.per_proc, "--play-log", str(log))
            sim_pids = {f"sim{i}": s.pid for i, s in enumerate(sims)}
            try:
                online_s = await units_online([a, b], args.units, args.timeout_s)
                spread = nats_connections(cluster)
                started_s = time.monotonic() - t_up
                quiet = await idle(args, [a, b], cluster, sim_pids)
                logger.info("idle: %s", json.dumps(quiet))
                ctx = {"url": url, "db": db, "play_log": log, "sim_pids": sim_pids}
                clean = await tap(args, ctx, [a, b], cluster, bulletin, kill=False)
                logger.info("clean: %s", json.dumps(clean))  # on stderr at once: a slow teardown loses none
                faults = await tap(args, ctx, [a, b], cluster, bulletin, kill=True)
                logger.info("faults: %s", json.dumps(faults))
            finally:
                summaries = await stop(sims)
    per_k = 1000 / args.units
    return {"bench": "cluster_scale", "units": args.units, "cores": os.cpu_count(),
            "consumer_replicas": args.consumer_replicas or 3,
            "sim_processes": len(sims), "units_per_sim_process": args.per_proc,
            "audio_bytes": bulletin["audio"]["size"],
            "audio_seconds": bulletin["audio"]["duration_ms"] / 1000, "messages": len(frames),
            "units_online_s": round(started_s, 1), "online_wait_s": round(online_s, 1),
            "clients_per_node": spread, "idle": quiet,
            "owner_cpu_pct_per_1000_units_broadcast": round(clean["cpu_pct"][clean["owner"]] * per_k, 1),
            "clean": clean, "faults": faults,
            "sims": {"played": sum(s["played"] for s in summaries),
                     "cpu_s": [s["cpu_s"] for s in summaries],
                     "repairs_sent": sum(s["repairs_sent"] for s in summaries)},
            "raw_baseline": raw, "speech_p99_vs_raw_p99": ratio(clean["speech"]["p99_s"], raw["p99_s"])}


def ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 2) if a is not None and b else None


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--units", type=int, default=2000)
    ap.add_argument("--per-proc", type=int, default=500, help="simulated units per process")
    ap.add_argument("--idle-s", type=float, default=20.0, help="the idle CPU window")
    ap.add_argument("--kill-after-s", type=float, default=1.0, help="SIGKILLs this long after the POST")
    ap.add_argument("--consumer-replicas", type=int, default=None,
                    help="NATS mqtt consumer_replicas (default 3, as docs/deploy.md configures it)")
    ap.add_argument("--baseline-s", type=float, default=120.0, help="bound of the raw baseline's wait")
    ap.add_argument("--keep-nodes", action="store_true", help="SIGKILL only the owner, no broker node")
    ap.add_argument("--timeout-s", type=float, default=600.0, help="bound of every wait")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logger.setLevel(logging.INFO)
    db = f"lp_bench_{secrets.token_hex(4)}"
    admin = psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=3)
    admin.execute(f'CREATE DATABASE "{db}"')
    try:
        with tempfile.TemporaryDirectory(prefix="lp-cluster-") as tmp:
            result = asyncio.run(asyncio.wait_for(run(args, db, Path(tmp)), 4 * args.timeout_s + 600))
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
        admin.close()
    print(json.dumps(result, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
