"""What a relay (tiếp sóng) costs the controller, per mode, against a raw MQTT fan-out.

    python bench/relay.py                       # 50 units, 20 s per mode, a 3 s upstream outage
    python bench/relay.py --units 100 --seconds 30 --outage 5

Processes, as in a ward: Mosquitto (or the embedded broker), the controller (this script with
``--role controller``: ``create_app`` served by uvicorn, lifespan on, SQLite in a temporary
directory) and this process, which runs the N simulated units (firmware_sim, one zone) and a
local radio station in a thread (controller/demo_station.py, the demo's, with a steady 440 Hz
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
import array
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
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from devices.broker import BrokerProcess, mosquitto_path  # noqa: E402
from devices.mqtt import AsyncMqttClient, BrokerAddress  # noqa: E402
from devices.protocol import (  # noqa: E402
    LIVE_FRAME_MS,
    LIVE_HEADER,
    LIVE_SAMPLE_RATE,
    pack_live_frame,
    parse_live_frame,
)

logger = logging.getLogger("bench.relay")

PASSWORD = "bench-password"
AUTH = ("admin", PASSWORD)
ZONE = "z"
LOUD_PEAK = 1500  # a frame whose peak passes this is audible tone (the tone peaks near 4000)
GAP_S = 0.5  # silence this long before audio counts as audio coming back
RAW_TOPIC = "bench/relay/live"


def pct(values: list[float], q: float) -> float | None:
    s = sorted(values)
    return round(s[min(len(s) - 1, round(q * (len(s) - 1)))], 1) if s else None


# ----------------------------------------------------------------------------- CPU time


def cpu_seconds(pid: int) -> float:
    """CPU time of a process and its children: live ones and those already waited for."""
    try:
        import psutil
    except ImportError:
        return _proc_cpu_seconds(pid)
    try:
        proc = psutil.Process(pid)
        t = proc.cpu_times()
        total = t.user + t.system + t.children_user + t.children_system
        for child in proc.children(recursive=True):
            try:
                c = child.cpu_times()
                total += c.user + c.system
            except psutil.NoSuchProcess:
                pass
        return float(total)
    except psutil.NoSuchProcess:
        return 0.0


def _proc_cpu_seconds(pid: int) -> float:
    tick = os.sysconf("SC_CLK_TCK")

    def stat(p: int) -> list[str]:
        raw = Path(f"/proc/{p}/stat").read_text()
        return raw[raw.rindex(")") + 2:].split()  # fields from 3 (state) on

    def children(p: int) -> list[int]:
        out: list[int] = []
        for task in Path(f"/proc/{p}/task").iterdir():
            with open(task / "children") as f:
                out += [int(c) for c in f.read().split()]
        return out

    try:
        f = stat(pid)
        total = sum(int(x) for x in f[11:15])  # utime stime cutime cstime
        todo = children(pid)
        while todo:
            c = todo.pop()
            try:
                total += sum(int(x) for x in stat(c)[11:13])
                todo += children(c)
            except OSError:
                pass
        return total / tick
    except OSError:
        return 0.0


class CpuWindow:
    """CPU % (of one core) of some processes between ``start`` and ``stop``."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = pids
        self.t0 = 0.0
        self.c0: dict[str, float] = {}
        self.result: dict[str, float] = {}

    def start(self) -> None:
        self.t0 = time.monotonic()
        self.c0 = {k: cpu_seconds(p) for k, p in self.pids.items()}

    def stop(self) -> dict[str, float]:
        wall = time.monotonic() - self.t0
        self.result = {k: round(100 * (cpu_seconds(p) - self.c0[k]) / wall, 1) for k, p in self.pids.items()}
        return self.result


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

        c = AsyncMqttClient(f"raw-sub-{i}", BrokerAddress(port=port), on_message=on, log_failures=False)
        c._on_connect = lambda: c.subscribe([RAW_TOPIC], qos=0)
        return c

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


# ----------------------------------------------------------------------------- units


class Ear:
    """When one unit played audible audio (its live output, scanned incrementally)."""

    def __init__(self, sim: Any) -> None:
        self.sim = sim
        self.cursor = 0
        self.loud: list[float] = []

    def update(self) -> None:
        out = self.sim.live.output
        self.cursor = min(self.cursor, len(out))
        for at, _, pcm in out[self.cursor:]:
            samples = array.array("h")
            samples.frombytes(pcm[: len(pcm) & ~1])
            if samples and max(max(samples), -min(samples)) > LOUD_PEAK:
                self.loud.append(at)
        self.cursor = len(out)

    def first_after(self, t: float) -> float | None:
        return next((x for x in self.loud if x >= t), None)

    def back_after(self, t_up: float) -> float | None:
        """The first audible frame from ``t_up`` on that follows a silence of GAP_S (what a unit
        still played from its buffers when the station went off is not audio coming back)."""
        prev: float | None = None
        for x in self.loud:
            if x >= t_up and prev is not None and x - prev > GAP_S:
                return x
            prev = x
        return None


