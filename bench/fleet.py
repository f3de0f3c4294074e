"""Fleet benchmark: the controller's cost of a large heartbeating fleet, and its status API latency.

    python bench/fleet.py                       # 1,000 and 5,000 units (a few minutes)
    python bench/fleet.py --sizes 200 --window 10

For each size, in four processes on this machine: Mosquitto, the controller (``loaphuong serve``,
SQLite), and the simulated units (``loaphuong sim``, at most ``--per-proc`` units per process,
heartbeat every 15 s, telemetry every 60 s) — plus this process, which only measures:

* ``idle`` (the same-run baseline): the controller with every unit provisioned but none connected;
* ``loaded``: every unit online and heartbeating.

In each phase: the controller's CPU share (of one core) and RSS over a quiet window with no API
calls, then the latency of ``GET /api/nodes`` without ``limit`` (the first page, at most 1,000
units: what the UI polls), of ``?limit=100`` and of the most a client can ask for
(``?limit=100000&offset=1000``, served the 1,000-unit cap), sequentially; ``nodes_api_worst_p95_ms``
is the worst of the three, each with the controller's CPU per request beside it (its CPU time
over the requests less its quiet-window share: wall time on a shared, overloaded machine is
mostly waiting for a core). The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

from devices.broker import BrokerProcess, free_port, mosquitto_path  # noqa: E402

logger = logging.getLogger("bench.fleet")

PASSWORD = "bench-password-1"
ZONES = 10
CLK_TCK = os.sysconf("SC_CLK_TCK")


# ----------------------------------------------------------------------------- /proc probes


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process, in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def rss_mb(pid: int, key: str = "VmRSS") -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    return 0.0


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, max(0, math.ceil(q * len(s)) - 1))]


# ----------------------------------------------------------------------------- set-up


def id_prefixes(count: int, per_proc: int) -> list[tuple[str, int]]:
    """(id prefix, units) per simulator process."""
    procs = max(1, math.ceil(count / per_proc))
    base, extra = divmod(count, procs)
    return [(f"f{chr(ord('a') + i)}", base + (i < extra)) for i in range(procs)]


def seed(data_dir: Path, groups: list[tuple[str, int]]) -> None:
    """Provision the ward directly in the database (the API adds one unit per request)."""
    from controller.core.db import Database
    from controller.fleet.models import Node, NodeZone, Zone
    from controller.settings import Settings
    from firmware_sim.fleet import fleet_specs

    db = Database(Settings(data_dir=data_dir).db_url)  # type: ignore[call-arg]
    db.migrate()
    with db.session() as s:
        s.add_all(Zone(id=f"zone{i}", name=f"Tổ {i}") for i in range(1, ZONES + 1))
        specs = [sp for prefix, n in groups for sp in fleet_specs(n, id_prefix=prefix, zones=ZONES)]
        s.add_all(Node(id=sp.node_id, name=sp.node_id) for sp in specs)
        s.flush()
        s.add_all(NodeZone(node_id=sp.node_id, zone_id=g)
                  for sp in specs for g in sp.groups or [] if g != "all")
        s.commit()
    db.dispose()


def start_controller(data_dir: Path, broker_port: int, http_port: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, "LOAPHUONG_ADMIN_PASSWORD": PASSWORD, "PYTHONUNBUFFERED": "1"}
    log = (data_dir / "controller.log").open("wb")
    return subprocess.Popen(
        [sys.executable, "-m", "controller.cli", "serve", "--port", str(http_port),
         "--data-dir", str(data_dir), "--mqtt-port", str(broker_port)],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)


def start_sims(broker_port: int, groups: list[tuple[str, int]], heartbeat: float,
               log_dir: Path) -> list[subprocess.Popen[bytes]]:
    procs = []
    for prefix, n in groups:
        log = (log_dir / f"sim-{prefix}.log").open("wb")
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "controller.cli", "sim", "--port", str(broker_port), "--count", str(n),
             "--zones", str(ZONES), "--id-prefix", prefix, "--heartbeat", str(heartbeat)],
            cwd=ROOT, stdout=log, stderr=subprocess.STDOUT))
    return procs


def stop(procs: list[subprocess.Popen[bytes]], timeout: float = 60) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


# ----------------------------------------------------------------------------- measuring


def wait_until(pred: Any, timeout: float, what: str, every: float = 1.0) -> float:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if pred():
            return time.monotonic() - t0
        time.sleep(every)
    raise RuntimeError(f"timed out after {timeout:.0f} s waiting for {what}")


def online(http: httpx.Client) -> int:
    r = http.get("/api/nodes", params={"state": "online", "limit": 1})
    r.raise_for_status()
    return int(r.headers["x-total-count"])  # a page is at most 1,000 units: the total says all


def quiet_window(pid: int, seconds: float, http: httpx.Client) -> dict[str, float]:
    """CPU share of one core and RSS of the controller while nobody calls the API."""
    msgs0 = http.get("/api/health").json()["mqtt"]["msgs_in"]
    c0, t0 = cpu_seconds(pid), time.monotonic()
    time.sleep(seconds)
    c1, t1 = cpu_seconds(pid), time.monotonic()
    msgs1 = http.get("/api/health").json()["mqtt"]["msgs_in"]
    return {"cpu_share": round((c1 - c0) / (t1 - t0), 4), "rss_mb": round(rss_mb(pid), 1),
            "msgs_in_per_s": round((msgs1 - msgs0) / (t1 - t0), 1)}


def latency(http: httpx.Client, path: str, n: int, pause: float = 0.1, *, pid: int = 0,
            background: float = 0.0, headers: dict[str, str] | None = None) -> dict[str, float]:
    """Wall latency of ``n`` sequential requests, and the controller's CPU per request (its CPU
    time over them less ``background``, its share of a core in the quiet window): the figure a
    shared, overloaded machine does not inflate the way it does wall time."""
    samples = []
    size = 0
    c0, t0w = (cpu_seconds(pid) if pid else 0.0), time.monotonic()
    for _ in range(n):
        t0 = time.perf_counter()
        r = http.get(path, headers=headers)
        samples.append((time.perf_counter() - t0) * 1000)
        r.raise_for_status()
        size = len(r.content)
        time.sleep(pause)
    cpu_ms = ((cpu_seconds(pid) - c0) - background * (time.monotonic() - t0w)) * 1000 / n if pid else 0.0
    return {"p50_ms": round(statistics.median(samples), 1), "p95_ms": round(pct(samples, 0.95), 1),
            "bytes": size, "cpu_ms_per_request": round(max(0.0, cpu_ms), 1)}


def phase(pid: int, http: httpx.Client, window: float, requests: int) -> dict[str, Any]:
    out: dict[str, Any] = quiet_window(pid, window, http)
    bg = {"pid": pid, "background": out["cpu_share"]}
    out["nodes_api"] = latency(http, "/api/nodes", requests, **bg)  # no limit: the first (largest) page
    out["nodes_api_page"] = latency(http, "/api/nodes?limit=100", requests, **bg)
    # the most a client can ask for: a limit beyond the page cap, deep in the list
    out["nodes_api_max"] = latency(http, "/api/nodes?limit=100000&offset=1000", requests, **bg)
    # the first page again, not compressed: what gzip costs of it
    plain = {"accept-encoding": "identity"}
    out["nodes_api_plain"] = latency(http, "/api/nodes", requests, **bg, headers=plain)
    paths = ("nodes_api", "nodes_api_page", "nodes_api_max")
    out["nodes_api_worst_p95_ms"] = max(out[k]["p95_ms"] for k in paths)
    return out


def run_size(count: int, args: argparse.Namespace) -> dict[str, Any]:
    groups = id_prefixes(count, args.per_proc)
    with tempfile.TemporaryDirectory(prefix="lp-fleet-") as tmp, BrokerProcess(args.broker) as broker:
        data = Path(tmp)
        seed(data, groups)
        http_port = free_port()
        ctl = start_controller(data, broker.port, http_port)
        sims: list[subprocess.Popen[bytes]] = []
        try:
            with httpx.Client(base_url=f"http://127.0.0.1:{http_port}", auth=("admin", PASSWORD),
                              timeout=60) as http:
                def up() -> bool:
                    try:
                        return http.get("/api/health").status_code == 200
                    except httpx.TransportError:
                        return False

                wait_until(up, 60, "the controller", every=0.2)
                time.sleep(2)  # settle after start-up
                idle = phase(ctl.pid, http, args.window, args.requests)
                logger.info("%d: idle %s", count, idle)
                t0 = time.monotonic()
                sims = start_sims(broker.port, groups, args.heartbeat, data)
                took = wait_until(lambda: online(http) >= count, args.connect_timeout,
                                  f"{count} units online", every=2.0)
                logger.info("%d: all online after %.1f s", count, took)
                time.sleep(args.heartbeat)  # one heartbeat period of steady state before measuring
                loaded = phase(ctl.pid, http, args.window, args.requests)
                loaded["online"] = online(http)
                logger.info("%d: loaded %s", count, loaded)
                sim_cpu = sum(cpu_seconds(p.pid) for p in sims)
                elapsed = time.monotonic() - t0
            peak = rss_mb(ctl.pid, "VmHWM")
        finally:
            stop(sims)
            stop([ctl])
    return {"nodes": count, "sim_processes": len(groups), "seconds_to_all_online": round(took, 1),
            "controller_peak_rss_mb": round(peak, 1), "idle": idle, "loaded": loaded,
            "sim_cpu_share": round(sim_cpu / elapsed, 3)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="1000,5000", help="comma-separated fleet sizes")
    ap.add_argument("--window", type=float, default=30.0, help="quiet measuring window per phase (s)")
    ap.add_argument("--requests", type=int, default=40, help="API requests per phase and path")
    ap.add_argument("--heartbeat", type=float, default=15.0)
    ap.add_argument("--per-proc", type=int, default=2000, help="simulated units per process")
    ap.add_argument("--connect-timeout", type=float, default=240.0)
    ap.add_argument("--broker", choices=["mosquitto", "embedded"],
                    default="mosquitto" if mosquitto_path() else "embedded")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logger.setLevel(logging.INFO)
    sizes = [int(x) for x in args.sizes.split(",") if x.strip()]
    t0 = time.monotonic()
    results = [run_size(n, args) for n in sizes]
    print(json.dumps({"bench": "fleet", "broker": args.broker, "cores": os.cpu_count(),
                      "heartbeat_s": args.heartbeat, "window_s": args.window, "results": results,
                      "seconds": round(time.monotonic() - t0, 1)}, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
