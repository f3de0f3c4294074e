"""bench/login_timing.py still runs and prints one JSON object last (figures not asserted)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_login_timing_bench_runs_small() -> None:
    out = subprocess.run([sys.executable, str(ROOT / "bench" / "login_timing.py"), "--rounds", "1"],
                         capture_output=True, text=True, timeout=110, check=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["rounds"] == 1
    assert {"unknown_ms", "known_wrong_ms", "old_unknown_ms", "argon2_verify_ms"} <= result.keys()
