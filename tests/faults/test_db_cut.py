"""Issue 13: the real PostgreSQL cut and black-holed behind a TCP proxy the test controls
(tests/faults/tcp_cut.py). The API answers 503 {"error": ...} within its deadline, never a
traceback or a hang; a UI page gets the Vietnamese notice; after the restore everything works."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest

from controller.core.web_settings import HttpSettings
from devices.broker import BrokerProcess
from tests.conftest import ADMIN, make_settings, running_controller
from tests.e2e.helpers import wait_for
from tests.faults.helpers import get_ok
from tests.faults.tcp_cut import TcpCut, tcp_cut

pytestmark = [pytest.mark.postgres, pytest.mark.broker, pytest.mark.slow]

DEADLINE_S = 10.0  # a black-holed request is answered 503 at this deadline


def unavailable(r: httpx.Response) -> None:
    assert r.status_code == 503, r.text
    assert "error" in r.json() and "Traceback" not in r.text
    assert r.json()["code"] in ("database_unavailable", "deadline_exceeded"), r.text
    assert r.headers["retry-after"]


async def test_postgres_cut_and_black_hole_answer_503_then_recover(
        mosquitto: BrokerProcess, tmp_path: Path, pg_url: str) -> None:
    with tcp_cut("127.0.0.1", 5432) as proxy:
        await _cut_and_black_hole(proxy, tmp_path, mosquitto.port, pg_url)


async def _cut_and_black_hole(proxy: TcpCut, tmp_path: Path, port: int, pg_url: str) -> None:
    settings = make_settings(tmp_path, port)
    settings.database_url = pg_url.replace(":5432/", f":{proxy.port}/")
    settings.http = HttpSettings(request_deadline_s=DEADLINE_S)  # type: ignore[call-arg]
    async with running_controller(settings) as (_, client):
        await get_ok(client, "/api/health")
        before = (await get_ok(client, "/api/broadcasts")).json()

        async def logged_in() -> bool:  # the browser's session cookie, kept by the client
            login = await client.post("/api/login", json={"username": ADMIN[0], "password": ADMIN[1]})
            assert login.status_code in (200, 503), login.text
            return login.status_code == 200

        await wait_for(logged_in, 60, "a login")

        proxy.cut()  # the database refuses: answered at once
        for path in ("/api/health", "/api/broadcasts", "/api/nodes"):
            unavailable(await client.get(path))
        assert (await client.get("/api/livez")).status_code == 200  # the process itself lives
        page = await client.get("/", headers={"accept": "text/html"}, auth=None)
        assert page.status_code == 503, page.text  # a page: the notice in Vietnamese, no traceback
        assert "Cơ sở dữ liệu tạm thời không truy cập được" in page.text, page.text

        proxy.restore()
        r = await get_ok(client, "/api/health")
        assert r.status_code == 200, r.text

        proxy.black_hole()  # a dead route: nothing answers; the deadline does
        # answered by the controller's deadline (the client would give up only after 60 s)
        results = await asyncio.gather(*(client.get(p) for p in ("/api/health", "/api/broadcasts")))
        for r in results:
            unavailable(r)

        proxy.restore()
        r = await get_ok(client, "/api/broadcasts")
        assert r.status_code == 200, r.text
        assert r.json() == before  # nothing lost nor made while the database was away
        assert (await get_ok(client, "/api/health")).json()["database"]["ok"] is True
