"""CPU and memory of `loaphuong unit run` idle and while playing a bulletin through a real sound
server (a user-space PulseAudio null sink), MP3 and then Ogg Opus (the contract's two codecs),
against the bare minimum in the same run.

The agent runs as its own process (`python -m controller.cli unit run`), connected to a private
Mosquitto, driven by the conformance kit's controller side: it is measured idle (connected,
heartbeats, clock sync) and while it plays a spoken bulletin (espeak-ng, MP3 32 kb/s; then the same
speech as Ogg Opus 32 kb/s at 24 kHz, as tts/audio.py encodes it) repeated to fill the window. The
baseline is a process that only decodes and plays the same file to the same sink with the same
libraries (miniaudio, or the agent's Opus decoder over libopus, + libpulse-simple): what playing
costs with no agent.
Targets (issue 17, for a 1 GHz ARM with 512 MB): RSS ≤ 60 MB, CPU while playing ≤ 15 % of a core.

    python bench/unit.py [--seconds 15]

The last line is one JSON object.
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
from pathlib import Path
from typing import Literal

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from devices.broker import BrokerProcess  # noqa: E402
from devices.conformance.harness import Harness  # noqa: E402
from devices.messages import now_ms  # noqa: E402
from devices.mqtt import BrokerAddress  # noqa: E402
from firmware_sim.unit.decode import duration_ms  # noqa: E402
from tests.firmware_sim.unit.conftest import TEXT, spoken  # noqa: E402
from tests.firmware_sim.unit.sound import PulseServer  # noqa: E402

logger = logging.getLogger("bench.unit")
TICK = os.sysconf("SC_CLK_TCK")

BASELINE = """
import sys, pasimple, miniaudio
data = open(sys.argv[1], "rb").read()
with pasimple.PaSimple(pasimple.PA_STREAM_PLAYBACK, pasimple.PA_SAMPLE_S16LE, 1, 48000, "bench", "bare",
                       server_name=sys.argv[2], device_name="lp_a") as s:
    for _ in range(int(sys.argv[3])):
        if sys.argv[4] == "opus":
            import types  # the decoder's own modules, without the packages' __init__ (the node)
            for name in ("firmware_sim", "firmware_sim.unit"):
                sys.modules[name] = types.ModuleType(name)
                sys.modules[name].__path__ = [sys.argv[5] + "/" + name.replace(".", "/")]
            from firmware_sim.unit.opus import pcm_blocks
            for pcm in pcm_blocks(data, 48000):
                s.write(pcm)
            continue
        for block in miniaudio.stream_memory(data, nchannels=1, sample_rate=48000, frames_to_read=960):
            s.write(block.tobytes())
    s.drain()
