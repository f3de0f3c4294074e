"""A real sound server for the unit agent's tests: a user-space PulseAudio with null sinks (each
sink's monitor is what its speaker would have put out), and a recorder that timestamps every
sample it takes from a monitor, so a test can say when a sound came out and what it was."""

from __future__ import annotations

import array
import audioop
import math
import os
import shutil
import statistics
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

RATE = 48000


class PulseServer:
    """``pulseaudio`` in its own runtime directory, on a private socket, with the sinks asked for."""

    def __init__(self, sinks: tuple[str, ...] = ("lp_a", "lp_b")) -> None:
        self.sinks = sinks
        self.dir = Path(tempfile.mkdtemp(prefix="lp-pulse-"))
        self.server = f"unix:{self.dir / 'native'}"
        self._proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> PulseServer:
        self.start()
        return self

    def start(self) -> None:
        exe = shutil.which("pulseaudio")
        if exe is None:
            raise RuntimeError("pulseaudio is not installed (apt-get install pulseaudio pulseaudio-utils)")
        script = [f"load-module module-native-protocol-unix auth-anonymous=1 socket={self.dir / 'native'}"]
        script += [f"load-module module-null-sink sink_name={s} rate={RATE} norewinds=1" for s in self.sinks]
        (self.dir / "default.pa").write_text("\n".join(script) + "\n")
        env = {**os.environ, "HOME": str(self.dir), "XDG_RUNTIME_DIR": str(self.dir),
               "PULSE_RUNTIME_PATH": str(self.dir)}
        self._proc = subprocess.Popen(
            [exe, "-n", "-F", str(self.dir / "default.pa"), "--daemonize=no", "--exit-idle-time=-1",
             "--use-pid-file=no", "--disallow-exit", "--log-target=stderr"],
            env=env, stdout=subprocess.DEVNULL, stderr=open(self.dir / "log", "wb"))
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(f"pulseaudio exited: {(self.dir / 'log').read_text()[-2000:]}")
            if self.pactl("list", "short", "sinks", check=False).count("\n") >= len(self.sinks):
                return
            time.sleep(0.1)
        raise RuntimeError("pulseaudio did not come up in 20 s")

    def __exit__(self, *exc: object) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def stop(self) -> None:
        """The server goes away (as a sound card pulled out of a board with one card)."""
        if self._proc is not None:
            self._proc.terminate()
            try:
                self._proc.wait(10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(10)
            self._proc = None

    def unload_sink(self, name: str) -> None:
        """Unload the null sink ``name``'s module: its streams are killed (a card unplugged mid-play
        on a board whose server stays up)."""
        mods = self.pactl("list", "short", "modules")
        ids = [ln.split()[0] for ln in mods.splitlines() if f"sink_name={name} " in ln + " "]
        assert len(ids) == 1, mods
        self.pactl("unload-module", ids[0])

    def load_sink(self, name: str) -> None:
        """The card is plugged in again: the null sink ``name`` is back."""
        self.pactl("load-module", "module-null-sink", f"sink_name={name}", f"rate={RATE}", "norewinds=1")

    def pactl(self, *args: str, check: bool = True) -> str:
        r = subprocess.run(["pactl", "--server", self.server, *args], capture_output=True, text=True,
                           timeout=10, check=False)
        if check and r.returncode != 0:
            raise RuntimeError(f"pactl {' '.join(args)}: {r.stderr}")
        return r.stdout


@dataclass
class Recorder:
    """Records ``sink``'s monitor; each block is kept with the wall time it was read and the
    stream's latency then, which dates every sample: ``t_read - latency - (samples after it)/rate``."""

    server: str
    sink: str
    blocks: list[tuple[float, float, bytes]] = field(default_factory=list)
    #: how long each dating took (a dating a busy CPU interrupted is left out of the median)
    spread: list[float] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> Recorder:
        ready = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(ready,), daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("the recorder did not start")
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)

    def _run(self, ready: threading.Event) -> None:
        import pasimple

        with pasimple.PaSimple(pasimple.PA_STREAM_RECORD, pasimple.PA_SAMPLE_S16LE, 1, RATE, "test", "rec",
                               server_name=self.server, device_name=f"{self.sink}.monitor",
                               fragsize=RATE * 2 // 100) as r:
            ready.set()
            while not self._stop.is_set():
                data = r.read(RATE * 2 // 100)
                t1 = time.time()
                latency = r.get_latency() / 1e6
                t2 = time.time()
                self.spread.append(t2 - t1)
                self.blocks.append(((t1 + t2) / 2, latency, data))

    def samples(self) -> array.array[int]:
        a = array.array("h")
        for _t, _lat, d in list(self.blocks):
            a.frombytes(d)
        return a

    def onset(self, threshold: int = 1500) -> tuple[int, float] | None:
        """(sample index, wall time) of the first sample louder than ``threshold``, or None."""
        blocks = list(self.blocks)
        total = 0
        for k, (_t, _lat, d) in enumerate(blocks):
            a = array.array("h")
            a.frombytes(d)
            hit = next((i for i, v in enumerate(a) if abs(v) > threshold), None)
            if hit is None:
                total += len(a)
                continue
            index = total + hit
            dates, through = [], total
            for m, (t, lat, dd) in enumerate(blocks[k: k + 50], start=k):  # the median of clean datings
                through += len(dd) // 2
                if self.spread[m] <= 0.002:
                    dates.append(t - lat - (through - index) / RATE)
            return index, statistics.median(dates)
        return None


def envelope(pcm: array.array[int] | bytes, rate: int, block_ms: int = 10) -> list[float]:
    data = pcm if isinstance(pcm, bytes) else pcm.tobytes()
    step = rate * block_ms // 1000 * 2
    return [float(audioop.rms(data[i:i + step], 2)) for i in range(0, len(data) - step + 1, step)]


def correlation(a: list[float], b: list[float]) -> float:
    n = min(len(a), len(b))
    a, b = a[:n], b[:n]
    ma, mb = sum(a) / n, sum(b) / n
    num = sum((x - ma) * (y - mb) for x, y in zip(a, b, strict=True))
    den = math.sqrt(sum((x - ma) ** 2 for x in a) * sum((y - mb) ** 2 for y in b))
    return num / den if den else 0.0


def loud_span_ms(pcm: array.array[int], rate: int, threshold: int = 1500) -> float:
    """From the first to the last sample louder than ``threshold``."""
    idx = [i for i, v in enumerate(pcm) if abs(v) > threshold]
    return (idx[-1] - idx[0]) * 1000 / rate if idx else 0.0


def ffmpeg_decode(audio: bytes, rate: int = RATE, *, codec: str = "opus") -> array.array[int]:
    """``audio`` decoded by ffmpeg (the one tts/audio.py encodes with; Opus through its libopus
    decoder), mono s16 at ``rate``: the reference the agent's own decoding is compared with."""
    from tts.audio import ffmpeg_path

    dec = ["-c:a", "libopus"] if codec == "opus" else []
    r = subprocess.run([ffmpeg_path(), "-hide_banner", "-nostdin", "-loglevel", "error", *dec, "-i", "pipe:0",
                        "-f", "s16le", "-ac", "1", "-ar", str(rate), "pipe:1"],
                       input=audio, capture_output=True, timeout=60, check=True)
    a = array.array("h")
    a.frombytes(r.stdout)
    return a


def best_lag_ms(got: list[float], ref: list[float], expected: int, search: int, block_ms: int = 10
                ) -> tuple[float, float]:
    """Where ``got`` (an envelope) sits in ``ref`` relative to block ``expected``: (lag in ms, the
    envelope correlation there), searched ``search`` blocks either side."""
    best = (0.0, -2.0)
    for k in range(-search, search + 1):
        start = expected + k
        if start < 0 or start + len(got) > len(ref):
            continue
        r = correlation(got, ref[start:start + len(got)])
        if r > best[1]:
            best = (float(k * block_ms), r)
    return best
