"""Relay sessions (/api/relays): held in the arbiter, now or at a set time, fetched by the units
or pulled by the controller and republished as live frames; an upstream cut shows "interrupted"."""

from __future__ import annotations

import asyncio
import subprocess
import threading
import time
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from devices.broker import BrokerProcess
from firmware_sim.node import SimNode
from tests.conftest import make_settings, running_controller
from tests.e2e.helpers import air, allowing, bulletin, provision, sim, wait_for, wait_online
from tests.firmware_sim.test_relay import Radio

pytestmark = [pytest.mark.broker, pytest.mark.timeout(120)]


class Mp3Radio(ThreadingHTTPServer):
    """A real MP3 stream (a 440 Hz tone, looped) at ``/tone.mp3``, off the air while ``up`` is clear."""

    daemon_threads = True

    def __init__(self, mp3: bytes) -> None:
        super().__init__(("127.0.0.1", 0), _Mp3Handler)
        self.mp3 = mp3
        self.up = threading.Event()
        self.up.set()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/tone.mp3"


class _Mp3Handler(BaseHTTPRequestHandler):
    server: Mp3Radio

    def log_message(self, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        if not self.server.up.is_set():
            self.send_error(503, "station off the air")
            return
        self.send_response(200)
        self.send_header("Content-Type", "audio/mpeg")
        self.end_headers()
        data = self.server.mp3
        while self.server.up.is_set():
            for i in range(0, len(data), 2000):  # 32 kb/s stream: 2000 B ≈ 0.5 s, sent a bit faster
                if not self.server.up.is_set():
                    return
                try:
                    self.wfile.write(data[i:i + 2000])
                    self.wfile.flush()
                except OSError:
                    return
                time.sleep(0.3)


def tone_mp3(tmp_path: Path) -> bytes:
    from tts.audio import ffmpeg_path

    out = tmp_path / "tone.mp3"
    subprocess.run([ffmpeg_path(), "-v", "error", "-f", "lavfi", "-i", "sine=frequency=440:duration=3",
                    "-ar", "16000", "-ac", "1", "-b:a", "32k", "-map_metadata", "-1", "-id3v2_version", "0",
                    "-write_xing", "0", str(out)], check=True)
    return out.read_bytes()


def serve(server: ThreadingHTTPServer) -> None:
    threading.Thread(target=server.serve_forever, daemon=True).start()


async def test_relay_node_fetch_scheduled_then_stopped(mosquitto: BrokerProcess, tmp_path: Path) -> None:
    radio = Radio()
    serve(radio)
    try:
        settings = allowing(make_settings(tmp_path, mosquitto.port), radio.base)
        async with running_controller(settings) as (app, client):
            await provision(client, {"z": ["rs-1", "rs-2"]})
            nodes = [sim(n, mosquitto.port, telemetry_s=60) for n in ("rs-1", "rs-2")]
            await asyncio.gather(*(n.start() for n in nodes))
            try:
                await wait_online(client, ["rs-1", "rs-2"])
                bad = await client.post("/api/relays", json={"url": "ftp://x/y", "target": {"zones": ["z"]}})
                assert bad.status_code == 422
                naive = await client.post("/api/relays", json={"url": f"{radio.base}/live.mp3",
                                                               "target": {"zones": ["z"]},
                                                               "start_at": "2030-01-01T06:00:00"})
                assert naive.status_code == 422 and "offset" in naive.text
                start = datetime.now(tz=UTC) + timedelta(seconds=3)  # still ahead once the POST is done
                r = await client.post("/api/relays", json={"url": f"{radio.base}/live.mp3",
                                                           "target": {"zones": ["z"]},
                                                           "start_at": start.isoformat()})
                assert r.status_code == 201, r.text
                rid = r.json()["id"]
                assert r.json()["state"] == "scheduled"
                assert all(n.relay.state == "" for n in nodes)

                async def state() -> dict[str, Any]:
                    return dict((await client.get(f"/api/relays/{rid}")).json())

                await wait_for(lambda: all(n.relay.state == "playing" for n in nodes), 15, "units relay")
                assert (await state())["state"] == "playing"
                radio.up.clear()  # the station drops: the units say so, the relay shows which

                async def units(key: str) -> bool:
                    return sorted((await state())[key]) == ["rs-1", "rs-2"]

                await wait_for(lambda: units("units_interrupted"), 15, "units_interrupted shown")
                radio.up.set()
                await wait_for(lambda: units("units_playing"), 40, "units relay again")
                assert (await state())["units_interrupted"] == []
                r = await client.delete(f"/api/relays/{rid}")
                assert r.status_code == 200 and r.json()["state"] == "ended"
                await wait_for(lambda: all(n.relay.state == "" for n in nodes), 15, "relay stopped")
                assert not client_app_holds(rid, app)
                assert (await client.delete("/api/relays/nope")).status_code == 404
            finally:
                await asyncio.gather(*(n.stop() for n in nodes))
    finally:
        radio.shutdown()
        radio.server_close()


def client_app_holds(rid: str, app: Any) -> bool:
    air = app.state.services.air
    return rid in air.live or rid in air.arbiter.running or rid in air.arbiter.waiting


def loud(node: SimNode) -> int:
    from controller.live.session import pcm_rms

    return sum(1 for _, _, pcm in node.live.output if pcm_rms(pcm) > 1000)


async def test_relay_republished_by_the_controller_survives_an_upstream_cut(mosquitto: BrokerProcess,
                                                                             tmp_path: Path) -> None:
    radio = Mp3Radio(tone_mp3(tmp_path))
    serve(radio)
    try:
        settings = allowing(make_settings(tmp_path, mosquitto.port), radio.url)
        async with running_controller(settings) as (app, client):
            await provision(client, {"z": ["rp-1", "rp-2"]})
            nodes = [sim(n, mosquitto.port) for n in ("rp-1", "rp-2")]
            await asyncio.gather(*(n.start() for n in nodes))
            try:
                await wait_online(client, ["rp-1", "rp-2"])
                dead = await client.post("/api/relays", json={"url": "http://127.0.0.1:9/x.mp3",
                                                              "mode": "republish",
                                                              "target": {"zones": ["z"]}})
                assert dead.status_code == 422 and "could not be reached" in dead.text  # closed, not allowed
                r = await client.post("/api/relays", json={"url": radio.url, "mode": "republish",
                                                           "target": {"zones": ["z"]}})
                assert r.status_code == 201, r.text
                rid = r.json()["id"]

                async def state() -> dict[str, Any]:
                    return dict((await client.get(f"/api/relays/{rid}")).json())

                await wait_for(lambda: all(loud(n) > 10 for n in nodes), 20, "units play the tone")
                assert (await state())["state"] == "playing"
                radio.up.clear()
                await wait_for(lambda: _is(state, "interrupted"), 20, "relay interrupted shown")
                heard = [loud(n) for n in nodes]
                radio.up.set()
                await wait_for(lambda: _is(state, "playing"), 40, "relay resumed")
                await wait_for(lambda: all(loud(n) > h + 10 for n, h in zip(nodes, heard, strict=True)), 20,
                               "units play again")
                r = await client.delete(f"/api/relays/{rid}")
                assert r.json()["state"] == "ended"
                await wait_for(lambda: all(not n.live.active for n in nodes), 10, "units left the session")
                assert not client_app_holds(rid, app)
            finally:
                await asyncio.gather(*(n.stop() for n in nodes))
    finally:
        radio.up.clear()
        radio.shutdown()
        radio.server_close()


async def _is(state: Any, want: str) -> bool:
    return bool((await state())["state"] == want)


async def test_emergency_bulletin_preempts_a_relay(mosquitto: BrokerProcess, tmp_path: Path) -> None:
    radio = Radio()
    serve(radio)
    try:
        settings = allowing(make_settings(tmp_path, mosquitto.port), radio.base)
        async with running_controller(settings) as (app, client):
            await provision(client, {"z": ["re-1"]})
            node = sim("re-1", mosquitto.port, telemetry_s=60)
            await node.start()
            try:
                await wait_online(client, ["re-1"])
                r = await client.post("/api/relays", json={"url": f"{radio.base}/live.mp3",
                                                           "target": {"zones": ["z"]}})
                assert r.status_code == 201, r.text
                rid = r.json()["id"]
                await wait_for(lambda: node.relay.state == "playing", 20, "unit relays")
                urgent = "Khẩn cấp: nước lên nhanh, bà con di chuyển lên chỗ cao. " * 3
                b = await bulletin(client, urgent, priority="emergency")
                bc = await air(client, b["id"], {"zones": ["z"]})
                await wait_for(lambda: bc in node.player.start_times, 30, "emergency plays")
                got = (await client.get(f"/api/relays/{rid}")).json()
                assert (got["state"], got["reason"]) == ("ended", "preempted")
                assert node.relay.state == "" and not client_app_holds(rid, app)
                late = await client.post("/api/relays", json={"url": f"{radio.base}/live.mp3",
                                                              "target": {"zones": ["z"]}})
                assert late.status_code == 409 and "emergency is on air" in late.text
            finally:
                await node.stop()
    finally:
        radio.shutdown()
        radio.server_close()


async def test_a_unit_refusing_the_relay_is_shown(mosquitto: BrokerProcess, tmp_path: Path) -> None:
    """A unit whose amplifier is off refuses play_stream: the relay lists it with the reason
    (the controller's command log is not bothered with the relay's own commands)."""
    radio = Radio()
    serve(radio)
    try:
        settings = allowing(make_settings(tmp_path, mosquitto.port), radio.base)
        async with running_controller(settings) as (app, client):
            await provision(client, {"z": ["rf-1", "rf-2"]})
            nodes = [sim(n, mosquitto.port, telemetry_s=60) for n in ("rf-1", "rf-2")]
            await asyncio.gather(*(n.start() for n in nodes))
            try:
                await wait_online(client, ["rf-1", "rf-2"])
                off = {"name": "power", "args": {"on": False}}
                r = await client.post("/api/nodes/rf-2/commands", json=off)
                assert r.status_code == 200 and r.json()["results"][0]["status"] == "ok", r.text
                r = await client.post("/api/relays", json={"url": f"{radio.base}/live.mp3",
                                                           "target": {"zones": ["z"]}})
                assert r.status_code == 201, r.text
                rid = r.json()["id"]
                await wait_for(lambda: nodes[0].relay.state == "playing", 15, "rf-1 relays")

                async def refused() -> bool:
                    got = (await client.get(f"/api/relays/{rid}")).json()
                    return bool(got.get("units_refused") == {"rf-2": "power_off"})

                await wait_for(refused, 10, "rf-2's refusal shown")
                assert nodes[1].relay.state == ""
                assert app.state.services.link.replies.stats["unknown_id"] == 0
            finally:
                await asyncio.gather(*(n.stop() for n in nodes))
    finally:
        radio.shutdown()
        radio.server_close()
