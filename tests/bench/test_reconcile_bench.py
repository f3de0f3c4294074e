"""bench/reconcile.py still runs and prints one JSON object last (figures are not asserted here,
only what the run did: one group play per check that found every unit short of playing)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_reconcile_bench_runs_small() -> None:
    cmd = [sys.executable, str(ROOT / "bench" / "reconcile.py"), "--units", "50", "--runs", "3"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=110, check=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    [r] = result["results"]
    assert result["bench"] == "reconcile" and r["units"] == 50
    assert r["group_asks"] == 3 and r["unit_asks"] == 0  # one group play per 'all lost' check
    assert all(r[k] >= 0 for k in ("steady_ms", "all_lost_ms", "backoff_ms", "baseline_ms"))
