"""The README's demo command as a user runs it: `loaphuong demo` starts the embedded broker, the
controller and the simulated ward, prints where to log in and a test radio station; a relay of
that station reaches the demo's units; Ctrl+C stops everything."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from controller.cli.demo_station import DemoStation
from devices import hls
from tests.e2e.helpers import wait_for

pytestmark = pytest.mark.timeout(300)

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "demo-password-1"


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_demo_station_serves_a_decodable_stream_and_a_live_playlist() -> None:
    from tts.audio import ffmpeg_path

    station = (await asyncio.to_thread(DemoStation)).start()
    try:
        async with httpx.AsyncClient(base_url=station.base, timeout=10) as c:
            got = bytearray()
            async with c.stream("GET", "/radio.mp3") as r:
                assert r.headers["content-type"] == "audio/mpeg"
                async for chunk in r.aiter_bytes():
                    got += chunk
                    if len(got) > 8000:
                        break
            pl = hls.parse((await c.get("/hls/live.m3u8")).text, f"{station.base}/hls/live.m3u8")
            assert not pl.ended and len(pl.segments) == 4
            seg = await c.get(pl.segments[-1].uri)
            assert seg.status_code == 200
            assert (await c.get("/nope")).status_code == 404
        for data, fmt in ((bytes(got), "mp3"), (seg.content, "aac")):
            cmd = [ffmpeg_path(), "-v", "error", "-f", fmt, "-i", "pipe:0", "-f", "s16le", "-ac", "1",
                   "-ar", "16000", "pipe:1"]
            out = await asyncio.to_thread(subprocess.run, cmd, input=data, capture_output=True, timeout=30,
                                          check=True)
            assert len(out.stdout) > 16000, fmt  # more than half a second of audio
        station.up.clear()  # off the air: 503 until it is back
        async with httpx.AsyncClient(base_url=station.base, timeout=10) as c:
            assert (await c.get("/hls/live.m3u8")).status_code == 503
    finally:
        station.stop()


async def test_demo_command_runs_a_ward_that_relays_its_test_station(tmp_path: Path) -> None:
    port = _port()
    exe = Path(sys.executable).parent / "loaphuong"
    proc = await asyncio.to_thread(
        subprocess.Popen, [str(exe), "demo", "--port", str(port), "--data-dir", str(tmp_path)], cwd=ROOT,
        stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True,
        env={**os.environ, "LOAPHUONG_ADMIN_PASSWORD": PASSWORD})
    lines: list[str] = []
    try:
        assert proc.stderr is not None
        stderr = proc.stderr

        def banner() -> str:
            while True:
                line = stderr.readline()
                if not line:
                    raise AssertionError("the demo exited:\n" + "".join(lines[-30:]))
                lines.append(line)
                if "radio:" in line:
                    return line

        radio_line = await asyncio.wait_for(asyncio.to_thread(banner), 180)  # a busy machine
        text = "".join(lines)
        assert f"admin / {PASSWORD}" in text and "3 zones" in text
        m = re.search(r"(http://\S+/radio\.mp3)", radio_line)
        assert m, radio_line
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", auth=("admin", PASSWORD),
                                     timeout=30) as c:
            async def ward_online() -> bool:
                nodes = (await c.get("/api/nodes")).json()
                return len(nodes) == 12 and all(n["status"] == "online" for n in nodes)

            await wait_for(ward_online, 40, "the demo's 12 units online", every=0.5)
            body = {"url": m.group(1), "target": {"zones": ["tdp1"]}, "duration_s": 30}
            r = await c.post("/api/relays", json=body)
            assert r.status_code == 201, r.text

            async def relaying() -> bool:
                nodes = (await c.get("/api/nodes")).json()
                return {n["id"] for n in nodes if n["telemetry"].get("relay") == "playing"} == \
                    {f"tdp1-{i:02d}" for i in range(1, 5)}

            await wait_for(relaying, 30, "zone tdp1 relays the demo station", every=0.5)
            assert (await c.delete(f"/api/relays/{r.json()['id']}")).status_code == 200
        proc.send_signal(signal.SIGINT)
        assert await asyncio.to_thread(proc.wait, 30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
