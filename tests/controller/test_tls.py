"""HTTPS serving (the phone's microphone needs it): a self-signed certificate is generated once,
reused, and serves both the API and the live WebSocket."""

from __future__ import annotations

import json
import ssl
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from websockets.asyncio.client import connect

from controller.core.tls import self_signed, tls_files
from devices.broker import free_port
from tests.conftest import ADMIN, make_settings
from tests.e2e.serve import basic, serving

pytestmark = pytest.mark.timeout(120)


def test_self_signed_is_generated_once_for_the_given_hosts(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path / "tls", ["localhost", "127.0.0.1", "loa.phuong.lan"])
    assert key.stat().st_mode & 0o777 == 0o600
    c = x509.load_pem_x509_certificate(cert.read_bytes())
    san = c.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert set(san.get_values_for_type(x509.DNSName)) == {"localhost", "loa.phuong.lan"}
    assert [str(a) for a in san.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    before = cert.read_bytes()
    assert self_signed(tmp_path / "tls") == (cert, key) and cert.read_bytes() == before


def test_tls_arguments_are_checked(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="both"):
        tls_files("cert.pem", None, None)
    with pytest.raises(SystemExit, match="not found"):
        tls_files(str(tmp_path / "nope.pem"), str(tmp_path / "nope.key"), None)
    assert tls_files(None, None, None) is None


async def test_api_and_live_websocket_over_https(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path / "tls", ["localhost", "127.0.0.1"])
    ctx = ssl.create_default_context(cafile=str(cert))
    async with serving(make_settings(tmp_path / "data", free_port()), tls=(str(cert), str(key))) as (_, addr):
        async with httpx.AsyncClient(base_url=f"https://{addr}", auth=ADMIN, verify=ctx,
                                     timeout=30) as client:  # (5 s by default: short on a busy machine)
            assert (await client.get("/api/health")).status_code == 200
            page = await client.get("/live.html")
            assert page.status_code == 200 and "Phát trực tiếp" in page.text and "/api/live/ws" in page.text
            with pytest.raises(httpx.ConnectError):
                await httpx.AsyncClient(verify=True, timeout=30).get(f"https://{addr}/api/health")
        async with connect(f"wss://{addr}/api/live/ws", ssl=ctx,
                           additional_headers={"Authorization": basic(*ADMIN)}) as ws:
            await ws.send(json.dumps({"type": "start", "target": {"zones": ["nowhere"]}}))
            assert "unknown zone" in json.loads(await ws.recv())["detail"]
