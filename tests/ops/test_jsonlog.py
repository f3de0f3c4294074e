"""JSON structured logs (issue 16): one JSON object per line with ts, level, logger, msg and the
record's extra fields — from the formatter, and from a real ``loaphuong serve`` started with
``--log-json`` or ``LOAPHUONG_LOG_JSON``, whose every stderr line must parse."""

from __future__ import annotations

import io
import json
import logging
import os
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import httpx
import pytest

from controller.cli.loaphuong import build_parser
from controller.core.jsonlog import JsonFormatter, json_from_env
from devices.broker import free_port

pytestmark = pytest.mark.timeout(120)
ROOT = Path(__file__).resolve().parents[2]


def test_formatter_writes_one_object_per_record_with_extras() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    log = logging.getLogger("tests.jsonlog")
    log.addHandler(handler)
    log.propagate = False
    try:
        log.warning("loa %s mất kết nối\nlần %d", "tdp1-01", 2,
                    extra={"unit": "tdp1-01", "zones": ["tdp1"], "when": datetime(2024, 1, 2), "level": "x"})
        try:
            raise RuntimeError("hỏng")
        except RuntimeError:
            log.exception("failed")
    finally:
        log.removeHandler(handler)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2  # the newline inside the message stays inside its JSON string
    first, second = (json.loads(line) for line in lines)
    assert first["level"] == "WARNING" and first["logger"] == "tests.jsonlog"
    assert first["msg"] == "loa tdp1-01 mất kết nối\nlần 2"  # Vietnamese kept as it is
    assert first["unit"] == "tdp1-01" and first["zones"] == ["tdp1"]
    assert first["when"] == "2024-01-02 00:00:00"  # what JSON cannot hold, as text
    assert first["extra_level"] == "x"  # an extra field never overwrites one of the four
    assert datetime.fromisoformat(first["ts"]).utcoffset() is not None
    assert second["level"] == "ERROR" and "RuntimeError: hỏng" in second["exc"]
    assert not {"args", "exc_info", "pathname", "levelno"} & set(first)


def test_flag_after_the_command_and_env_values() -> None:
    assert build_parser().parse_args(["serve", "--log-json"]).log_json is True
    assert build_parser().parse_args(["--log-json", "serve"]).log_json is True
    assert build_parser().parse_args(["serve"]).log_json is False
    assert [json_from_env(v) for v in ("1", "true", "TRUE", "on", "", None, "0", "false")] == [
        True, True, True, True, False, False, False, False]


def _serve(tmp_path: Path, where: str) -> list[str]:
    """Start ``loaphuong serve`` (no broker listens: its reconnect warnings are logged too), wait
    until it answers, stop it with SIGTERM; its stderr lines."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOAPHUONG_")}
    env.update(PYTHONPATH=str(ROOT), LOAPHUONG_ADMIN_PASSWORD="test-password-1",
               **({"LOAPHUONG_LOG_JSON": "true"} if where == "env" else {}))
    before = ["--log-json"] if where == "before" else []
    after = ["--log-json"] if where == "after" else []
    cmd = [sys.executable, "-m", "controller.cli", *before, "serve", *after, "--port", str(port),
           "--data-dir", str(tmp_path / "data"), "--mqtt-port", str(free_port())]
    proc = subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE, text=True, cwd=tmp_path)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, "serve exited early"
            try:
                if httpx.get(f"http://127.0.0.1:{port}/api/livez", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "serve did not answer within 60 s"
            time.sleep(0.2)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    return [line for line in err.splitlines() if line.strip()]


@pytest.mark.parametrize("where", ["before", "after", "env"])
def test_serve_logs_json_lines(tmp_path: Path, where: str) -> None:
    records = [json.loads(line) for line in _serve(tmp_path, where)]  # every line is one JSON object
    for r in records:
        assert {"ts", "level", "logger", "msg"} <= set(r), r
    assert any(r["logger"] == "controller.core.db" and "database schema at head" in r["msg"] for r in records)
    assert any(r["logger"].startswith("uvicorn") for r in records)  # the server's own lines too
    assert any(r["logger"] == "devices.mqtt" and r["level"] == "WARNING" for r in records)  # no broker
