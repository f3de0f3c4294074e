"""Sound that arrives as it plays, through the unit agent's sound card: live frames (the officer
speaking from the phone) and a relay stream the unit fetches itself (``play_stream``, node_fetch
mode) — what comes out of the null sink is that audio, for as long as it lasts."""

from __future__ import annotations

import array
import asyncio
import http.server
import math
import threading
import time
from collections.abc import Iterator

import pytest

from devices.conformance.audio import silent_mp3
from devices.framing import pack_live_frame
from devices.messages import now_ms
from tests.firmware_sim.unit.conftest import Rig
from tests.firmware_sim.unit.sound import RATE, Recorder, correlation, envelope, loud_span_ms
from tests.firmware_sim.unit.test_sound import decoded

pytestmark = [pytest.mark.broker, pytest.mark.asyncio, pytest.mark.timeout(240)]


def tone_frame(seq: int, rate: int = 16000, frame_ms: int = 40, hz: float = 440.0) -> bytes:
    n = rate * frame_ms // 1000
    return array.array("h", [int(9000 * math.sin(2 * math.pi * hz * (seq * n + i) / rate))
                             for i in range(n)]).tobytes()


async def test_live_frames_come_out_of_the_speaker(rig: Rig) -> None:
    _agent, h = await rig.unit("loa-l1", "lp_a")
    session = h.new_id("live")
    _cmd, resp = await h.call("live_start", {"session": session, "sample_rate": 16000, "frame_ms": 40})
    assert resp is not None and resp.get("status") == "ok", resp
    frames = 50  # 2 s of a 440 Hz tone
    with Recorder(rig.pulse.server, "lp_a") as rec:
        start = time.monotonic()
        for seq in range(frames):
            await h.publish(h.t.live(h.scope(), session), pack_live_frame(seq, now_ms(), tone_frame(seq),
                                                                         last=seq == frames - 1), qos=0)
            await asyncio.sleep(max(0.0, start + (seq + 1) * 0.04 - time.monotonic()))
        assert await h.wait(lambda: _agent.node.live.active == "", 10), "the session did not end"
        await asyncio.sleep(0.5)
    got = rec.samples()
    span = loud_span_ms(got, RATE)
    assert 1850 <= span <= 2150, f"{span:.0f} ms of the 2000 ms spoken came out"


@pytest.fixture
def station(bulletin: bytes) -> Iterator[str]:
    """An Icecast-like station on loopback: audio/mpeg, the bulletin, then silence in real time (a
    live stream does not end; the test stops it)."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "audio/mpeg")
            self.end_headers()
            self.wfile.write(bulletin)
            self.wfile.flush()
            quiet, _ms = silent_mp3(500)
            try:
                for _ in range(40):
                    time.sleep(0.5)
                    self.wfile.write(quiet)
                    self.wfile.flush()
            except OSError:  # the unit hung up (stop)
                return

        def log_message(self, *args: object) -> None:
            return None

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/vov1.mp3"
    server.shutdown()


async def test_a_relay_stream_is_fetched_and_played(rig: Rig, station: str, bulletin: bytes) -> None:
    agent, h = await rig.unit("loa-l2", "lp_b")
    with Recorder(rig.pulse.server, "lp_b") as rec:
        _cmd, resp = await h.call("play_stream", {"url": station})
        assert resp is not None and resp.get("status") == "ok", resp
        assert await h.wait(lambda: agent.node.relay.state == "playing", 10)
        ref = decoded(bulletin)
        seconds = len(ref) / RATE
        await asyncio.sleep(seconds + 1.0)  # the station's audio plays in real time
        await h.call("stop")
    got = rec.samples()
    onset = rec.onset()
    assert onset is not None, "nothing of the relay came out"
    first = next(i for i, v in enumerate(ref) if abs(v) > 1500)
    r = correlation(envelope(got[onset[0]:], RATE), envelope(ref[first:], RATE))
    assert r >= 0.9, f"what came out is not the station's audio (envelope correlation {r:.2f})"
    assert abs(loud_span_ms(got, RATE) - loud_span_ms(ref, RATE)) <= 60
    assert agent.node.relay.retries == 0, "the stream never dropped: it was fetched once"
