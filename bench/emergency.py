"""Emergency benchmark: the tap (POST of an emergency broadcast of a pre-rendered bulletin) to N
online simulated units, through the real controller and broker.

    python bench/emergency.py --nodes 200            # default; --runs 3 emergencies in a row
    python bench/emergency.py --nodes 1000           # the units in 4 simulator processes

What is timed, from just before the POST (wall clock; the units run on this machine, so their play
log's ``wall_ms`` is on the same clock):

* ``post_s``: the POST's answer; ``first_chunk_sent_s``: the first audio chunk of the broadcast
  written to the controller's socket (:class:`SentClock`); ``first_chunk_s``: that chunk seen on
  the broker by a plain subscriber of the data topics (``first_manifest_s``: its manifest), which
  the broker serves after the units (its fan-out of the manifest and the chunk included);
* ``tone_s``: each unit's local attention tone sounding (its play log's ``tone`` line) — p50,
  p99, max and how many of the N; nothing on this path waits for speech, the database or a
  straggler (the tone comes with the emergency's manifest);
* ``speech_s``: each unit starting the speech (its play log's ``start``), p50 / p99 / max;
  ``speech_spread_ms``: the spread of those starts, ``in_step_ms``: the p1..p99 spread of where
  each unit's audio began (start − offset: a unit that got its ``play`` late joins further in);
* ``margin_ms``: the start margin air control named (derived from the play round trips it
  measured: controller/airing/margin.py); ``cpu_s``: this process's CPU (the controller and its
  database writer) from the tap until every unit started.

The first run is cold (no play measured yet: the margin is its initial value), later ones warm.
Measured in the same run, as the baseline: the same bytes (manifest + chunks) published by one
plain client to N plain subscribers in as many processes, time until every subscriber has all of
them (bench/fanout.py's raw fan-out). The last line printed is one JSON object. With
``LP_BENCH_PROFILE=FILE`` the controller process's last run is profiled (cProfile) into FILE.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
from asyncio.subprocess import Process
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.fanout import run_baseline, split, stop, units_online  # noqa: E402
from bench.raw_mqtt import subscriber, until_told_to_stop  # noqa: E402
from devices import protocol as p  # noqa: E402
from devices.broker import BrokerProcess, mosquitto_path  # noqa: E402
from devices.mqtt import BrokerAddress  # noqa: E402

logger = logging.getLogger("bench.emergency")

TEXT = "Khẩn cấp: bão số 9 đổ bộ trong đêm nay. Đề nghị bà con ở trong nhà, tránh xa bờ sông."


# ----------------------------------------------------------------------------- child processes


async def spawn_child(port: int, role: str, *args: str) -> Process:
    """A child of this script in ``role``, once it is ready (it printed READY)."""
    child = await asyncio.create_subprocess_exec(
        sys.executable, __file__, "--role", role, "--port", str(port), *args,
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, cwd=ROOT)
    assert child.stdout is not None
    line = await asyncio.wait_for(child.stdout.readline(), 300)
    assert line.strip() == b"READY", line
    return child


async def spawn_sims(port: int, nodes: int, procs: int, play_log: Path) -> list[Process]:
    """``procs`` simulator children sharing ``nodes`` units, each ready."""
    return [await spawn_child(port, "sim", "--nodes", str(nodes), "--first", str(first), "--count",
                              str(count), "--play-log", str(play_log))
            for first, count in split(nodes, procs)]


def same_bytes(sv: Any, sha256: str, bid: str) -> list[bytes]:
    """What the controller sent of broadcast ``bid`` (audio ``sha256``) to one scope: its manifest
    and its chunks."""
    from sqlmodel import select

    from controller.airing.models import Broadcast

    with sv.db.session() as s:
        bc = s.exec(select(Broadcast).where(Broadcast.id == bid)).one()
        expires_at = bc.expires_at
    data = sv.audio.get(sha256)  # the bulletin's (the store also keeps the attention tone)
    info, frames = p.chunk_audio(data, duration_ms=1000)
    manifest = p.Manifest(bc=bid, title="x" * 20, priority=p.Priority.EMERGENCY, audio=info,
                          expires_at=expires_at, hold=True)
    return [p.encode(manifest), *frames]


async def sim_units(port: int, nodes: int, first: int, count: int, play_log: Path) -> None:
    """Child process: units ``first`` .. ``first + count - 1``, appending to one shared play log."""
    from firmware_sim.fleet import Fleet, fleet_specs
    from firmware_sim.playlog import PlayLog

    specs = fleet_specs(nodes, id_prefix="fan", zones=1)[first:first + count]
    fleet = Fleet(specs, BrokerAddress(port=port), heartbeat_s=30, time_scale=0.001, keep_audio=False,
                  play_log=PlayLog(play_log))
    await fleet.start()
    await until_told_to_stop()
    print("SUMMARY " + json.dumps(fleet.summary()), flush=True)
    await fleet.stop()


# ----------------------------------------------------------------------------- measuring


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def spread(name: str, seconds: list[float], nodes: int) -> dict[str, Any]:
    return {f"{name}_units": len(seconds), f"{name}_p50_s": round(pct(seconds, 0.5), 3),
            f"{name}_p99_s": round(pct(seconds, 0.99), 3),
            f"{name}_max_s": round(max(seconds), 3) if seconds else None,
            f"{name}_missing": nodes - len(seconds)}


async def watch_wire(port: int, out: Path) -> None:
    """Child process: a plain subscriber of every broadcast's manifest and data topics (in a process
    of its own: the controller's busy loop must not delay its clock); the first arrival of each
    (bc, manifest|data) is appended to ``out`` as one JSON line."""
    seen: set[tuple[str, str]] = set()
    fd = os.open(out, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def on_message(topic: str, payload: bytes, retained: bool) -> None:
        parts = topic.split("/")
        key = (parts[-2], parts[-1]) if len(parts) >= 6 else ("", "")
        if key[0] and not retained and payload and key not in seen:
            seen.add(key)
            os.write(fd, (json.dumps({"bc": key[0], "kind": key[1], "wall": time.time()}) + "\n").encode())

    client = subscriber("bench-wire", BrokerAddress(port=port), "lp/group/+/bcast/+/+", qos=0,
                        on_message=on_message)
    client.start()
    await client.connected.wait()
    await until_told_to_stop()
    await client.stop()
    os.close(fd)


def wire_seen(path: Path) -> dict[tuple[str, str], float]:
    """What :func:`watch_wire` saw first: (bc, kind) → wall seconds."""
    try:
        lines = path.read_text().splitlines()
    except FileNotFoundError:
        return {}
    return {(d["bc"], d["kind"]): d["wall"] for d in map(json.loads, lines)}


class LogTail:
    """The play log read incrementally (only what was appended since the last read): polling the
    whole file every 0.1 s would load the controller's process it measures."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0
        self.events: list[Any] = []

    def read(self) -> list[Any]:
        from firmware_sim.playlog import PlayEvent

        try:
            with self.path.open("rb") as f:
                f.seek(self.offset)
                data = f.read()
        except FileNotFoundError:
            return self.events
        complete = data[:data.rfind(b"\n") + 1]
        self.offset += len(complete)
        self.events += [PlayEvent(**json.loads(line)) for line in complete.splitlines() if line.strip()]
        return self.events


