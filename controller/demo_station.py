"""A test radio station for the demo, so "Tiếp sóng" can be tried without the internet.

``/radio.mp3`` is an endless Icecast-like MP3 stream paced at real time, ``/hls/live.m3u8`` a
live HLS playlist of 2 s MPEG-TS segments advancing with the clock (window of 5). The
programme is a looped test signal (a short rising chime, then a 1 kHz tone, then silence),
made once with ffmpeg. Serves 127.0.0.1 (or the host given) in a daemon thread.
"""

from __future__ import annotations

import logging
import subprocess
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

SEGMENT_S = 2
WINDOW = 5
_PROGRAMME = ["sine=f=523:d=0.3", "sine=f=659:d=0.3", "sine=f=784:d=0.4", "sine=f=1000:d=2",
              "anullsrc=r=16000:cl=mono:d=3"]


def _render(ffmpeg: str, out: Path, fmt: list[str], seconds: float | None = None) -> bytes:
    inputs: list[str] = []
    for src in _PROGRAMME:
        inputs += ["-f", "lavfi", "-i", src]
    n = len(_PROGRAMME)
    graph = "".join(f"[{i}:a]aresample=16000,aformat=channel_layouts=mono[a{i}];" for i in range(n))
    graph += "".join(f"[a{i}]" for i in range(n)) + f"concat=n={n}:v=0:a=1[out]"
    if seconds is not None:
        graph += f";[out]atrim=0:{seconds}[out2]"
    cmd = [ffmpeg, "-v", "error", "-y", *inputs, "-filter_complex", graph, "-map",
           "[out2]" if seconds is not None else "[out]", *fmt, str(out)]
    subprocess.run(cmd, check=True, timeout=60)
    return out.read_bytes()


class DemoStation(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        from tts.audio import ffmpeg_path

        ffmpeg = ffmpeg_path()
        with tempfile.TemporaryDirectory() as tmp:
            self.mp3 = _render(ffmpeg, Path(tmp) / "p.mp3", ["-c:a", "libmp3lame", "-b:a", "32k"])
            self.segment = _render(ffmpeg, Path(tmp) / "s.ts", ["-c:a", "aac", "-b:a", "32k", "-f", "mpegts"],
                                   seconds=SEGMENT_S)
        super().__init__((host, port), _Handler)
        self.started = time.time()

    @property
    def base(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host!s}:{port}"

    def playlist(self) -> str:
        newest = int((time.time() - self.started) // SEGMENT_S) + WINDOW
        first = max(0, newest - WINDOW + 1)
        lines = ["#EXTM3U", "#EXT-X-VERSION:3", f"#EXT-X-TARGETDURATION:{SEGMENT_S}",
                 f"#EXT-X-MEDIA-SEQUENCE:{first}"]
        for seq in range(first, newest + 1):
            lines += [f"#EXTINF:{SEGMENT_S}.0,", f"seg{seq}.ts"]
        return "\n".join(lines) + "\n"

    def start(self) -> DemoStation:
        threading.Thread(target=self.serve_forever, name="demo-station", daemon=True).start()
        logger.info("demo radio station on %s/radio.mp3 and %s/hls/live.m3u8", self.base, self.base)
        return self


class _Handler(BaseHTTPRequestHandler):
    server: DemoStation

    def log_message(self, *args: Any) -> None:
        pass

    def _send(self, body: bytes, ctype: str) -> None:
        self.send_response(200)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-cache")
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        path = self.path.split("?")[0]
        if path == "/radio.mp3":
            self._stream()
        elif path == "/hls/live.m3u8":
            self._send(self.server.playlist().encode(), "application/vnd.apple.mpegurl")
        elif path.startswith("/hls/seg") and path.endswith(".ts"):
            self._send(self.server.segment, "video/mp2t")
        else:
            self.send_error(404, "try /radio.mp3 or /hls/live.m3u8")

    def _stream(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "audio/mpeg")
        self.send_header("icy-name", "loaphuong demo station")
        self.end_headers()
        data = self.server.mp3
        step = 4000  # 1 s at 32 kb/s
        t0, sent = time.monotonic(), 0
        try:
            while True:
                for i in range(0, len(data), step):
                    self.wfile.write(data[i:i + step])
                    self.wfile.flush()
                    sent += 1
                    ahead = t0 + sent - 1.0 - time.monotonic()  # one second of lead, then real time
                    if ahead > 0:
                        time.sleep(ahead)
        except OSError:
            return  # the listener went away
