"""bench/schedule.py still runs and prints one JSON object last (figures are not asserted here)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_schedule_bench_runs_small() -> None:
    cmd = [sys.executable, str(ROOT / "bench" / "schedule.py"),
           "--schedules", "200", "--burst", "3", "--window", "3"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=110, check=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["jobs_in_store"] == 200 and result["runs"] == result["aired"] == 3 + 9
    for phase in ("single", "burst"):
        assert result[phase]["handoff_lag_ms"]["n"] == result[phase]["probes"]
        assert result["baseline"][phase]["fire_lag_ms"]["n"] == result[phase]["probes"]
