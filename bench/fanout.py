"""Fan-out benchmark: a 60-second bulletin to N simulated units through the real controller.

    python bench/fanout.py --nodes 200        # default
    python bench/fanout.py --nodes 1000       # the units in 4 simulator processes (--sim-procs)

``controller_egress_bytes`` counts the broadcast's audio topics (manifest, chunks, repairs);
``controller_egress_all_bytes`` also counts control traffic in the same window (clock-sync
replies, play commands), which grows with the number of units but carries no audio.

The processes share the cores as they would in a ward: the broker (Mosquitto if installed,
else the embedded one), this process (the controller: delivery service + database) and the N
simulated units, split over ``--sim-procs`` processes (default: one per 250 units, at most 4) so
that one Python process running a thousand units is not what the figure measures. Measured in
the same run, as the baseline: the same chunk messages published by one plain client to N plain
subscribers in as many processes, each answering with one small message once it has every chunk
(as a unit answers "verified").

``repairs`` says what the units asked for again and how the controller answered (one copy to the
zone for a chunk many lacked: controller/airing/repairs.py).

The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from asyncio.subprocess import Process
from dataclasses import asdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.raw_mqtt import raw_subscribers, subscriber, until_told_to_stop  # noqa: E402
from devices import protocol as p  # noqa: E402
from devices.broker import BrokerProcess, mosquitto_path  # noqa: E402
from devices.mqtt import BrokerAddress  # noqa: E402

# The controller, the simulator, the speech engine and httpx are imported in the functions that use
# them, not here: the raw subscribers' process (--role raw) starts without them.

logger = logging.getLogger("bench.fanout")

PARAGRAPH = ("Thông báo của Ủy ban nhân dân phường: sáng mai từ bảy giờ đến mười một giờ, "
             "phường tổ chức tiêm phòng cho trẻ em tại nhà văn hóa tổ dân phố số ba. "
             "Đề nghị các gia đình đưa trẻ đến đúng giờ và mang theo sổ tiêm chủng. ")


# ----------------------------------------------------------------------------- child processes


def split(nodes: int, procs: int) -> list[tuple[int, int]]:
    """(first, count) of each of ``procs`` processes sharing ``nodes`` units."""
    size = -(-nodes // max(1, min(procs, nodes)))
    return [(i, min(size, nodes - i)) for i in range(0, nodes, size)]


async def spawn(role: str, port: int, nodes: int, procs: int, *extra: str) -> list[Process]:
    """``procs`` children of ``role`` sharing ``nodes`` units, each ready (it printed READY)."""
    children = []
    for first, count in split(nodes, procs):
        children.append(await asyncio.create_subprocess_exec(
            sys.executable, __file__, "--role", role, "--port", str(port), "--nodes", str(nodes),
            "--first", str(first), "--count", str(count), *extra,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, cwd=ROOT))
    for child in children:
        assert child.stdout is not None
        line = await asyncio.wait_for(child.stdout.readline(), 300)
        assert line.strip() == b"READY", line
    return children


async def stop(children: list[Process]) -> list[dict[str, Any]]:
    """Tell every child to stop; what each printed as its SUMMARY (a JSON object), if anything."""
    summaries = []
    for child in children:
        assert child.stdin is not None
        child.stdin.write(b"stop\n")
        await child.stdin.drain()
    for child in children:
        assert child.stdout is not None
        out = await asyncio.wait_for(child.stdout.read(), 120)
        await child.wait()
        lines = out.decode().splitlines()
        summaries += [json.loads(ln.removeprefix("SUMMARY ")) for ln in lines if ln.startswith("SUMMARY ")]
    return summaries


async def sim_units(port: int, nodes: int, first: int, count: int) -> None:
    """Child process: units ``first`` .. ``first + count - 1`` of the ``nodes`` simulated ones."""
    from firmware_sim.fleet import Fleet, fleet_specs

    specs = fleet_specs(nodes, id_prefix="fan", zones=1)[first:first + count]
    fleet = Fleet(specs, BrokerAddress(port=port), heartbeat_s=30, time_scale=0.001, keep_audio=False)
    await fleet.start()
    await until_told_to_stop()
    print("SUMMARY " + json.dumps(fleet.summary()), flush=True)
    await fleet.stop()


# ----------------------------------------------------------------------------- baseline side


async def run_baseline(port: int, nodes: int, frames: list[bytes], procs: int) -> float:
    children = await spawn("raw", port, nodes, procs, "--chunks", str(len(frames)))
    acks = 0
    done = asyncio.Event()

    def on_ack(topic: str, payload: bytes, retained: bool) -> None:
        nonlocal acks
        acks += 1
        if acks == nodes:
            done.set()

    pub = subscriber("raw-pub", BrokerAddress(port=port), "bench/ack", qos=1, on_message=on_ack)
    pub.start()
    await pub.connected.wait()
    await asyncio.sleep(0.5)
    t0 = time.perf_counter()
    await asyncio.gather(*(pub.publish("bench/data", f, qos=1) for f in frames))
    await asyncio.wait_for(done.wait(), 600)
    elapsed = time.perf_counter() - t0
    await stop(children)
    await pub.stop()
    return elapsed


# ----------------------------------------------------------------------------- controller side


def bulletin_text(seconds: float) -> str:
    """Repeat the paragraph until its speech lasts at least ``seconds``."""
    import tts

    text = PARAGRAPH
    while tts.render(text).duration_ms < seconds * 1000:
        text += PARAGRAPH
    return text


async def units_online(sv: Any, client: Any, ids: list[str]) -> None:
    """Zone ``zone1`` (through the API) and its units (straight into the database: thousands), then
    wait until every simulated unit is online and subscribed to its group."""
    from controller.fleet.models import Node, NodeZone

    assert (await client.post("/api/zones", json={"id": "zone1", "name": "Bench"})).status_code == 201
    with sv.db.session() as s:
        for node_id in ids:
            s.add(Node(id=node_id))
        s.flush()
        for node_id in ids:
            s.add(NodeZone(node_id=node_id, zone_id="zone1"))
        s.commit()
        sv.presence.load(s)
    await sv.presence.publish_configs()
    t_wait = time.monotonic()
    while sum(sv.presence.is_online(node_id) for node_id in ids) < len(ids):
        if time.monotonic() - t_wait > 300:
            raise RuntimeError("simulated units did not come online")
        await asyncio.sleep(0.5)
    logger.info("%d units online after %.1f s", len(ids), time.monotonic() - t_wait)
    await asyncio.sleep(2.0)  # let every unit subscribe to its group


async def all_verified(sv: Any, bid: str, t0: float) -> dict[str, float]:
    """Wait until every unit of broadcast ``bid`` has verified its audio (or later, not failed), at
    most 600 s after ``t0`` (perf_counter); when the first unit and a tenth, half, nine tenths and
    all of them had (seconds after ``t0``, polled every 20 ms)."""
    from controller.airing.models import Broadcast, DeliveryState
    from controller.airing.ownership import ON_THE_WAY

    verified_rank = DeliveryState.VERIFIED.rank

    def on_its_way() -> bool:
        with sv.db.session() as s:
            bc = s.get(Broadcast, bid)
            return bc is not None and bc.status in ON_THE_WAY

    marks = {"first": 1 / 10_000, "p10": 0.1, "p50": 0.5, "p90": 0.9, "all": 1.0}
    when: dict[str, float] = {}

    def count() -> tuple[int, int]:
        active = sv.delivery.active.get(bid)
        if active is None:  # not yet aired, given up for a moment (its lease: custody takes it back), or over
            return (0, 0) if bid in sv.scheduler.pending() or on_its_way() else (1, 1)
        return sum(nd.state.rank >= verified_rank and nd.state != DeliveryState.FAILED
                   for nd in active.nodes.values()), len(active.nodes)

    while len(when) < len(marks) + 1:
        done, total = count()
        at = time.perf_counter() - t0
        active = sv.delivery.active.get(bid)
        if active is None or active.published:
            when.setdefault("chunks_acked_by_broker", round(at, 3))
        for name, share in marks.items():
            if total and done >= share * total:
                when.setdefault(name, round(at, 3))
        if at > 600:
            raise RuntimeError("broadcast did not reach every unit in 600 s")
        if len(when) < len(marks) + 1:
            await asyncio.sleep(0.02)
    return when


async def run_controller(port: int, nodes: int, data_dir: Path, procs: int) -> dict[str, Any]:
    import httpx
    from sqlmodel import select

    from controller.airing.models import Delivery
    from controller.airing.settings import DeliverySettings
    from controller.app import create_app
    from controller.core.web_settings import HttpSettings
    from controller.fleet.settings import MqttSettings
    from controller.settings import Settings
    from firmware_sim.fleet import fleet_specs

    settings = Settings(data_dir=data_dir, mqtt=MqttSettings(port=port),  # type: ignore[call-arg]
                        delivery=DeliverySettings(resend_after_s=60),  # type: ignore[call-arg]
                        http=HttpSettings(request_deadline_s=300),  # type: ignore[call-arg]
                        admin_password="bench-password")
    app = create_app(settings)
    sims = await spawn("sim", port, nodes, procs)
    async with app.router.lifespan_context(app):
        sv = app.state.services
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://c",
                                     auth=("admin", "bench-password"), timeout=300) as client:
            await units_online(sv, client, [spec.node_id for spec in fleet_specs(nodes, id_prefix="fan")])
            r = await client.post("/api/bulletins", json={"text": bulletin_text(60)})
            assert r.status_code == 201, r.text
            b = r.json()
            before = sv.link.audio_bytes_out
            before_total = sv.link.client.stats.bytes_out
            t0 = time.perf_counter()
            r = await client.post("/api/broadcasts",
                                  json={"bulletin_id": b["id"], "target": {"zones": ["zone1"]}})
            bid = r.json()["id"]
            marks = await all_verified(sv, bid, t0)
            elapsed = time.perf_counter() - t0
            egress = sv.link.audio_bytes_out - before
            egress_total = sv.link.client.stats.bytes_out - before_total
            await sv.writer.flush()
            with sv.db.session() as s:
                states = [d.state for d in s.exec(select(Delivery).where(Delivery.broadcast_id == bid))]
            units = await stop(sims)
            logger.info("controller part done")
            audio = sv.audio.get(b["audio"]["sha256"])  # the bulletin's (the store also keeps the tone)
    return {"audio_bytes": b["audio"]["size"], "audio_seconds": b["audio"]["duration_ms"] / 1000,
            "audio": audio, "seconds_to_all_verified": elapsed, "verified_after_s": marks,
            "controller_egress_bytes": egress,
            "controller_egress_all_bytes": egress_total,
            "verified_or_later": sum(s in ("verified", "playing", "played") for s in states),
            "repairs": {"asked_by_units": sum(u["repairs_sent"] for u in units),
                        **asdict(sv.delivery.repairs.stats)}}


def sim_processes(args: argparse.Namespace) -> int:
    return args.sim_procs if args.sim_procs > 0 else max(1, min(4, args.nodes // 250))


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    kind = args.broker if args.broker != "auto" else ("mosquitto" if mosquitto_path() else "embedded")
    procs = sim_processes(args)
    with tempfile.TemporaryDirectory(prefix="lp-bench-") as tmp, BrokerProcess(kind) as broker:
        ctl = await run_controller(broker.port, args.nodes, Path(tmp), procs)
        _, frames = p.chunk_audio(ctl.pop("audio"), duration_ms=int(ctl["audio_seconds"] * 1000))
        raw = await run_baseline(broker.port, args.nodes, frames, procs)
        logger.info("baseline done")
    return {
        "bench": "fanout", "broker": kind, "nodes": args.nodes, "sim_processes": procs,
        "chunks": len(frames), **ctl,
        "egress_per_audio_byte": round(ctl["controller_egress_bytes"] / ctl["audio_bytes"], 4),
        "raw_fanout_seconds": round(raw, 3),
        "ratio_vs_raw": round(ctl["seconds_to_all_verified"] / raw, 2),
        "seconds_to_all_verified": round(ctl["seconds_to_all_verified"], 3),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--nodes", type=int, default=200)
    ap.add_argument("--sim-procs", type=int, default=0,
                    help="processes running the simulated units (and the raw subscribers); "
                         "0 = one per 250 units, at most 4")
    ap.add_argument("--broker", choices=["auto", "mosquitto", "embedded"], default="auto")
    ap.add_argument("--role", choices=["bench", "raw", "sim"], default="bench", help=argparse.SUPPRESS)
    ap.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--chunks", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--first", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--count", type=int, default=0, help=argparse.SUPPRESS)
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.role == "raw":
        asyncio.run(raw_subscribers(BrokerAddress(port=args.port), args.first, args.count, args.chunks,
                                    batch=100, settle_s=1.0))
        return 0
    if args.role == "sim":
        asyncio.run(sim_units(args.port, args.nodes, args.first, args.count))
        return 0
    logger.setLevel(logging.INFO)
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    result = asyncio.run(main_async(args))
    print(json.dumps(result, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
