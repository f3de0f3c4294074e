"""bench/tts.py runs and prints one JSON object last (figures are not asserted)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(120)
def test_tts_bench_runs_quick() -> None:
    out = subprocess.run([sys.executable, str(ROOT / "bench" / "tts.py"), "--quick"],
                         capture_output=True, text=True, timeout=110, check=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["bench"] == "tts" and result["reps"] == 1
    assert set(result["espeak_ng"]) == {"vi", "vi-vn-x-central", "vi-vn-x-south", "cache"}
    assert result["espeak_ng"]["cache"]["hit_s"] > 0 and result["gtts"]["requests"] > 1
    assert result["gtts"]["fake_service"] is True and result["normalize"]["chars_per_s"] > 0