async def all_started(log: LogTail, bid: str, nodes: int, within_s: float) -> list[Any]:
    """The play log's events of ``bid`` once every unit has started it (or ``within_s`` passed)."""
    deadline = time.monotonic() + within_s
    while True:
        events = [e for e in log.read() if e.bc == bid]
        if len({e.unit for e in events if e.event == "start"}) >= nodes or time.monotonic() > deadline:
            return events
        await asyncio.sleep(0.25)


class SentClock:
    """When the controller's MQTT client wrote the first chunk of a broadcast to its socket: the
    first socket write (paho's ``loop_write``) after a ``.../{bc}/data`` publish was queued. What
    :func:`watch_wire` sees comes later by the broker's fan-out of the manifest and of that chunk
    to the units ahead of it."""

    def __init__(self, mqtt: Any) -> None:
        self.queued: dict[str, float] = {}
        self.written: dict[str, float] = {}
        queue, write = mqtt.publish_nowait, mqtt._writable

        def publish_nowait(topic: str, payload: bytes, **kw: Any) -> int:
            mid = queue(topic, payload, **kw)
            if topic.endswith("/data"):
                self.queued.setdefault(topic.split("/")[-2], time.time())
            return int(mid)

        def writable() -> None:
            write()
            for bc in self.queued.keys() - self.written.keys():
                self.written[bc] = time.time()

        mqtt.publish_nowait, mqtt._writable = publish_nowait, writable


