"""bench/cluster_scale.py still runs (2 controllers on PostgreSQL, a 3-node NATS cluster, units in 2
processes, the owner and a node SIGKILLed after the tap) and prints one JSON object last; times are
not asserted, the counts are."""

from __future__ import annotations

import json
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from devices.broker import nats_path

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.broker
@pytest.mark.postgres
@pytest.mark.slow
@pytest.mark.timeout(660)  # two runs at the most
def test_cluster_scale_bench_runs_small(pg_url: str) -> None:  # pg_url: skipped without PostgreSQL
    if nats_path() is None:
        pytest.fail("nats-server is not installed; tests/run.sh installs it (apt-get install nats-server)")
    cmd = [sys.executable, str(ROOT / "bench" / "cluster_scale.py"), "--units", "6", "--per-proc", "3",
           "--idle-s", "1", "--timeout-s", "150"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    if out.returncode != 0:
        # Seen once in a full CI run (6 workers, exit 1, passing alone): one of the bench's bounded
        # waits ran out on the loaded machine. Said loudly, then run once more; a second failure fails.
        warnings.warn(f"bench/cluster_scale.py exit {out.returncode} on the first run:\n{out.stderr[-3000:]}",
                      stacklevel=1)
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-4000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["sim_processes"] == 2, result
    for run in (result["clean"], result["faults"]):  # an undisturbed emergency, then one with the SIGKILLs
        assert run["status"] == "done" and run["deliveries"] == {"played": 6}, run
        assert run["missed"] == 0 and run["played_twice"] == 0 and run["starts"] == 6, run
    assert result["clean"]["takeover_s"] is None and result["clean"]["killed_node"] is None
    assert result["faults"]["takeover_s"] is not None and result["faults"]["killed_node"], result
    assert result["raw_baseline"]["complete"] == 6, result
    assert result["idle"]["controller_rss_mb"]["A"] > 0, result
