"""bench/cluster.py still runs and prints one JSON object last (times not asserted, counts are)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.broker
@pytest.mark.postgres
@pytest.mark.slow
@pytest.mark.timeout(240)
def test_cluster_bench_runs_small(pg_url: str) -> None:  # pg_url: skipped where PostgreSQL is not there
    out = subprocess.run([sys.executable, str(ROOT / "bench" / "cluster.py"), "--units", "3"],
                         capture_output=True, text=True, timeout=230, check=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["played_twice"] == 0 and result["plays"] == result["expected_plays"] == 6
    assert set(result["owner_killed"]) == {"takeover_s", "leader_s", "done_s"}
