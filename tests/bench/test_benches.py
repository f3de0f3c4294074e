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


@pytest.mark.timeout(120)
def test_audiostore_bench_runs_small() -> None:
    out = subprocess.run([sys.executable, str(ROOT / "bench" / "audiostore.py"), "--sizes", "50000",
                          "--rounds", "2", "--no-postgres"],
                         capture_output=True, text=True, timeout=100, check=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    [row] = result["sqlite"]
    assert row["bytes"] == 50000 and row["cold_get_ms"] > 0 and row["baseline_read_bytes_ms"] > 0


@pytest.mark.broker
@pytest.mark.slow
@pytest.mark.timeout(400)
def test_broker_failover_bench_runs_small() -> None:
    out = subprocess.run([sys.executable, str(ROOT / "bench" / "broker_failover.py"), "--units", "6"],
                         capture_output=True, text=True, timeout=380, check=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    for run in ("nats_3_nodes", "baseline_3_mosquittos"):
        r = result[run]
        assert r["units_on_killed_node"] >= 1 and r["moved"] == r["units_on_killed_node"]
        assert 0 < r["p50_s"] <= r["max_s"]


@pytest.mark.broker
@pytest.mark.slow
@pytest.mark.timeout(300)
def test_rabbitmq_probe_runs_on_a_private_node() -> None:
    if not Path("/usr/lib/rabbitmq/bin/rabbitmq-server").exists():
        pytest.skip("RabbitMQ is not installed on this machine")
    out = subprocess.run([sys.executable, str(ROOT / "bench" / "rabbitmq_mqtt_probe.py")],
                         capture_output=True, text=True, timeout=280, check=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    # what docs/deploy.md says of RabbitMQ 3.10: exact retained and last-will yes, wildcard retained no
    assert result["retained_exact"] and result["last_will"]
    if result["rabbitmq"].startswith("3."):
        assert result["retained_wildcard"] is False
