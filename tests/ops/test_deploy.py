"""docs/deploy/ (issue 16): the systemd units start commands the CLI really has, the example
environment file is valid settings, and nginx accepts the reverse-proxy example — then serves a
controller through it over TLS: pages, the Secure session cookie (X-Forwarded-Proto), the delivery
view's event stream unbuffered, the live WebSocket upgraded, /metrics kept off the public name."""

from __future__ import annotations

import asyncio
import configparser
import json
import shlex
import shutil
import ssl
import subprocess
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from websockets.asyncio.client import connect

from controller.cli.backup import _parser as backup_parser
from controller.cli.loaphuong import build_parser
from controller.cli.own_parser import OWN_PARSER
from controller.core.tls import self_signed
from controller.core.web_settings import HttpSettings
from controller.settings import Settings
from devices.broker import free_port
from tests.conftest import ADMIN, make_settings
from tests.e2e.helpers import air, bulletin, provision
from tests.e2e.serve import basic, serving

pytestmark = pytest.mark.timeout(120)
DEPLOY = Path(__file__).resolve().parents[2] / "docs" / "deploy"
NGINX = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)


def unit(name: str) -> configparser.ConfigParser:
    cp = configparser.ConfigParser(strict=False, interpolation=None)
    cp.optionxform = str  # type: ignore[assignment,method-assign]
    cp.read(DEPLOY / name)
    return cp


def env_file() -> dict[str, str]:
    """KEY=VALUE lines as systemd reads them (a value in single quotes loses its quotes)."""
    out = {}
    for line in (DEPLOY / "controller.env.example").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            key, _, value = line.partition("=")
            out[key] = value[1:-1] if value[:1] == value[-1:] == "'" else value
    return out


def test_systemd_exec_start_is_a_real_command() -> None:
    svc = unit("loaphuong@.service")["Service"]
    assert svc["EnvironmentFile"] == "/etc/loaphuong/%i.env" and svc["KillSignal"] == "SIGTERM"
    port = env_file()["PORT"]
    argv = shlex.split(svc["ExecStart"].replace("%i", "a").replace("${PORT}", port))
    assert argv[0].endswith("/bin/loaphuong")
    args = build_parser().parse_args(argv[1:])  # exits on an unknown option
    assert (args.cmd, args.log_json, args.port, args.host) == ("serve", True, int(port), "127.0.0.1")
    assert args.data_dir == "/var/lib/loaphuong/a"

    backup = unit("loaphuong-backup@.service")["Service"]
    shell = shlex.split(backup["ExecStart"].replace("%%", "%").replace("%i", "a"))
    assert shell[:2] == ["/bin/sh", "-c"]
    inner = shlex.split(shell[2])
    assert inner[0] == "exec" and inner[1].endswith("/bin/loaphuong") and inner[2] == "--log-json"
    assert inner[3] in OWN_PARSER
    bargs = backup_parser(inner[3]).parse_args(inner[4:])
    assert bargs.file.startswith("/var/backups/loaphuong/a-") and bargs.data_dir == "/var/lib/loaphuong/a"
    assert unit("loaphuong-backup@.timer")["Timer"]["OnCalendar"]


def test_env_example_is_valid_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in env_file().items():
        monkeypatch.setenv(key, value)
    s = Settings()
    assert s.environment == "production" and s.log_json and s.http.trusted_proxies == ["127.0.0.1"]
    assert s.metrics.token is not None and s.mqtt.tls and s.db_url.startswith("postgresql://")


