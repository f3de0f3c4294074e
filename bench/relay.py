"""What a relay (tiếp sóng) costs the controller, per mode, against a raw MQTT fan-out.

    python bench/relay.py                       # 50 units, 20 s per mode, a 3 s upstream outage
    python bench/relay.py --units 100 --seconds 30 --outage 5

Processes, as in a ward: Mosquitto (or the embedded broker), the controller (this script with
``--role controller``: ``create_app`` served by uvicorn, lifespan on, SQLite in a temporary
directory) and this process, which runs the N simulated units (firmware_sim, one zone) and a
local radio station in a thread (controller/cli/demo_station.py, the demo's, with a steady 440 Hz
tone: an endless real-time MP3 stream and a live HLS playlist of 1 s AAC segments). Controller CPU is the
controller process's own CPU time plus its children's (the ffmpeg decoding a republished
stream), read with psutil (/proc without it); the broker's CPU is read the same way.

1. ``republish`` (``POST /api/relays`` with ``mode: "republish"``), once with the MP3 stream and
   once with the HLS playlist: time from the POST to the controller's first live frame
   (``first_frame_ms``) and to the first audible frame each unit plays (a unit that gets no
   frame for 2 s after ``live_start`` gives up and rejoins at the next announcement, every 2 s:
   a slow first frame costs up to 2 s more);
   then over ``--seconds``: controller CPU, live frames the controller published, frames the
   units received (lost % = frames that never arrived); then the station goes off the air for
   ``--outage`` seconds and comes back: time from its return until each unit plays audio again.
2. ``node_fetch``: time from the POST until ``GET /api/relays/{id}`` lists every unit in
   ``units_playing`` (their telemetry says ``relay: playing``), then controller CPU and the
   controller's MQTT egress over ``--seconds`` (the units fetch the stream themselves).
3. Baseline in the same run, no controller: one plain MQTT client (its own process) publishes
   the same number of 40 ms PCM live frames (QoS 0, real time) to N plain subscribers: its CPU,
   frames lost, publish→receive latency. ``ratios`` compares the modes with it.

The simulated units share one process, so the default thread pool is widened to one thread per
unit (a unit's blocking stream reads in node_fetch are not queued behind the others'). The last
line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import json
import logging
import math
import os
import socket
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.cputime import CpuWindow  # noqa: E402
from bench.raw_mqtt import subscriber  # noqa: E402
from bench.relay_units import PASSWORD, ZONE, Bench, pct  # noqa: E402
from devices.broker import BrokerProcess, mosquitto_path  # noqa: E402
from devices.mqtt import AsyncMqttClient, BrokerAddress  # noqa: E402
from devices.protocol import (  # noqa: E402
    LIVE_FRAME_MS,
    LIVE_SAMPLE_RATE,
    pack_live_frame,
    parse_live_frame,
)

# The controller, the simulator, uvicorn and httpx are imported in the functions that use them, not
# here: the raw publisher's process (--role rawpub) starts without them.

logger = logging.getLogger("bench.relay")

RAW_TOPIC = "bench/relay/live"


# ----------------------------------------------------------------------------- baseline


def tone_frame(seq: int) -> bytes:
    n = LIVE_SAMPLE_RATE * LIVE_FRAME_MS // 1000
    return struct.pack(f"<{n}h", *(int(4000 * math.sin(2 * math.pi * 440 * (seq * n + k) / LIVE_SAMPLE_RATE))
                                   for k in range(n)))


async def raw_publisher(port: int, frames: int) -> None:
    """Child process: wait for GO on stdin, publish ``frames`` live frames in real time, print
    DONE, wait for EXIT (so the parent reads our CPU time while we still exist)."""
    pub = AsyncMqttClient("raw-pub", BrokerAddress(port=port))
    pub.start()
    await asyncio.wait_for(pub.connected.wait(), 10)
    loop = asyncio.get_running_loop()
    sys.stdout.write("READY\n")
    sys.stdout.flush()
    await loop.run_in_executor(None, sys.stdin.readline)
    pcm = [tone_frame(i) for i in range(25)]  # a second of tone, cycled
    t0 = loop.time()
    for seq in range(frames):
        pub.publish_nowait(RAW_TOPIC, pack_live_frame(seq, int(time.time() * 1000), pcm[seq % 25]), qos=0)
        await asyncio.sleep(max(0.0, t0 + (seq + 1) * LIVE_FRAME_MS / 1000 - loop.time()))
    await asyncio.sleep(0.3)
    sys.stdout.write("DONE\n")
    sys.stdout.flush()
    await loop.run_in_executor(None, sys.stdin.readline)
    await pub.stop()


async def baseline(port: int, units: int, seconds: float, broker_pid: int) -> dict[str, Any]:
    frames = int(seconds * 1000 / LIVE_FRAME_MS)
    got = [0] * units
    lat: list[float] = []

    def make(i: int) -> AsyncMqttClient:
        def on(topic: str, payload: bytes, retained: bool) -> None:
            got[i] += 1
            if i % 10 == 0:  # latency from a sample of the subscribers
                lat.append(time.time() * 1000 - parse_live_frame(payload).ts_ms)

        return subscriber(f"raw-sub-{i}", BrokerAddress(port=port), RAW_TOPIC, qos=0, on_message=on,
                          log_failures=False)

    subs = [make(i) for i in range(units)]
    for c in subs:
        c.start()
    await asyncio.wait_for(asyncio.gather(*(c.connected.wait() for c in subs)), 30)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, __file__, "--role", "rawpub", "--port", str(port), "--frames", str(frames),
        stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert proc.stdin is not None and proc.stdout is not None
    assert (await asyncio.wait_for(proc.stdout.readline(), 30)).strip() == b"READY"
    await asyncio.sleep(1.0)  # subscriptions in place
    cpu = CpuWindow({"publisher": proc.pid, "broker": broker_pid})
    cpu.start()
    proc.stdin.write(b"GO\n")
    await proc.stdin.drain()
    assert (await asyncio.wait_for(proc.stdout.readline(), seconds + 30)).strip() == b"DONE"
    used = cpu.stop()
    proc.stdin.write(b"EXIT\n")
    await proc.stdin.drain()
    await proc.wait()
    await asyncio.gather(*(c.stop() for c in subs))
    received = sum(got)
    return {"frames_sent": frames, "frames_received": received,
            "lost_pct": round(100 * max(0, frames * units - received) / (frames * units), 3),
            "cpu_pct": used["publisher"], "broker_cpu_pct": used["broker"],
            "latency_ms_p50": pct(lat, 0.5), "latency_ms_p95": pct(lat, 0.95)}


# ----------------------------------------------------------------------------- controller process


async def controller_role(port: int, data_dir: str) -> None:
    """Child process: the controller (create_app, lifespan on) on a free HTTP port, printed as
    ``READY <port>``, plus ``GET /bench/stats`` (no auth) with its MQTT egress and live frames."""
    import uvicorn

    from controller.app import create_app
    from controller.fleet.settings import MqttSettings
    from controller.settings import Settings

    settings = Settings(data_dir=Path(data_dir), mqtt=MqttSettings(port=port),  # type: ignore[call-arg]
                        admin_password=PASSWORD)
    app = create_app(settings)

    async def stats() -> dict[str, int]:
        sv = app.state.services
        sessions = list(sv.relays.live.sessions.values())
        return {"mqtt_bytes_out": sv.link.client.stats.bytes_out,
                "live_frames_out": sum(s.stats.frames_out for s in sessions),
                "live_seq": max((s.seq for s in sessions), default=0)}

    app.add_api_route("/bench/stats", stats, methods=["GET"])
    app.router.routes.insert(0, app.router.routes.pop())  # ahead of the static files at "/"
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        if task.done():
            task.result()
            raise RuntimeError("uvicorn did not start")
        await asyncio.sleep(0.05)
    sys.stdout.write(f"READY {sock.getsockname()[1]}\n")
    sys.stdout.flush()
    await task


# ----------------------------------------------------------------------------- the ward and its runs


async def start_controller(port: int, data_dir: str, station: str) -> tuple[asyncio.subprocess.Process, str]:
    """The controller process, allowed to relay the local ``station`` (127.0.0.1: not public)."""
    env = {**os.environ, "LOAPHUONG_RELAY__ALLOWED_STATIONS": json.dumps([station])}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, __file__, "--role", "controller", "--port", str(port), "--data-dir", data_dir,
        cwd=ROOT, stdout=subprocess.PIPE, env=env)
    assert proc.stdout is not None
    line = (await asyncio.wait_for(proc.stdout.readline(), 60)).decode().split()
    if not line or line[0] != "READY":
        raise RuntimeError(f"the controller did not start: {line}")
    return proc, f"127.0.0.1:{line[1]}"


async def ward_online(bench: Bench, ids: list[str], sims: list[Any]) -> None:
    """One zone of units registered through the API, started, and online (configs in place)."""
    r = await bench.http.post("/api/zones", json={"id": ZONE, "name": "Bench"})
    r.raise_for_status()
    for n in ids:
        r = await bench.http.post("/api/nodes", json={"id": n, "zones": [ZONE]})
        r.raise_for_status()
    await asyncio.gather(*(s.start() for s in sims))

    async def online() -> bool:
        nodes = {x["id"]: x["status"] for x in (await bench.http.get("/api/nodes")).json()}
        return all(nodes.get(i) == "online" for i in ids)

    deadline = time.monotonic() + 60
    while not await online():
        if time.monotonic() > deadline:
            raise RuntimeError("the simulated units did not come online")
        await asyncio.sleep(0.3)
    await asyncio.sleep(2.0)  # configs and group subscriptions
    logger.info("%d units online", len(ids))


async def run_modes(bench: Bench, station: str) -> dict[str, Any]:
    """republish (MP3, then HLS), then node_fetch, of the local station."""
    modes: dict[str, Any] = {}
    for name, url in (("republish_mp3", f"{station}/radio.mp3"),
                      ("republish_hls", f"{station}/hls/live.m3u8")):
        logger.info("%s: %s", name, url)
        modes[name] = await bench.republish(url)
        logger.info("%s: %s", name, modes[name])
    logger.info("node_fetch: %s/radio.mp3", station)
    modes["node_fetch"] = await bench.node_fetch(f"{station}/radio.mp3")
    logger.info("node_fetch: %s", modes["node_fetch"])
    return modes


def ratios(modes: dict[str, Any], base: dict[str, Any]) -> dict[str, Any]:
    """Each mode against the raw fan-out baseline (and republish against node_fetch)."""
    def ratio(a: float | None, b: float | None) -> float | None:
        return round(a / b, 2) if a is not None and b else None

    out: dict[str, Any] = {}
    for name in ("republish_mp3", "republish_hls"):
        m = modes[name]
        out[f"{name}_cpu_vs_raw"] = ratio(m["cpu_pct"], base["cpu_pct"])
        out[f"{name}_first_audio_vs_raw_latency"] = ratio(m["first_audio_ms_p50"], base["latency_ms_p50"])
        out[f"{name}_cpu_vs_node_fetch"] = ratio(m["cpu_pct"], modes["node_fetch"]["cpu_pct"])
    out["node_fetch_cpu_vs_raw"] = ratio(modes["node_fetch"]["cpu_pct"], base["cpu_pct"])
    return out


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    from controller.cli.demo_station import DemoStation
    from firmware_sim.node import SimNode

    loop = asyncio.get_running_loop()
    loop.set_default_executor(concurrent.futures.ThreadPoolExecutor(max_workers=args.units + 16))
    kind = "mosquitto" if mosquitto_path() else "embedded"
    station = DemoStation(programme="tone").start()
    try:
        with BrokerProcess(kind) as broker, tempfile.TemporaryDirectory(prefix="lp-relay-") as tmp:
            assert broker.proc is not None
            logger.info("baseline: raw fan-out of %.0f s of live frames to %d subscribers", args.seconds,
                        args.units)
            base = await baseline(broker.port, args.units, args.seconds, broker.proc.pid)
            logger.info("baseline: %s", base)
            ctl, addr = await start_controller(broker.port, tmp, station.base)
            ids = [f"rl-{i:03d}" for i in range(args.units)]
            sims = [SimNode(n, BrokerAddress(port=broker.port), heartbeat_s=15, log_link_failures=False)
                    for n in ids]
            bench = Bench(args, broker, ctl.pid, addr, sims, station)
            listening = asyncio.create_task(bench.listen())
            try:
                await ward_online(bench, ids, sims)
                modes = await run_modes(bench, station.base)
            finally:
                listening.cancel()
                await asyncio.gather(*(s.stop() for s in sims), return_exceptions=True)
                await bench.http.aclose()
                ctl.terminate()
                try:
                    await asyncio.wait_for(ctl.wait(), 20)
                except TimeoutError:
                    ctl.kill()
                    await ctl.wait()
    finally:
        station.stop()

    return {"bench": "relay", "broker": kind, "units": args.units, "seconds": args.seconds,
            "outage_s": args.outage, "cpus": os.cpu_count(), **modes, "baseline": base,
            "ratios": ratios(modes, base)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--units", type=int, default=50)
    ap.add_argument("--seconds", type=float, default=20.0, help="measuring window per mode")
    ap.add_argument("--outage", type=float, default=3.0, help="upstream outage in republish mode (0: none)")
    ap.add_argument("--role", choices=["bench", "controller", "rawpub"], default="bench",
                    help=argparse.SUPPRESS)
    ap.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--frames", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--data-dir", default="", help=argparse.SUPPRESS)
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.role == "controller":
        # a unit's reply to a relay's play_stream / stop is logged as "unknown command id" (the
        # relay hub does not track its commands): once per unit and relay, noise in a bench
        logging.getLogger("controller.fleet.commands").setLevel(logging.ERROR)
        asyncio.run(controller_role(args.port, args.data_dir))
        return 0
    if args.role == "rawpub":
        asyncio.run(raw_publisher(args.port, args.frames))
        return 0
    logger.setLevel(logging.INFO)
    result = asyncio.run(main_async(args))
    sys.stdout.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
