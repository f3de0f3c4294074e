"""bench/peers.py still runs and prints one JSON object last (figures not asserted)."""

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
@pytest.mark.timeout(180)
def test_peers_bench_runs_small(pg_url: str) -> None:  # pg_url: skipped where PostgreSQL is not there
    out = subprocess.run([sys.executable, str(ROOT / "bench" / "peers.py"), "--units", "3",
                          "--baseline-units", "1", "--poll-s", "1"],
                         capture_output=True, text=True, timeout=170, check=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["b_knows_notified_ms"]["n"] == 3 and result["b_knows_poll_only_s"]["n"] == 1
    # at least one change per unit reached B by notification (other writes may add their own)
    assert result["b_notified"] >= 3 and result["b_from_poll"] >= 1
