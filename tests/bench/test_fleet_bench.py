"""bench/fleet.py still runs end to end and prints one JSON object last (figures not asserted)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from devices.probe import PROBE_S

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.broker
@pytest.mark.slow
@pytest.mark.timeout(180)
def test_fleet_bench_runs_small() -> None:
    out = subprocess.run([sys.executable, str(ROOT / "bench" / "fleet.py"), "--sizes", "40", "--window", "2",
                          "--requests", "3", "--heartbeat", "2", "--per-proc", "25"],
                         capture_output=True, text=True, timeout=170, check=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    [r] = result["results"]
    assert r["nodes"] == 40 and r["sim_processes"] == 2 and r["loaded"]["online"] == 40
    for phase in ("idle", "loaded"):
        assert r[phase]["cpu_share"] >= 0 and r[phase]["rss_mb"] > 0
        assert 0 < r[phase]["nodes_api"]["p50_ms"] <= r[phase]["nodes_api"]["p95_ms"]
        for path in ("nodes_api", "nodes_api_page", "nodes_api_max", "nodes_api_plain"):
            assert r[phase][path]["cpu_ms_per_request"] >= 0 and r[phase][path]["bytes"] > 0
    # idle: no unit sends anything; what comes in is the controller's own broker probe coming back
    # (devices/probe.py, one per PROBE_S)
    assert r["loaded"]["msgs_in_per_s"] > 1.5 / PROBE_S and r["idle"]["msgs_in_per_s"] <= 1.5 / PROBE_S
