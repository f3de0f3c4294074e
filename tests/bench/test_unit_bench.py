"""bench/unit.py still runs (a real PulseAudio null sink, a private Mosquitto, the agent as a
process) and prints one JSON object last; the figures are the bench's, not asserted here."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.broker
@pytest.mark.slow
@pytest.mark.timeout(240)
def test_unit_bench_runs_small() -> None:
    out = subprocess.run([sys.executable, str(ROOT / "bench" / "unit.py"), "--seconds", "2"],
                         capture_output=True, text=True, timeout=220, check=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    for key in ("agent_idle_rss_mb", "agent_play_rss_mb", "agent_play_opus_rss_mb", "baseline_rss_mb",
                "baseline_opus_rss_mb"):
        assert result[key] > 0, key
    assert {"agent_play_cpu_pct", "agent_play_opus_cpu_pct", "baseline_play_cpu_pct",
            "baseline_play_opus_cpu_pct", "ok"} <= set(result)
