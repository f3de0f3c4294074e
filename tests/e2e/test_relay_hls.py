"""Relay of HLS playlists in the controller's pull-and-republish mode: a local live HLS station
(a sliding-window playlist advancing with wall time, real AAC audio from ffmpeg, a master
playlist with two variants) relayed through the real controller, Mosquitto and simulated units."""

from __future__ import annotations

import asyncio
import collections
import re
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from controller.relays import hls as relay_hls
from devices.broker import BrokerProcess
from tests.conftest import make_settings, running_controller
from tests.e2e.helpers import allowing, provision, sim, wait_for, wait_online
from tests.e2e.test_relay_sessions import client_app_holds, loud, serve

pytestmark = [pytest.mark.broker, pytest.mark.timeout(120)]

FIRST_SEQ = 100
WINDOW = 4
SEG_S = 1.0
SEGMENTS = 40  # seconds of tone per format; segment n is SEGMENTS[(n - FIRST_SEQ) % SEGMENTS]
EXT = {"aac": "aac", "ts": "ts"}


def tone_segments(tmp_path: Path, fmt: str) -> list[bytes]:
    """A 440 Hz tone cut by ffmpeg into 1 s segments: ADTS AAC (``aac``) or MPEG-TS (``ts``)."""
    from tts.audio import ffmpeg_path

    out = tmp_path / f"seg-{fmt}"
    out.mkdir()
    muxer = "adts" if fmt == "aac" else "mpegts"
    subprocess.run([ffmpeg_path(), "-v", "error", "-f", "lavfi",
                    "-i", f"sine=frequency=440:duration={SEGMENTS}",
                    "-ar", "16000", "-ac", "1", "-c:a", "aac", "-b:a", "32k", "-f", "segment",
                    "-segment_time", str(SEG_S), "-segment_format", muxer, str(out / f"%03d.{fmt}")],
                   check=True)
    return [f.read_bytes() for f in sorted(out.iterdir())]


class HlsStation(ThreadingHTTPServer):
    """``/master.m3u8`` → ``/hi/<fmt>.m3u8`` and ``/lo/<fmt>.m3u8?k=1`` (live, a window of 4 segments
    advancing one per second), ``/vod/<fmt>.m3u8`` (3 segments and EXT-X-ENDLIST),
    ``/enc.m3u8`` (AES-128), anything else 404. ``up`` cleared: 503 for everything; ``frozen``:
    the live playlists stop advancing. Every request is recorded with its User-Agent."""

    daemon_threads = True

    def __init__(self, segments: dict[str, list[bytes]]) -> None:
        super().__init__(("127.0.0.1", 0), _HlsHandler)
        self.segments = segments
        self.t0 = time.monotonic() - WINDOW * SEG_S  # a full window from the start
        self.up = threading.Event()
        self.up.set()
        self.frozen: int | None = None
        self.requests: list[tuple[str, str]] = []
        self.served: list[tuple[str, str]] = []  # the requests answered 200

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def current(self) -> int:
        """Sequence number of the newest segment."""
        if self.frozen is not None:
            return self.frozen
        return FIRST_SEQ + int((time.monotonic() - self.t0) / SEG_S)

    def freeze(self, on: bool) -> None:
        self.frozen = self.current() if on else None

    def relay_fetches(self, pattern: str, *, served: bool = False) -> list[str]:
        """Paths matching ``pattern`` requested by the relay (not by the probe); ``served``: only
        those answered 200 (a request refused while the station is off the air is asked again)."""
        return [p for p, ua in (self.served if served else self.requests)
                if re.search(pattern, p) and "probe" not in ua]

    def live_playlist(self, fmt: str) -> str:
        last = self.current()
        first = max(FIRST_SEQ, last - WINDOW + 1)
        return ("#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:1\n"
                f"#EXT-X-MEDIA-SEQUENCE:{first}\n"
                + "".join(f"#EXTINF:{SEG_S:.3f},\nseg{n}.{EXT[fmt]}\n" for n in range(first, last + 1)))


