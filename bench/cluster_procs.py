"""The processes bench/cluster_scale.py measures: a controller (``loaphuong serve`` on the shared
PostgreSQL database, given every broker node), the NATS nodes' own counters (``/varz``), the
database's (``pg_stat_database``), and CPU / memory windows over all of them."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
import urllib.request
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg

from bench.cputime import cpu_seconds
from devices.broker import free_port
from devices.broker_cluster import NatsCluster

ROOT = Path(__file__).resolve().parent.parent
ADMIN = ("admin", "bench-password")


@dataclass
class Controller:
    name: str
    proc: asyncio.subprocess.Process
    api: httpx.AsyncClient
    client_id: str = ""
    broker: str = ""
    killed: bool = field(default=False)

    @property
    def pid(self) -> int:
        return self.proc.pid

    async def online(self) -> int:
        """Units this controller sees online (its /metrics)."""
        try:
            text = (await self.api.get("/metrics")).text
        except httpx.HTTPError:
            return -1
        for line in text.splitlines():
            if line.startswith('loaphuong_units{status="online"}'):
                return int(float(line.split()[-1]))
        return 0

    async def health(self) -> dict[str, Any]:
        return dict((await self.api.get("/api/health")).json())

    def kill(self) -> None:
        os.kill(self.pid, 9)
        self.killed = True


@asynccontextmanager
async def start_controller(name: str, data_dir: Path, url: str, brokers: str,
                           ready_s: float = 120) -> AsyncIterator[Controller]:
    """``loaphuong serve`` as a child process (its log in ``data_dir``/serve.log), killed at the end."""
    http = free_port()
    data_dir.mkdir(parents=True, exist_ok=True)
    log = (data_dir / "serve.log").open("wb")
    env = {**os.environ, "LOAPHUONG_ADMIN_PASSWORD": ADMIN[1], "LOAPHUONG_MQTT__BROKERS": brokers,
           "LOAPHUONG_HTTP__REQUEST_DEADLINE_S": "120"}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "controller.cli", "serve", "--port", str(http), "--data-dir", str(data_dir),
        "--database-url", url, cwd=ROOT, stdout=log, stderr=log, env=env)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{http}", auth=ADMIN, timeout=120) as api:
            ctl = Controller(name, proc, api)
            deadline = time.monotonic() + ready_s
            while True:
                try:
                    health = await ctl.health()
                    if health["mqtt"]["connected"]:
                        break
                except (httpx.HTTPError, KeyError, ValueError):
                    pass
                if time.monotonic() > deadline or proc.returncode is not None:
                    raise RuntimeError(f"controller {name} did not come up (see {data_dir}/serve.log)")
                await asyncio.sleep(0.5)
            ctl.client_id, ctl.broker = health["mqtt"]["client_id"], health["mqtt"]["broker"]
            yield ctl
    finally:
        if proc.returncode is None:
            proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), 30)
            except TimeoutError:
                proc.kill()
                await proc.wait()
        log.close()


def rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return 0.0


class CpuMeter:
    """CPU % of one core of named processes over a window (the values of those still alive)."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = dict(pids)
        self.t0 = time.monotonic()
        self.c0 = {k: cpu_seconds(p) for k, p in self.pids.items()}

    def read(self, only: list[str] | None = None) -> dict[str, float]:
        wall = max(1e-6, time.monotonic() - self.t0)
        names = only if only is not None else list(self.pids)
        return {k: round(100 * (cpu_seconds(self.pids[k]) - self.c0[k]) / wall, 1) for k in names}


def cpu_window(pids: dict[str, int]) -> CpuMeter:
    return CpuMeter(pids)


def _varz(port: int) -> dict[str, Any]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/varz", timeout=5) as r:
        return dict(json.load(r))


def nats_bytes(cluster: NatsCluster) -> dict[str, int]:
    """Bytes each live node sent so far (clients and routes)."""
    out: dict[str, int] = {}
    for n in cluster.nodes:
        if n.alive:
            try:
                out[n.name] = int(_varz(n.http_port)["out_bytes"])
            except (OSError, KeyError, ValueError):
                pass
    return out


def nats_connections(cluster: NatsCluster) -> dict[str, int]:
    """Client connections (MQTT included) of each live node, by its MQTT port."""
    out: dict[str, int] = {}
    for n in cluster.nodes:
        if n.alive:
            try:
                out[str(n.mqtt_port)] = int(_varz(n.http_port)["connections"])
            except (OSError, KeyError, ValueError):
                pass
    return out


class PgStats:
    """Writes to one database between two reads (pg_stat_database; its counters lag up to ~0.5 s)."""

    KEYS = ("xact_commit", "tup_inserted", "tup_updated", "tup_deleted")

    def __init__(self, admin_url: str, name: str) -> None:
        self.admin_url, self.name = admin_url, name
        self.first = self._read()

    def _read(self) -> dict[str, int]:
        with psycopg.connect(self.admin_url, autocommit=True, connect_timeout=3) as c:
            c.execute("SELECT pg_stat_clear_snapshot()")
            row = c.execute(f"SELECT {', '.join(self.KEYS)} FROM pg_stat_database WHERE datname = %s",
                            (self.name,)).fetchone()
        return dict(zip(self.KEYS, (int(v) for v in row or (0,) * len(self.KEYS)), strict=True))

    def delta(self) -> dict[str, int]:
        now = self._read()
        return {k: now[k] - self.first[k] for k in self.KEYS}