async def one_emergency(sv: Any, client: Any, watch: Path, log: LogTail, bulletin_id: int,
                        nodes: int, sent: SentClock) -> dict[str, Any]:
    """POST one emergency to zone1 and time it (see the module docstring)."""
    cpu0, t0 = time.process_time(), time.time()
    r = await client.post("/api/broadcasts", json={"bulletin_id": bulletin_id, "priority": "emergency",
                                                   "target": {"zones": ["zone1"]}})
    post_s = time.time() - t0
    assert r.status_code == 201, r.text
    bid = r.json()["id"]
    events = await all_started(log, bid, nodes, 120)
    cpu_s = time.process_time() - cpu0
    seen = wire_seen(watch)
    first_start: dict[str, float] = {}
    tone: dict[str, float] = {}
    origin: dict[str, float] = {}  # where each unit's audio began (start - offset): in step = equal
    for e in events:
        target = tone if e.event == "tone" else first_start if e.event == "start" else None
        if target is not None:
            target.setdefault(e.unit, e.wall_ms / 1000 - t0)
        if e.event == "start":
            origin.setdefault(e.unit, e.wall_ms - e.offset_ms)
    speech, origins = list(first_start.values()), list(origin.values())
    out = {"bc": bid, "post_s": round(post_s, 3), "margin_ms": sv.air.margin.current_ms(),
           "first_manifest_s": round(seen.get((bid, "manifest"), float("nan")) - t0, 3),
           "first_chunk_sent_s": round(sent.written.get(bid, float("nan")) - t0, 3),
           "first_chunk_s": round(seen.get((bid, "data"), float("nan")) - t0, 3),
           **spread("tone", list(tone.values()), nodes), **spread("speech", speech, nodes),
           "speech_spread_ms": round((max(speech) - min(speech)) * 1000) if speech else None,
           "in_step_ms": round(pct(origins, 0.99) - pct(origins, 0.01)) if origins else None,
           "cpu_s": round(cpu_s, 3), "writer_batches": sv.writer.batches}
    await wait_done(sv, bid)
    return out


async def wait_done(sv: Any, bid: str, within_s: float = 120) -> None:
    """Until the broadcast is no longer on its way (every unit final), at most ``within_s``."""
    deadline = time.monotonic() + within_s
    while bid in sv.delivery.active and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    await sv.writer.flush()


# ----------------------------------------------------------------------------- the controller