class _HlsHandler(BaseHTTPRequestHandler):
    server: HlsStation

    def log_message(self, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        st = self.server
        st.requests.append((self.path, self.headers.get("User-Agent", "")))
        if not st.up.is_set():
            self.send_error(503, "station off the air")
            return
        path = self.path.split("?")[0]
        ctype = "application/vnd.apple.mpegurl"
        if path == "/master.m3u8":
            body = (b'#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=128000,CODECS="mp4a.40.2"\nhi/aac.m3u8\n'
                    b'#EXT-X-STREAM-INF:BANDWIDTH=32000,CODECS="mp4a.40.2"\nlo/aac.m3u8?k=1\n')
        elif m := re.fullmatch(r"/(hi|lo)/(aac|ts)\.m3u8", path):
            body = st.live_playlist(m[2]).encode()
        elif m := re.fullmatch(r"/vod/(aac|ts)\.m3u8", path):
            body = ("#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXT-X-PLAYLIST-TYPE:VOD\n"
                    + "".join(f"#EXTINF:1.0,\n../lo/seg{FIRST_SEQ + i}.{m[1]}\n" for i in range(3))
                    + "#EXT-X-ENDLIST\n").encode()
        elif path == "/enc.m3u8":
            body = (b'#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXT-X-KEY:METHOD=AES-128,URI="k.bin"\n'
                    b"#EXTINF:1.0,\nseg100.ts\n")
        elif (m := re.fullmatch(r"/(hi|lo)/seg(\d+)\.(aac|ts)", path)) and int(m[2]) <= st.current():
            seg = st.segments[m[3]]
            body, ctype = seg[(int(m[2]) - FIRST_SEQ) % len(seg)], "application/octet-stream"
        else:
            self.send_error(404)
            return
        st.served.append((self.path, self.headers.get("User-Agent", "")))
        self.send_response(200)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture(scope="module")
def segments(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[bytes]]:
    tmp = tmp_path_factory.mktemp("hls")
    return {fmt: tone_segments(tmp, fmt) for fmt in ("aac", "ts")}


@pytest.fixture
def station(segments: dict[str, list[bytes]]) -> Iterator[HlsStation]:
    server = HlsStation(segments)
    serve(server)
    yield server
    server.up.clear()
    server.shutdown()
    server.server_close()


async def _state(client: httpx.AsyncClient, rid: str) -> dict[str, Any]:
    return dict((await client.get(f"/api/relays/{rid}")).json())


async def test_live_hls_via_master_survives_a_cut_and_a_stale_playlist(
        mosquitto: BrokerProcess, tmp_path: Path, station: HlsStation) -> None:
    settings = allowing(make_settings(tmp_path, mosquitto.port), station.base)
    async with running_controller(settings) as (app, client):
        await provision(client, {"z": ["hl-1", "hl-2"]})
        nodes = [sim(n, mosquitto.port) for n in ("hl-1", "hl-2")]
        await asyncio.gather(*(n.start() for n in nodes))
        try:
            await wait_online(client, ["hl-1", "hl-2"])
            r = await client.post("/api/relays", json={"url": f"{station.base}/master.m3u8",
                                                       "mode": "republish", "target": {"zones": ["z"]}})
            assert r.status_code == 201, r.text
            rid = r.json()["id"]

            async def state_is(want: str, error: str = "") -> bool:
                got = await _state(client, rid)
                return bool(got["state"] == want and error in got["last_error"])

            await wait_for(lambda: all(loud(n) > 10 for n in nodes), 20, "units play the tone")
            got = await _state(client, rid)
            assert got["state"] == "playing" and got["segments"] >= 3 and got["bytes_in"] > 3000

            station.up.clear()  # the station goes off the air
            await wait_for(lambda: state_is("interrupted", "503"), 20, "relay interrupted (503)")
            heard = [loud(n) for n in nodes]
            await asyncio.sleep(1.0)
            station.up.set()
            await wait_for(lambda: state_is("playing"), 30, "relay resumed")
            await wait_for(lambda: all(loud(n) > h + 10 for n, h in zip(nodes, heard, strict=True)), 20,
                           "units play again")

            station.freeze(True)  # the live playlist stops advancing
            await wait_for(lambda: state_is("interrupted", "stopped advancing"), 20, "stale playlist shown")
            station.freeze(False)
            await wait_for(lambda: state_is("playing"), 30, "relay resumed after the stale playlist")

            r = await client.delete(f"/api/relays/{rid}")
            assert r.json()["state"] == "ended"
            await wait_for(lambda: all(not n.live.active for n in nodes), 10, "units left the session")
            assert not client_app_holds(rid, app)
        finally:
            await asyncio.gather(*(n.stop() for n in nodes))
    segs = station.relay_fetches(r"/seg\d+")
    assert segs and all(p.startswith("/lo/") for p in segs)  # the cheapest variant only
    assert not station.relay_fetches(r"^/hi/")
    served = collections.Counter(station.relay_fetches(r"/seg\d+", served=True))
    twice = [p for p, n in served.items() if n > 1]
    assert not twice, f"segments fetched more than once: {twice}"
    seqs = [int(re.findall(r"\d+", p)[0]) for p in segs]
    assert seqs == sorted(seqs)  # in order, across the interruptions


async def test_mpegts_vod_plays_through_live_plays_and_bad_playlists_are_refused(
        mosquitto: BrokerProcess, tmp_path: Path, station: HlsStation) -> None:
    settings = allowing(make_settings(tmp_path, mosquitto.port), station.base)
    async with running_controller(settings) as (app, client):
        await provision(client, {"z": ["hv-1"]})
        node = sim("hv-1", mosquitto.port)
        await node.start()
        try:
            await wait_online(client, ["hv-1"])
            for path, reason in [("/enc.m3u8", "encrypted HLS (METHOD=AES-128) is not supported"),
                                 ("/nope.m3u8", "HTTP 404"),
                                 ("/vod/xx.m3u8", "HTTP 404")]:
                r = await client.post("/api/relays", json={"url": station.base + path, "mode": "republish",
                                                           "target": {"zones": ["z"]}})
                assert r.status_code == 422 and reason in r.text, (path, r.text)
            air = app.state.services.air
            assert not air.live and not air.arbiter.running and not air.arbiter.waiting  # nothing holds zones

            r = await client.post("/api/relays", json={"url": f"{station.base}/vod/ts.m3u8",
                                                       "mode": "republish", "target": {"zones": ["z"]}})
            assert r.status_code == 201, r.text
            rid = r.json()["id"]
            await wait_for(lambda: loud(node) > 10, 20, "the unit plays the MPEG-TS tone")

            async def ended() -> bool:
                return bool((await _state(client, rid))["state"] == "ended")

            await wait_for(ended, 20, "the relay ends with the playlist")
            got = await _state(client, rid)
            assert got["reason"].startswith("finished"), got
            assert got["segments"] == 3 and got["retries"] == 0
            assert loud(node) > 50  # about 3 s of tone (25 frames/s) was played out, not cut short
            assert not client_app_holds(rid, app)
            await wait_for(lambda: not node.live.active, 10, "the unit left the session")

            # a live MPEG-TS media playlist (no master)
            heard = loud(node)
            r = await client.post("/api/relays", json={"url": f"{station.base}/hi/ts.m3u8",
                                                       "mode": "republish", "target": {"zones": ["z"]}})
            assert r.status_code == 201, r.text
            await wait_for(lambda: loud(node) > heard + 25, 20, "the unit plays the live MPEG-TS tone")
            assert (await client.delete(f"/api/relays/{r.json()['id']}")).json()["state"] == "ended"
        finally:
            await node.stop()


async def test_stale_live_playlist_is_an_upstream_error(station: HlsStation) -> None:
    """relay_hls.feed alone: starts near the live edge, then a playlist that stops advancing fails
    after 3 target durations (the relay shows "interrupted" with this message)."""
    fed: list[bytes] = []

    async def write(data: bytes) -> None:
        fed.append(data)

    detail: dict[str, Any] = {}
    cursor = relay_hls.Cursor()
    url = f"{station.base}/lo/aac.m3u8"
    async with httpx.AsyncClient(timeout=5) as client:
        assert await relay_hls.probe(client, url, (await client.get(url)).content) == ""
        station.freeze(True)
        t = time.monotonic()
        with pytest.raises(relay_hls.UpstreamError, match="stopped advancing"):
            await asyncio.wait_for(relay_hls.feed(client, url, (await client.get(url)).content, write, cursor,
                                                  detail), 10)
        assert 3.0 <= time.monotonic() - t < 6.0
    assert detail["segments"] == 3 == len(fed)  # 3 target durations from the live edge
    assert cursor.next_seq == station.current() + 1
