"""Live broadcast latency: mouth-to-speaker through the real controller, and frames lost.

    python bench/live.py                      # 10 units, 10 s of speech, LAN-like links
    python bench/live.py --nodes 40 --net-delay-ms 60 --jitter-ms 40   # 4G-like links

A simulated phone opens ``/api/live/ws`` (uvicorn, real WebSocket, HTTP Basic) and sends PCM
s16le 16 kHz in 20 ms chunks in real time, as an AudioWorklet would. Every 500 ms one chunk is
a marked sound (a loud 1 kHz burst on a quiet background). The simulated units (Mosquitto,
real MQTT) play through their jitter buffers; the bench finds each mark in what every unit
played and takes play instant − send instant (one process, one monotonic clock).

Not included, to add for a real phone and loudspeaker: the phone's capture path (microphone
and OS input buffers, plus the chunk itself: 20 ms with an AudioWorklet, ≥60 ms with
MediaRecorder — ../shared/FACTS.md) and the unit's DAC/amplifier buffer.

Baseline in the same run: the same 40 ms frames published straight over MQTT (QoS0) from
one client to one subscriber — the transport floor the live path adds its framing and jitter
buffer to. The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import math
import struct
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from devices.broker import BrokerProcess, mosquitto_path  # noqa: E402
from devices.mqtt import AsyncMqttClient, BrokerAddress  # noqa: E402
from devices.protocol import LIVE_FRAME_MS, LIVE_JITTER_MS, pack_live_frame  # noqa: E402

logger = logging.getLogger("bench.live")

RATE = 16000
CHUNK_MS = 20
MARK_EVERY = 25  # chunks: a mark each 500 ms
MARK_LEVEL = 20000
BACKGROUND = 300


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, round(q * (len(s) - 1)))] if s else float("nan")


def chunk(i: int) -> bytes:
    n = RATE * CHUNK_MS // 1000
    amp, freq = (MARK_LEVEL, 1000.0) if i % MARK_EVERY == MARK_EVERY - 1 else (BACKGROUND, 220.0)
    return struct.pack(f"<{n}h", *(int(amp * math.sin(2 * math.pi * freq * (i * n + k) / RATE))
                                   for k in range(n)))


def find_marks(output: list[tuple[float, int, bytes]]) -> list[float]:
    """Monotonic instants at which each marked burst started playing."""
    marks: list[float] = []
    for at, _, pcm in output:
        samples = struct.unpack(f"<{len(pcm) // 2}h", pcm)
        first = next((k for k, v in enumerate(samples) if abs(v) > MARK_LEVEL // 2), None)
        if first is None:
            continue
        t = at + first / RATE
        if not marks or t - marks[-1] > 0.2:  # a burst may straddle two frames
            marks.append(t)
    return marks


async def speak(ws: Any, seconds: float) -> list[float]:
    """Send ``seconds`` of microphone chunks in real time; return when each marked chunk was sent."""
    sent: list[float] = []
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    total = int(seconds * 1000 / CHUNK_MS)
    for i in range(total):
        body = chunk(i)
        if i % MARK_EVERY == MARK_EVERY - 1:
            sent.append(time.monotonic())
        await ws.send(body)
        await asyncio.sleep(max(0.0, t0 + (i + 1) * CHUNK_MS / 1000 - loop.time()))
    return sent


def heard(sims: list[Any], sent: list[float]) -> tuple[list[float], int, int, int, int, int, int]:
    """Send → playout latency of each mark each unit played, marks missed, and the units' frame counts
    (lost, late, underruns, frames in, skipped)."""
    latencies: list[float] = []
    missed = lost = late = underruns = frames_in = skipped = 0
    for s in sims:
        played = find_marks(s.live.output)
        for t_send in sent:
            hit = next((t for t in played if 0 <= t - t_send < 2.0), None)
            if hit is None:
                missed += 1
            else:
                latencies.append((hit - t_send) * 1000)
        st = s.live.stats
        lost, late, underruns = lost + st.lost, late + st.late, underruns + st.underruns
        frames_in, skipped = frames_in + st.frames_in, skipped + st.skipped
    return latencies, missed, lost, late, underruns, frames_in, skipped


async def live_run(port: int, nodes: int, seconds: float, delay_ms: int, jitter_ms: int,
                   data_dir: Path) -> dict[str, Any]:
    import httpx

    from controller.fleet.settings import MqttSettings
    from controller.settings import Settings
    from firmware_sim.faults import Faults
    from firmware_sim.node import SimNode
    from tests.e2e.serve import basic, serving

    settings = Settings(data_dir=data_dir, mqtt=MqttSettings(port=port),  # type: ignore[call-arg]
                        admin_password="bench-password")
    auth = ("admin", "bench-password")
    ids = [f"lv-{i:03d}" for i in range(nodes)]
    sims = [SimNode(n, BrokerAddress(port=port), heartbeat_s=15, log_link_failures=False,
                    faults=Faults(net_delay_ms=delay_ms, jitter_ms=jitter_ms, seed=i))
            for i, n in enumerate(ids)]
    async with serving(settings) as (app, addr):
        async with httpx.AsyncClient(base_url=f"http://{addr}", auth=auth, timeout=60) as client:
            for z in ("a", "b"):
                assert (await client.post("/api/zones", json={"id": z, "name": z})).status_code == 201
            for i, n in enumerate(ids):
                r = await client.post("/api/nodes", json={"id": n, "zones": ["a" if i % 2 else "b"]})
                assert r.status_code == 201, r.text
            await asyncio.gather(*(s.start() for s in sims))
            await asyncio.sleep(2.0)  # configs and group subscriptions
        from websockets.asyncio.client import connect

        ws = await connect(f"ws://{addr}/api/live/ws", additional_headers={"Authorization": basic(*auth)})
        await ws.send(json.dumps({"type": "start", "target": {"zones": ["a", "b"]}}))
        while json.loads(await ws.recv()).get("state") != "live":
            pass
        await asyncio.sleep(0.3)  # the live_start reaches the units
        sent = await speak(ws, seconds)
        await asyncio.sleep(1.0)
        hub = app.state.services.live_hub
        session = next(iter(hub.sessions.values()))
        frames_out = session.stats.frames_out
        await ws.send(json.dumps({"type": "stop"}))
        await asyncio.sleep(0.5)
        await ws.close()
        latencies, missed, lost, late, underruns, frames_in, skipped = heard(sims, sent)
        await asyncio.gather(*(s.stop() for s in sims))
    expected = frames_out * nodes
    never = max(0, expected - frames_in)
    return {"marks_sent": len(sent), "marks_heard": len(latencies), "marks_missed": missed,
            "latency_ms_p50": round(pct(latencies, 0.5), 1), "latency_ms_p95": round(pct(latencies, 0.95), 1),
            "latency_ms_max": round(max(latencies), 1) if latencies else None,
            "frames_expected": expected, "frames_never_arrived": never, "frames_late": late,
            "frames_lost_played_as_silence": lost, "frames_lost_total": never + late,
            "frames_lost_pct": round(100 * (never + late) / expected, 3) if expected else None,
            "frames_skipped_to_catch_up": skipped, "underruns": underruns}


async def baseline(port: int, frames: int) -> dict[str, float]:
    """The same frames straight over MQTT QoS0, publish → receive."""
    got: dict[int, float] = {}

    def on(topic: str, payload: bytes, retained: bool) -> None:
        got[struct.unpack_from(">I", payload, 5)[0]] = time.monotonic()

    sub = AsyncMqttClient("bench-sub", BrokerAddress(port=port), on_message=on)
    pub = AsyncMqttClient("bench-pub", BrokerAddress(port=port))
    sub.start()
    pub.start()
    await asyncio.wait_for(asyncio.gather(sub.connected.wait(), pub.connected.wait()), 10)
    sub.subscribe(["bench/live"], qos=0)
    await asyncio.sleep(0.5)
    sent: dict[int, float] = {}
    pcm = bytes(RATE * LIVE_FRAME_MS // 1000 * 2)
    for seq in range(frames):
        sent[seq] = time.monotonic()
        pub.publish_nowait("bench/live", pack_live_frame(seq, 0, pcm), qos=0)
        await asyncio.sleep(LIVE_FRAME_MS / 1000)
    await asyncio.sleep(0.5)
    await asyncio.gather(sub.stop(), pub.stop())
    lat = [(got[s] - sent[s]) * 1000 for s in sent if s in got]
    return {"baseline_mqtt_p50_ms": round(pct(lat, 0.5), 2), "baseline_mqtt_p95_ms": round(pct(lat, 0.95), 2),
            "baseline_frames_lost": frames - len(lat)}


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    kind = "mosquitto" if mosquitto_path() else "embedded"
    with BrokerProcess(kind) as broker, tempfile.TemporaryDirectory() as tmp:
        base = await baseline(broker.port, int(args.seconds * 1000 / LIVE_FRAME_MS))
        live = await live_run(broker.port, args.nodes, args.seconds, args.net_delay_ms, args.jitter_ms,
                              Path(tmp))
    return {"bench": "live", "broker": kind, "nodes": args.nodes, "seconds": args.seconds,
            "chunk_ms": CHUNK_MS, "frame_ms": LIVE_FRAME_MS, "jitter_buffer_ms": LIVE_JITTER_MS,
            "net_delay_ms": args.net_delay_ms, "net_jitter_ms": args.jitter_ms, **live, **base}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--nodes", type=int, default=10)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--net-delay-ms", type=int, default=0, help="one-way delay added at each unit")
    ap.add_argument("--jitter-ms", type=int, default=0, help="random extra delay per message at each unit")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    result = asyncio.run(main_async(args))
    for k, v in result.items():
        logger.warning("%s: %s", k, v)
    sys.stdout.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