async def run_controller(port: int, nodes: int, data_dir: Path, procs: int, runs: int) -> dict[str, Any]:
    import httpx

    from controller.app import create_app
    from controller.core.web_settings import HttpSettings
    from controller.fleet.settings import MqttSettings
    from controller.settings import Settings
    from firmware_sim.fleet import fleet_specs

    log = data_dir / "play.jsonl"
    settings = Settings(data_dir=data_dir, mqtt=MqttSettings(port=port),  # type: ignore[call-arg]
                        http=HttpSettings(request_deadline_s=300),  # type: ignore[call-arg]
                        admin_password="bench-password")
    app = create_app(settings)
    sims = await spawn_sims(port, nodes, procs, log)
    watch = data_dir / "wire.jsonl"
    watcher = await spawn_child(port, "watch", "--play-log", str(watch))
    async with app.router.lifespan_context(app):
        sv = app.state.services
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://c",
                                     auth=("admin", "bench-password"), timeout=300) as client:
            # pre-rendered: the speech is made before the tap (and before the units load the machine)
            r = await client.post("/api/bulletins", json={"text": TEXT, "priority": "emergency"})
            assert r.status_code == 201, r.text
            b = r.json()
            await units_online(sv, client, [spec.node_id for spec in fleet_specs(nodes, id_prefix="fan")])
            results, tail, sent = [], LogTail(log), SentClock(sv.link.client)
            for i in range(runs):
                prof = cProfile.Profile() if os.environ.get("LP_BENCH_PROFILE") and i == runs - 1 else None
                if prof is not None:
                    prof.enable()
                results.append(await one_emergency(sv, client, watch, tail, b["id"], nodes, sent))
                if prof is not None:
                    prof.disable()
                    prof.dump_stats(os.environ["LP_BENCH_PROFILE"])
                logger.info("run %d: %s", i + 1, results[-1])
            await stop([*sims, watcher])
            frames = same_bytes(sv, b["audio"]["sha256"], results[0]["bc"])
    return {"audio_bytes": b["audio"]["size"], "audio_seconds": b["audio"]["duration_ms"] / 1000,
            "runs": results, "frames": frames}


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """min / median over the runs of each timed figure."""
    out: dict[str, Any] = {}
    for key in ("post_s", "first_chunk_sent_s", "first_chunk_s", "tone_p99_s", "speech_p99_s",
                "speech_spread_ms", "in_step_ms", "cpu_s", "margin_ms"):
        values = [r[key] for r in runs if isinstance(r.get(key), int | float)]
        if values:
            out[key] = {"min": min(values), "median": round(statistics.median(values), 3)}
    return out


def sim_processes(args: argparse.Namespace) -> int:
    return args.sim_procs if args.sim_procs > 0 else max(1, min(4, args.nodes // 250))


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    kind = args.broker if args.broker != "auto" else ("mosquitto" if mosquitto_path() else "embedded")
    procs = sim_processes(args)
    with tempfile.TemporaryDirectory(prefix="lp-bench-") as tmp, BrokerProcess(kind) as broker:
        ctl = await run_controller(broker.port, args.nodes, Path(tmp), procs, args.runs)
        frames = ctl.pop("frames")
        raw = await run_baseline(broker.port, args.nodes, frames, procs) if frames else float("nan")
    runs = ctl.pop("runs")
    return {"bench": "emergency", "broker": kind, "nodes": args.nodes, "sim_processes": procs,
            "messages": len(frames), **ctl, "raw_fanout_seconds": round(raw, 3),
            "summary": summarise(runs), "cold": runs[0], "warm": runs[1:]}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--nodes", type=int, default=200)
    ap.add_argument("--runs", type=int, default=3, help="emergencies in a row (the first is cold)")
    ap.add_argument("--sim-procs", type=int, default=0,
                    help="processes running the simulated units (and the raw subscribers); "
                         "0 = one per 250 units, at most 4")
    ap.add_argument("--broker", choices=["auto", "mosquitto", "embedded"], default="auto")
    ap.add_argument("--role", choices=["bench", "sim", "watch"], default="bench", help=argparse.SUPPRESS)
    ap.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--first", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--count", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--play-log", type=Path, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.role == "sim":
        asyncio.run(sim_units(args.port, args.nodes, args.first, args.count, args.play_log))
        return 0
    if args.role == "watch":
        asyncio.run(watch_wire(args.port, args.play_log))
        return 0
    logger.setLevel(logging.INFO)
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    result = asyncio.run(main_async(args))
    print(json.dumps(result, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
