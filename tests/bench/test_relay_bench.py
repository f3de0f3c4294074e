"""bench/relay.py runs and prints one JSON object last (figures are not asserted tightly)."""

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
def test_relay_bench_runs_small() -> None:
    out = subprocess.run([sys.executable, str(ROOT / "bench" / "relay.py"), "--units", "3", "--seconds", "2",
                          "--outage", "1"], capture_output=True, text=True, timeout=170, check=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["bench"] == "relay" and result["units"] == 3 and result["seconds"] == 2
    for mode in ("republish_mp3", "republish_hls"):
        m = result[mode]
        assert m["units_heard"] == 3 and m["units_recovered"] == 3, (mode, m)
        assert m["frames_sent"] > 0 and m["frames_received"] > 0
        assert 0 <= m["lost_pct"] <= 100
        assert m["cpu_pct"] >= 0 and m["mqtt_egress_bytes"] > 0
        assert 0 < m["first_audio_ms_p50"] <= m["first_audio_ms_p95"] < 60_000
        assert 0 <= m["recovery_ms_p50"] <= m["recovery_ms_max"] < 60_000
    nf = result["node_fetch"]
    assert nf["all_playing_ms"] is not None and 0 < nf["all_playing_ms"] < 60_000
    assert nf["cpu_pct"] >= 0 and nf["mqtt_egress_bytes_with_start"] > 0
    base = result["baseline"]
    assert base["frames_received"] > 0 and 0 <= base["lost_pct"] <= 100 and base["cpu_pct"] >= 0
    assert base["latency_ms_p50"] is not None
    assert {"republish_mp3_cpu_vs_raw", "republish_hls_cpu_vs_raw", "node_fetch_cpu_vs_raw",
            "republish_mp3_first_audio_vs_raw_latency",
            "republish_hls_first_audio_vs_raw_latency"} <= set(result["ratios"])
