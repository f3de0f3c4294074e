"""bench/live.py runs and prints one JSON object last (figures are not asserted tightly)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.broker
@pytest.mark.slow
@pytest.mark.timeout(180)
def test_live_bench_runs_small() -> None:
    out = subprocess.run([sys.executable, str(ROOT / "bench" / "live.py"), "--nodes", "4", "--seconds", "3"],
                         capture_output=True, text=True, timeout=170, check=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["bench"] == "live" and result["marks_sent"] == 6
    assert result["marks_heard"] == 24 and result["frames_lost_total"] == 0
    assert 0 < result["latency_ms_p50"] < 1000 and result["baseline_mqtt_p50_ms"] > 0
