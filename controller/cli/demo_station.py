"""A local radio station to relay (tiếp sóng) without the internet: the demo's, and bench/relay.py's.

* ``/radio.mp3``: an endless Icecast-like MP3 stream (32 kb/s, 16 kHz mono, looped), one second
  sent at once on connect (as Icecast's burst-on-connect), then paced at real time;
* ``/hls/live.m3u8``: a live HLS playlist of 1 s ADTS AAC segments (``seg<n>.aac``), a sliding
  window of 4 advancing with the clock.

The programme, made once with ffmpeg: ``chime`` (the demo: a rising chime, a 1 kHz tone, quiet)
or ``tone`` (the bench: a steady 440 Hz tone, easy to detect in the units' output). ``up``
cleared takes the station off the air: open MP3 connections close and every request answers 503
until it is set again. Serves from a daemon thread.
"""

from __future__ import annotations

import logging
import re
import subprocess
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Literal

logger = logging.getLogger(__name__)

MP3_KBPS = 32
FIRST_SEQ = 100
WINDOW = 4  # segments in the live playlist
SEG_S = 1.0
PACE_S = 0.2  # the MP3 stream is written every 200 ms
_SOURCES = {
    "chime": ["sine=f=523:d=0.3", "sine=f=659:d=0.3", "sine=f=784:d=0.4", "sine=f=1000:d=2",
              "anullsrc=r=16000:cl=mono:d=3"],
    "tone": ["sine=f=440:d=10"],
}


def _programme(ffmpeg: str, kind: str, out: Path, fmt: list[str]) -> None:
    """Render the programme (its parts concatenated, 16 kHz mono) with the output options ``fmt``."""
    inputs: list[str] = []
    for src in _SOURCES[kind]:
        inputs += ["-f", "lavfi", "-i", src]
    n = len(_SOURCES[kind])
    graph = "".join(f"[{i}:a]aresample=16000,aformat=channel_layouts=mono[a{i}];" for i in range(n))
    graph += "".join(f"[a{i}]" for i in range(n)) + f"concat=n={n}:v=0:a=1[out]"
    subprocess.run([ffmpeg, "-v", "error", "-y", *inputs, "-filter_complex", graph, "-map", "[out]", *fmt,
                    str(out)], check=True, timeout=60)


class DemoStation(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256  # many units connecting at once (5, the default, drops SYNs: 1 s retries)

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *,
                 programme: Literal["chime", "tone"] = "chime") -> None:
        from tts.audio import ffmpeg_path

        ffmpeg = str(ffmpeg_path())
        with tempfile.TemporaryDirectory(prefix="lp-station-") as tmp:
            mp3, seg = Path(tmp) / "p.mp3", Path(tmp) / "seg"
            seg.mkdir()
            _programme(ffmpeg, programme, mp3, ["-c:a", "libmp3lame", "-b:a", f"{MP3_KBPS}k", "-map_metadata",
                                                "-1", "-id3v2_version", "0", "-write_xing", "0"])
            _programme(ffmpeg, programme, seg / "%03d.aac", [
                "-c:a", "aac", "-b:a", f"{MP3_KBPS}k", "-f", "segment", "-segment_time", str(SEG_S),
                "-segment_format", "adts"])
            self.mp3 = mp3.read_bytes()
            # the segmenter's last file is the programme's remainder (tens of ms): served in the
            # loop it would be a blip, and a client asking for the newest segment could get it
            files = sorted(seg.iterdir())
            self.segments = [f.read_bytes() for f in (files[:-1] if len(files) > 1 else files)]
        super().__init__((host, port), _Handler)
        self.t0 = time.monotonic() - WINDOW * SEG_S  # a full window from the start
        self.up = threading.Event()
        self.up.set()
        self.requests = 0

    @property
    def base(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> DemoStation:
        threading.Thread(target=self.serve_forever, name="station", daemon=True).start()
        logger.info("radio station on %s/radio.mp3 and %s/hls/live.m3u8", self.base, self.base)
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
    server: DemoStation

    def log_message(self, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        st = self.server
        st.requests += 1
        if not st.up.is_set():
            self.send_error(503, "station off the air")
            return
        path = self.path.split("?")[0]
        if path == "/radio.mp3":
            self._mp3()
            return
        if path == "/hls/live.m3u8":
            body, ctype = st.playlist(), "application/vnd.apple.mpegurl"
        elif (m := re.fullmatch(r"/hls/seg(\d+)\.aac", path)) and FIRST_SEQ <= int(m[1]) <= st.current():
            body, ctype = st.segments[(int(m[1]) - FIRST_SEQ) % len(st.segments)], "audio/aac"
        else:
            self.send_error(404, "try /radio.mp3 or /hls/live.m3u8")
            return
        self.send_response(200)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-cache")
        self.end_headers()
        self.wfile.write(body)

    def _mp3(self) -> None:
        st = self.server
        self.send_response(200)
        self.send_header("Content-Type", "audio/mpeg")
        self.send_header("icy-name", "loaphuong test station")
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
                return  # the listener went away
            time.sleep(PACE_S)
            sent_until = 1.0 + time.monotonic() - start
