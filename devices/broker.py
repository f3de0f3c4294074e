"""MQTT brokers we start ourselves: the embedded one (amqtt, pip-installed) and system Mosquitto.

``python -m devices.broker --port 1883`` runs the embedded broker in its own process, so the
demo needs nothing but pip. Tests and benchmarks use :class:`BrokerProcess` to start either
kind on a free port and stop it again.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

logger = logging.getLogger(__name__)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(host: str, port: int, timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.05)
    return False


def mosquitto_path() -> str | None:
    return shutil.which("mosquitto") or (
        "/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None)


def nats_path() -> str | None:
    return shutil.which("nats-server") or (
        "/usr/sbin/nats-server" if Path("/usr/sbin/nats-server").exists() else None)


KINDS = ("mosquitto", "embedded", "nats")
_PR_SET_PDEATHSIG = 1


def _term_with_parent() -> None:
    """In the forked child before exec: ask Linux for SIGTERM when the starting thread dies, so a
    killed ``loaphuong demo`` leaves no broker behind."""
    import ctypes

    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)


class BrokerProcess:
    """A broker child process on 127.0.0.1:port: 'mosquitto', 'embedded' (amqtt) or 'nats'
    (nats-server's MQTT 3.1.1 gateway, QoS 0/1 only, backed by JetStream)."""

    def __init__(self, kind: str = "embedded", port: int | None = None, *, conf_extra: str = "",
                 persistence_dir: Path | None = None, die_with_parent: bool = False) -> None:
        if kind not in KINDS:
            raise ValueError(f"unknown broker kind {kind!r}")
        self.kind = kind
        self.port = port or free_port()
        self.conf_extra = conf_extra
        self.persistence_dir = persistence_dir
        self.die_with_parent = die_with_parent  # Linux: the broker gets SIGTERM when we die
        self.proc: subprocess.Popen[bytes] | None = None
        self._tmp = tempfile.TemporaryDirectory(prefix="lp-broker-")

    def start(self) -> BrokerProcess:
        if self.kind == "mosquitto":
            exe = mosquitto_path()
            if exe is None:
                raise RuntimeError("mosquitto is not installed (apt-get install mosquitto)")
            conf = Path(self._tmp.name) / "mosquitto.conf"
            lines = [f"listener {self.port} 127.0.0.1", "allow_anonymous true",
                     "max_queued_messages 10000", self.conf_extra]
            if self.persistence_dir is not None:
                lines += ["persistence true", f"persistence_location {self.persistence_dir}/"]
            conf.write_text("\n".join(lines) + "\n")
            cmd = [exe, "-c", str(conf)]
        elif self.kind == "nats":
            exe = nats_path()
            if exe is None:
                raise RuntimeError("nats-server is not installed (apt-get install nats-server)")
            conf = Path(self._tmp.name) / "nats.conf"
            store = Path(self._tmp.name) / "js"
            conf.write_text(
                f"listen: 127.0.0.1:{free_port()}\nserver_name: lp_{self.port}\n"
                f'jetstream {{ store_dir: "{store}" }}\nmqtt {{ listen: 127.0.0.1:{self.port} }}\n'
            )
            cmd = [exe, "-c", str(conf)]
        else:
            cmd = [sys.executable, "-m", "devices.broker", "--port", str(self.port), "--quiet"]
        pre = _term_with_parent if self.die_with_parent and sys.platform == "linux" else None
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     preexec_fn=pre)
        if not wait_port("127.0.0.1", self.port):
            self.stop()
            raise RuntimeError(f"{self.kind} broker did not start on port {self.port}")
        logger.info("%s broker on 127.0.0.1:%d (pid %d)", self.kind, self.port, self.proc.pid)
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None

    def restart(self, down_s: float = 0.0) -> None:
        self.stop()
        time.sleep(down_s)
        self.start()

    def __enter__(self) -> BrokerProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
        self._tmp.cleanup()


async def run_embedded(host: str, port: int) -> None:
    """Run the amqtt broker until SIGINT/SIGTERM."""
    from amqtt.broker import Broker

    config = {
        "listeners": {"default": {"type": "tcp", "bind": f"{host}:{port}", "max_connections": 10000}},
        "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}},
    }
    broker = Broker(config)
    await broker.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    logger.info("embedded MQTT broker listening on %s:%d", host, port)
    await stop.wait()
    await broker.shutdown()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="loaphuong broker", description="embedded MQTT 3.1.1 broker (amqtt)")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=1883)
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.quiet:
        logging.getLogger("amqtt").setLevel(logging.ERROR)
        logging.getLogger("transitions").setLevel(logging.ERROR)
    asyncio.run(run_embedded(args.host, args.port))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