"""


def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime + stime


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def window(pid: int, seconds: float) -> tuple[float, float]:
    """(CPU % of one core, peak RSS MB) of ``pid`` over ``seconds``."""
    c0, t0, peak = cpu_s(pid), time.monotonic(), 0.0
    while time.monotonic() - t0 < seconds:
        peak = max(peak, rss_mb(pid))
        await asyncio.sleep(0.2)
    return 100 * (cpu_s(pid) - c0) / (time.monotonic() - t0), peak


def bulletins() -> dict[str, bytes]:
    from tts.audio import encode
    from tts.espeak import EspeakEngine

    speech = EspeakEngine().synthesize(TEXT, voice="vi", speed=1.0)
    return {codec: encode(speech, codec=codec) for codec in ("mp3", "opus")}


async def play_window(h: Harness, pid: int, audio: bytes, codec: Literal["mp3", "opus"],
                      seconds: float) -> tuple[float, float]:
    """(CPU %, peak RSS MB) of the agent while it plays ``audio`` repeated to fill ``seconds``."""
    one = duration_ms(audio, codec)
    b = spoken(h, audio, one, repeat=max(1, int((seconds + 4) * 1000 // one) + 1), codec=codec)
    await h.offer(b)
    await h.wait(lambda: "verified" in h.states(b.bc), 20)
    await h.call("play", {"bc": b.bc, "at": now_ms() + 1000, "offset_ms": 0})
    await h.wait(lambda: "playing" in h.states(b.bc), 10)
    await asyncio.sleep(0.5)
    out = await window(pid, seconds)
    await h.call("stop", {})
    await h.wait(lambda: set(h.states(b.bc)) & {"played", "failed"}, 10)
    return out


async def agent_run(pulse: PulseServer, broker: BrokerAddress, audio: dict[str, bytes], seconds: float,
                    state: Path) -> dict[str, float]:
    cli = [sys.executable, "-m", "controller.cli", "unit"]
    await asyncio.to_thread(
        subprocess.run, [*cli, "setup", "--state-dir", str(state), "--node-id", "bench-1", "--prefix", "bn",
                         "--broker", f"127.0.0.1:{broker.port}", "--pulse-server", pulse.server,
                         "--sink", "lp_a", "--mixer", "software"], check=True, capture_output=True)
    h = Harness(broker, "bench-1", prefix="bn", timeout_s=30.0)
    await h.start()
    await h.config(groups=[], volume=100)
    proc = await asyncio.create_subprocess_exec(*cli, "run", "--state-dir", str(state),
                                                stderr=asyncio.subprocess.DEVNULL)
    try:
        await h.wait(lambda: [s for s in h.objs("state") if s.get("status") == "online"], 30)
        await asyncio.sleep(3)  # the first clock-sync burst is over
        idle_cpu, idle_rss = await window(proc.pid, seconds)
        play_cpu, play_rss = await play_window(h, proc.pid, audio["mp3"], "mp3", seconds)
        opus_cpu, opus_rss = await play_window(h, proc.pid, audio["opus"], "opus", seconds)
        return {"agent_idle_cpu_pct": round(idle_cpu, 2), "agent_idle_rss_mb": round(idle_rss, 1),
                "agent_play_cpu_pct": round(play_cpu, 2), "agent_play_rss_mb": round(play_rss, 1),
                "agent_play_opus_cpu_pct": round(opus_cpu, 2), "agent_play_opus_rss_mb": round(opus_rss, 1)}
    finally:
        proc.terminate()
        await proc.wait()
        await h.stop()


async def baseline_run(pulse: PulseServer, audio: bytes, codec: str, seconds: float,
                       tmp: Path) -> dict[str, float]:
    f = tmp / f"b.{codec}"
    f.write_bytes(audio)
    repeat = max(1, int((seconds + 4) * 1000 // duration_ms(audio, codec)) + 1)
    proc = await asyncio.create_subprocess_exec(sys.executable, "-c", BASELINE, str(f), pulse.server,
                                                str(repeat), codec, str(ROOT))
    key = "" if codec == "mp3" else f"_{codec}"
    try:
        await asyncio.sleep(2.0)  # started and playing (its imports are not what is measured)
        cpu, rss = await window(proc.pid, seconds)
        return {f"baseline_play{key}_cpu_pct": round(cpu, 2), f"baseline{key}_rss_mb": round(rss, 1)}
    finally:
        proc.kill()
        await proc.wait()


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=15.0)
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    audio = bulletins()
    with tempfile.TemporaryDirectory() as tmp, PulseServer(("lp_a",)) as pulse, \
            BrokerProcess("mosquitto") as b:
        broker = BrokerAddress(host="127.0.0.1", port=b.port)
        out = await agent_run(pulse, broker, audio, args.seconds, Path(tmp) / "unit")
        for codec in ("mp3", "opus"):
            out |= await baseline_run(pulse, audio[codec], codec, args.seconds, Path(tmp))
    worst_rss = max(out["agent_play_rss_mb"], out["agent_play_opus_rss_mb"])
    worst_cpu = max(out["agent_play_cpu_pct"], out["agent_play_opus_cpu_pct"])
    out |= {"seconds": args.seconds, "target_rss_mb": 60, "target_play_cpu_pct": 15,
            "ok": worst_rss <= 60 and worst_cpu <= 15}
    print(json.dumps(out))


if __name__ == "__main__":
    asyncio.run(main())