def nginx_conf(tmp: Path, upstream: str, port: int, cert: Path, key: Path) -> Path:
    site = (DEPLOY / "nginx-loaphuong.conf").read_text()
    site = site.replace("/etc/letsencrypt/live/loa.example.gov.vn/fullchain.pem", str(cert))
    site = site.replace("/etc/letsencrypt/live/loa.example.gov.vn/privkey.pem", str(key))
    for n in (1, 2, 3):
        site = site.replace(f"server 127.0.0.1:800{n} ", f"server {upstream} ")
    site = site.replace("listen [::]:443 ssl http2;", "")
    site = site.replace("listen 443 ssl", f"listen 127.0.0.1:{port} ssl")
    site = site.replace("listen 80;", f"listen 127.0.0.1:{free_port()};").replace("listen [::]:80;", "")
    (tmp / "site.conf").write_text(site)
    main = tmp / "nginx.conf"
    main.write_text(f"pid {tmp}/nginx.pid; error_log {tmp}/error.log; worker_processes 1; daemon off;\n"
                    f"events {{}}\nhttp {{ access_log off; client_body_temp_path {tmp}/body; "
                    f"proxy_temp_path {tmp}/proxy; include {tmp}/site.conf; }}\n")
    return main


@pytest.fixture
async def proxied(tmp_path: Path) -> AsyncIterator[str]:
    """A controller behind nginx (the example config, TLS): yields the https base URL."""
    if NGINX is None:
        pytest.skip("nginx is not installed (apt-get install nginx-light; tests/run.sh installs it)")
    settings = make_settings(tmp_path / "data", free_port()).model_copy(update={
        "http": HttpSettings(trusted_proxies=["127.0.0.1"], request_deadline_s=120)})  # type: ignore[call-arg]
    cert, key = self_signed(tmp_path / "tls")
    port = free_port()
    async with serving(settings) as (_, addr):
        conf = nginx_conf(tmp_path, addr, port, cert, key)
        check = await asyncio.to_thread(subprocess.run, [NGINX, "-t", "-c", str(conf), "-e",
                                                         str(tmp_path / "error.log")],
                                        capture_output=True, text=True, timeout=30)
        assert check.returncode == 0, check.stderr  # nginx -t accepts the example
        proc = await asyncio.create_subprocess_exec(NGINX, "-c", str(conf), "-e", str(tmp_path / "error.log"))
        try:
            base = f"https://127.0.0.1:{port}"
            async with httpx.AsyncClient(verify=False, timeout=5) as c:
                for _ in range(100):  # until nginx listens (10 s at most)
                    try:
                        if (await c.get(f"{base}/api/livez")).status_code == 200:
                            break
                    except httpx.HTTPError:
                        await asyncio.sleep(0.1)
                else:
                    raise AssertionError("nginx did not answer within 10 s")
            yield base
        finally:
            proc.terminate()
            await asyncio.wait_for(proc.wait(), 30)


async def test_nginx_example_serves_the_controller(proxied: str) -> None:
    async with httpx.AsyncClient(base_url=proxied, verify=False, timeout=30) as c:
        assert (await c.get("/api/livez")).json() == {"status": "ok"}
        r = await c.post("/api/login", json={"username": ADMIN[0], "password": ADMIN[1]})
        assert r.status_code == 200 and "secure" in r.headers["set-cookie"].lower()  # it knows it is HTTPS
        assert (await c.get("/metrics")).status_code == 404
        c.auth = ADMIN
        await provision(c, {"tdp1": ["n-1"]})
        b = await bulletin(c, "Thử qua nginx.")
        tomorrow = (datetime.now(tz=UTC) + timedelta(days=1)).isoformat()
        bid = await air(c, b["id"], {"zones": ["tdp1"]}, air_at=tomorrow)
        async with asyncio.timeout(10), c.stream("GET", f"/api/broadcasts/{bid}/events") as stream:
            assert stream.headers["content-type"].startswith("text/event-stream")
            async for line in stream.aiter_lines():  # the first event arrives at once, not buffered
                if line.startswith("event:"):
                    assert line == "event: delivery"
                    break
    tls = ssl.create_default_context()
    tls.check_hostname, tls.verify_mode = False, ssl.CERT_NONE
    ws_url = proxied.replace("https://", "wss://") + "/api/live/ws"
    async with asyncio.timeout(10), connect(ws_url, ssl=tls,
                                            additional_headers={"Authorization": basic(*ADMIN)}) as ws:
        await ws.send(json.dumps({"type": "start", "target": {"zones": ["tdp1"]}, "priority": "normal"}))
        assert "type" in json.loads(await ws.recv())  # upgraded and answered through nginx
