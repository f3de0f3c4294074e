"""The benchmarks still run and print one JSON object last (figures are not asserted here)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.broker
@pytest.mark.slow
@pytest.mark.timeout(300)
def test_fanout_bench_runs_small() -> None:
    out = subprocess.run([sys.executable, str(ROOT / "bench" / "fanout.py"), "--nodes", "20"],
                         capture_output=True, text=True, timeout=280, check=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["nodes"] == 20 and result["verified_or_later"] == 20
    # the controller publishes the audio once, whatever the number of units
    assert 1.0 <= result["egress_per_audio_byte"] < 1.1
    assert result["raw_fanout_seconds"] > 0 and result["ratio_vs_raw"] > 0