async def wait_until(pred: Callable[[], bool], timeout: float, what: str, every: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        await asyncio.sleep(every)
    logger.warning("timed out after %.0f s waiting for %s", timeout, what)
    return False


class Bench:
    def __init__(self, args: argparse.Namespace, broker: BrokerProcess, ctl_pid: int, addr: str,
                 sims: list[Any], station: Any) -> None:
        import httpx

        self.args = args
        self.broker = broker
        self.ctl_pid = ctl_pid
        self.sims = sims
        self.ears = [Ear(s) for s in sims]
        self.seqs: list[list[int]] = [[] for _ in sims]  # live frame numbers each unit received
        for sim, seqs in zip(sims, self.seqs, strict=True):
            sim.live.on_frame = self._counting(sim.live.on_frame, seqs)
        self.station = station
        self.http = httpx.AsyncClient(base_url=f"http://{addr}", auth=AUTH, timeout=60)

    async def stats(self) -> dict[str, int]:
        r = await self.http.get("/bench/stats")
        r.raise_for_status()
        return dict(r.json())

    @staticmethod
    def _counting(on_frame: Callable[[str, bytes], None], seqs: list[int]) -> Callable[[str, bytes], None]:
        def counted(session: str, payload: bytes) -> None:
            if len(payload) >= LIVE_HEADER.size:
                seqs.append(LIVE_HEADER.unpack_from(payload)[3])
            on_frame(session, payload)

        return counted

    def units_frames(self) -> tuple[int, int]:
        st = [s.live.stats for s in self.sims]
        return sum(x.late for x in st), sum(x.lost for x in st)

    def hear(self) -> None:
        for e in self.ears:
            e.update()

    async def listen(self) -> None:
        """Scan what the units play as it comes: one long scan would stall their playout."""
        while True:
            self.hear()
            await asyncio.sleep(0.2)

    async def window(self) -> dict[str, Any]:
        """CPU, frames and egress over ``--seconds``."""
        broker_pid = self.broker.proc.pid if self.broker.proc else 0
        cpu = CpuWindow({"controller": self.ctl_pid, "broker": broker_pid})
        for seqs in self.seqs:
            seqs.clear()
        s0, u0 = await self.stats(), self.units_frames()
        cpu.start()
        await asyncio.sleep(self.args.seconds)
        used = cpu.stop()
        s1 = await self.stats()
        await asyncio.sleep(0.5)  # the frames on their way
        u1 = self.units_frames()
        # frames numbered seq0 .. seq1-1 were published in the window: which did each unit get?
        seq0, seq1 = s0["live_seq"], s1["live_seq"]
        sent = seq1 - seq0
        received = sum(len({q for q in seqs if seq0 <= q < seq1}) for seqs in self.seqs)
        expected = sent * len(self.sims)
        return {"cpu_pct": used["controller"], "broker_cpu_pct": used["broker"],
                "mqtt_egress_bytes": s1["mqtt_bytes_out"] - s0["mqtt_bytes_out"],
                "frames_sent": sent, "frames_received": received,
                "lost_pct": round(min(100.0, max(0.0, 100 * (expected - received) / expected)), 3) if expected
                else None,
                "frames_late": u1[0] - u0[0], "frames_played_as_silence": u1[1] - u0[1]}

    async def republish(self, url: str) -> dict[str, Any]:
        self.hear()
        t_post = time.monotonic()
        r = await self.http.post("/api/relays", json={"url": url, "mode": "republish",
                                                      "target": {"zones": [ZONE]}})
        r.raise_for_status()
        rid = r.json()["id"]

        def all_heard(t: float) -> bool:
            self.hear()
            return all(e.first_after(t) is not None for e in self.ears)

        first_frame: float | None = None  # the controller published its first live frame
        deadline = time.monotonic() + 60
        while not all_heard(t_post) and time.monotonic() < deadline:
            if first_frame is None and (await self.stats())["live_seq"] > 0:
                first_frame = round((time.monotonic() - t_post) * 1000, 1)
            await asyncio.sleep(0.05)
        first = [(x - t_post) * 1000 for e in self.ears if (x := e.first_after(t_post)) is not None]
        if len(first) < len(self.ears):
            logger.warning("only %d of %d units played the relay within 60 s", len(first), len(self.ears))
        logger.info("relay %s: first audio p50 %s ms; measuring %.0f s", rid, pct(first, 0.5),
                    self.args.seconds)
        out: dict[str, Any] = {"relay": rid, "units_heard": len(first), "first_frame_ms": first_frame,
                               "first_audio_ms_p50": pct(first, 0.5), "first_audio_ms_p95": pct(first, 0.95)}
        out.update(await self.window())
        out["recovery_ms_p50"] = out["recovery_ms_max"] = None
        if self.args.outage > 0:
            self.station.up.clear()
            logger.info("station off the air for %.1f s", self.args.outage)
            await asyncio.sleep(self.args.outage)
            t_up = time.monotonic()
            self.station.up.set()

            def all_back() -> bool:
                self.hear()
                return all(e.back_after(t_up) is not None for e in self.ears)

            await wait_until(all_back, 60, "every unit to play again after the outage", every=0.05)
            back = [max(0.0, (x - t_up) * 1000) for e in self.ears if (x := e.back_after(t_up)) is not None]
            out.update(units_recovered=len(back), recovery_ms_p50=pct(back, 0.5),
                       recovery_ms_max=round(max(back), 1) if back else None)
            state = (await self.http.get(f"/api/relays/{rid}")).json()
            out["controller_retries"] = state.get("retries")
            logger.info("recovered: p50 %s ms, max %s ms", out["recovery_ms_p50"], out["recovery_ms_max"])
        r = await self.http.delete(f"/api/relays/{rid}")
        r.raise_for_status()
        await wait_until(lambda: all(not s.live.active for s in self.sims), 15, "units to leave the session")
        await asyncio.sleep(1.0)
        return out

    async def node_fetch(self, url: str) -> dict[str, Any]:
        s0 = await self.stats()
        t_post = time.monotonic()
        r = await self.http.post("/api/relays", json={"url": url, "mode": "node_fetch",
                                                      "target": {"zones": [ZONE]}})
        r.raise_for_status()
        rid = r.json()["id"]
        n = len(self.sims)
        first: dict[int, float] = {}
        all_ms: float | None = None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            for i, s in enumerate(self.sims):
                if i not in first and s.relay.state == "playing":
                    first[i] = (time.monotonic() - t_post) * 1000
            got = (await self.http.get(f"/api/relays/{rid}")).json()
            if len(got.get("units_playing") or []) >= n:
                all_ms = round((time.monotonic() - t_post) * 1000, 1)
                break
            await asyncio.sleep(0.05)
        else:
            logger.warning("not every unit reported playing within 60 s")
        logger.info("node_fetch %s: all %d units playing after %s ms; measuring %.0f s", rid, n, all_ms,
                    self.args.seconds)
        out: dict[str, Any] = {"relay": rid, "all_playing_ms": all_ms,
                               "unit_playing_ms_p50": pct(list(first.values()), 0.5),
                               "unit_playing_ms_p95": pct(list(first.values()), 0.95)}
        w = await self.window()
        out.update(cpu_pct=w["cpu_pct"], broker_cpu_pct=w["broker_cpu_pct"],
                   mqtt_egress_bytes=w["mqtt_egress_bytes"])
        out["mqtt_egress_bytes_with_start"] = (await self.stats())["mqtt_bytes_out"] - s0["mqtt_bytes_out"]
        out["units_playing_at_end"] = sum(s.relay.state == "playing" for s in self.sims)
        r = await self.http.delete(f"/api/relays/{rid}")
        r.raise_for_status()
        await wait_until(lambda: all(s.relay.state == "" for s in self.sims), 15, "units to stop relaying")
        return out


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
                logger.info("%d units online", args.units)
                modes: dict[str, Any] = {}
                for name, url in (("republish_mp3", f"{station.base}/radio.mp3"),
                                  ("republish_hls", f"{station.base}/hls/live.m3u8")):
                    logger.info("%s: %s", name, url)
                    modes[name] = await bench.republish(url)
                    logger.info("%s: %s", name, modes[name])
                logger.info("node_fetch: %s/radio.mp3", station.base)
                modes["node_fetch"] = await bench.node_fetch(f"{station.base}/radio.mp3")
                logger.info("node_fetch: %s", modes["node_fetch"])
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

    def ratio(a: float | None, b: float | None) -> float | None:
        return round(a / b, 2) if a is not None and b else None

    ratios: dict[str, Any] = {}
    for name in ("republish_mp3", "republish_hls"):
        m = modes[name]
        ratios[f"{name}_cpu_vs_raw"] = ratio(m["cpu_pct"], base["cpu_pct"])
        ratios[f"{name}_first_audio_vs_raw_latency"] = ratio(m["first_audio_ms_p50"], base["latency_ms_p50"])
        ratios[f"{name}_cpu_vs_node_fetch"] = ratio(m["cpu_pct"], modes["node_fetch"]["cpu_pct"])
    ratios["node_fetch_cpu_vs_raw"] = ratio(modes["node_fetch"]["cpu_pct"], base["cpu_pct"])
    return {"bench": "relay", "broker": kind, "units": args.units, "seconds": args.seconds,
            "outage_s": args.outage, "cpus": os.cpu_count(), **modes, "baseline": base, "ratios": ratios}


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
