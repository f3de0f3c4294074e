"""A local radio station for bench/relay.py, served from a thread of the bench process.

* ``/live.mp3``: an endless Icecast-like MP3 stream (a 440 Hz tone from ffmpeg, 32 kb/s, 16 kHz
  mono, looped), one second sent at once on connect (as Icecast's burst-on-connect) and then
  paced at real time;
* ``/live.m3u8``: a live HLS playlist of 1 s ADTS AAC segments (``/seg<n>.aac``), a sliding
  window of 4 advancing with wall time, as tests/e2e/test_relay_hls.py builds.

``up`` cleared takes the station off the air: open MP3 connections are closed and every
request answers 503 until it is set again.
"""

from __future__ import annotations

import re
import subprocess
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

MP3_KBPS = 32
LOOP_S = 10  # seconds of tone looped by the MP3 stream and the HLS segments
FIRST_SEQ = 100
WINDOW = 4  # segments in the live playlist
SEG_S = 1.0
PACE_S = 0.2  # the MP3 stream is written every 200 ms


def _ffmpeg() -> str:
    from tts.audio import ffmpeg_path

    return str(ffmpeg_path())


def tone_mp3(tmp: Path) -> bytes:
    out = tmp / "tone.mp3"
    subprocess.run([_ffmpeg(), "-v", "error", "-f", "lavfi", "-i", f"sine=frequency=440:duration={LOOP_S}",
                    "-ar", "16000", "-ac", "1", "-b:a", f"{MP3_KBPS}k", "-map_metadata", "-1",
                    "-id3v2_version", "0", "-write_xing", "0", str(out)], check=True)
    return out.read_bytes()


def tone_segments(tmp: Path) -> list[bytes]:
    """The tone cut by ffmpeg into 1 s ADTS AAC segments."""
    out = tmp / "seg"
    out.mkdir()
    subprocess.run([_ffmpeg(), "-v", "error", "-f", "lavfi", "-i", f"sine=frequency=440:duration={LOOP_S}",
                    "-ar", "16000", "-ac", "1", "-c:a", "aac", "-b:a", "32k", "-f", "segment",
                    "-segment_time", str(SEG_S), "-segment_format", "adts", str(out / "%03d.aac")],
                   check=True)
    return [f.read_bytes() for f in sorted(out.iterdir())]


class Station(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256  # N units connecting at once (5, the default, drops SYNs: 1 s retries)

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        with tempfile.TemporaryDirectory(prefix="lp-station-") as tmp:
            self.mp3 = tone_mp3(Path(tmp))
            self.segments = tone_segments(Path(tmp))
        self.t0 = time.monotonic() - WINDOW * SEG_S  # a full window from the start
        self.up = threading.Event()
        self.up.set()
        self.requests = 0
        self._thread: threading.Thread | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def start(self) -> Station:
        self._thread = threading.Thread(target=self.serve_forever, name="station", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.up.clear()
        self.shutdown()
        self.server_close()

    def current(self) -> int:
        """Sequence number of the newest HLS segment."""
        return FIRST_SEQ + int((time.monotonic() - self.t0) / SEG_S)

    def playlist(self) -> bytes:
        last = self.current()
        first = max(FIRST_SEQ, last - WINDOW + 1)
        return ("#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:1\n"
                f"#EXT-X-MEDIA-SEQUENCE:{first}\n"
                + "".join(f"#EXTINF:{SEG_S:.3f},\nseg{n}.aac\n" for n in range(first, last + 1))).encode()


class _Handler(BaseHTTPRequestHandler):
    server: Station

    def log_message(self, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        st = self.server
        st.requests += 1
        if not st.up.is_set():
            self.send_error(503, "station off the air")
            return
        path = self.path.split("?")[0]
        if path == "/live.mp3":
            self._mp3()
            return
        if path == "/live.m3u8":
            body, ctype = st.playlist(), "application/vnd.apple.mpegurl"
        elif (m := re.fullmatch(r"/seg(\d+)\.aac", path)) and FIRST_SEQ <= int(m[1]) <= st.current():
            body, ctype = st.segments[(int(m[1]) - FIRST_SEQ) % len(st.segments)], "audio/aac"
        else:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _mp3(self) -> None:
        st = self.server
        self.send_response(200)
        self.send_header("Content-Type", "audio/mpeg")
        self.send_header("icy-name", "loaphuong bench tone")
        self.end_headers()
        data, rate = st.mp3, MP3_KBPS * 1000 // 8
        pos = 0
        start = time.monotonic()
        sent_until = 1.0  # seconds of audio sent: one at once, then real time
        while st.up.is_set():
            want = int(rate * sent_until) - pos
            out = bytearray()
            while len(out) < want:
                i = pos % len(data)
                piece = data[i:i + want - len(out)]
                out += piece
                pos += len(piece)
            try:
                self.wfile.write(out)
                self.wfile.flush()
            except OSError:
                return
            time.sleep(PACE_S)
            sent_until = 1.0 + time.monotonic() - start
