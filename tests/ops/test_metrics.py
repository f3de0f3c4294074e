"""``GET /metrics`` (issue 16): what it counts after a real broadcast to simulated units over a real
Mosquitto, and who may read it — a request from another machine, or through a proxy, is refused
without the token; with a token, nobody reads it without that token."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from controller.core.web_settings import HttpSettings, MetricsSettings
from controller.settings import Settings
from devices.broker import BrokerProcess, free_port
from tests.conftest import make_settings, running_controller
from tests.e2e.helpers import air, bulletin, provision, sim, wait_broadcast, wait_for, wait_online
from tests.e2e.serve import serving
from tests.ops.promtext import parse, value

pytestmark = pytest.mark.timeout(180)

TOKEN = "s3cret-metrics-token-0123"


def scraper(app: Any, client: tuple[str, int] = ("127.0.0.1", 40000), **headers: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app, client=client),
                             base_url="http://controller", headers=headers, timeout=60)


async def scrape(app: Any) -> dict[Any, float]:
    async with scraper(app) as c:
        r = await c.get("/metrics")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain; version=0.0.4")
    return parse(r.text)


@pytest.mark.broker
async def test_metrics_count_a_broadcast_units_and_the_link(mosquitto: BrokerProcess, tmp_path: Path) -> None:
    async with running_controller(make_settings(tmp_path, mosquitto.port)) as (app, client):
        await provision(client, {"z1": ["m-1", "m-2"]})
        nodes = [sim(n, mosquitto.port) for n in ("m-1", "m-2")]
        for n in nodes:
            await n.start()
        try:
            await wait_online(client, ["m-1", "m-2"], timeout=30)
            b = await bulletin(client, "Thông báo thử đo lường.")
            bc = await wait_broadcast(client, await air(client, b["id"], {"zones": ["z1"]}), 60)
            assert bc["status"] == "done"

            async def written() -> bool:  # the broadcast's own row follows its deliveries'
                m = await scrape(app)
                return value(m, "loaphuong_broadcasts", status="done") == 1

            await wait_for(written, 20, "the finished broadcast counted")
            m = await scrape(app)
            assert value(m, "loaphuong_database_up") == 1
            assert value(m, "loaphuong_deliveries", state="played") == 2
            assert value(m, "loaphuong_deliveries", state="queued") == 0
            assert value(m, "loaphuong_broadcasts", status="active") == 0
            assert value(m, "loaphuong_units", status="online") == 2
            assert value(m, "loaphuong_units_total") == 2
            assert value(m, "loaphuong_mqtt_up") == 1
            assert value(m, "loaphuong_mqtt_connects_total") == 1
            assert value(m, "loaphuong_mqtt_reconnects_total") == 0
            assert value(m, "loaphuong_mqtt_duplicate_client_id") == 0
            assert value(m, "loaphuong_scheduler_leader") in (0, 1)
            assert value(m, "loaphuong_db_writer_queue") >= 0
            assert value(m, "loaphuong_mqtt_outbox") >= 0
            plays = value(m, "loaphuong_unit_answer_seconds_count", command="play")
            assert plays >= 2  # each unit answered the play
            assert value(m, "loaphuong_unit_answer_seconds_bucket", command="play", le="+Inf") == plays
            assert 0 < value(m, "loaphuong_unit_answer_seconds_sum", command="play") < plays * 30

            r = await client.post("/api/nodes/m-1/commands", json={"name": "ping"})
            assert r.status_code == 200, r.text
            assert value(await scrape(app), "loaphuong_unit_answer_seconds_count", command="staff") == 1

            await nodes[1].kill()  # gone without a clean shutdown: its will says offline

            async def offline() -> bool:
                return value(await scrape(app), "loaphuong_units", status="offline") == 1

            await wait_for(offline, 30, "one unit counted offline")
        finally:
            for n in nodes:
                await n.stop()


@pytest.fixture
async def local_only(tmp_path: Path) -> AsyncIterator[Any]:
    async with running_controller(make_settings(tmp_path, free_port())) as (app, _):
        yield app


async def test_metrics_refused_to_another_machine_and_through_a_proxy(local_only: Any) -> None:
    async with scraper(local_only, ("203.0.113.9", 51000)) as remote:
        r = await remote.get("/metrics")
    assert r.status_code == 403
    assert r.json()["code"] == "metrics_local_only" and "loaphuong_" not in r.text
    assert r.json()["detail"].startswith("Chỉ đọc được /metrics từ chính máy này")
    for header in ("X-Forwarded-For", "Forwarded", "X-Real-IP"):  # a local proxy relaying a stranger
        async with scraper(local_only, **{header: "203.0.113.9"}) as proxied:
            r = await proxied.get("/metrics")
        assert r.status_code == 403 and "loaphuong_" not in r.text, header
    async with scraper(local_only, ("::1", 51000)) as local6:
        assert (await local6.get("/metrics")).status_code == 200
    m = await scrape(local_only)
    assert value(m, "loaphuong_mqtt_up") == 0  # no broker listens on its port
    assert value(m, "loaphuong_units", status="unknown") == 0


async def test_metrics_token_required_from_everyone(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, free_port()).model_copy(
        update={"metrics": MetricsSettings(token=SecretStr(TOKEN))})
    async with running_controller(settings) as (app, _):
        for headers in ({}, {"Authorization": "Bearer wrong-token-0123456789"}, {"Authorization": TOKEN},
                        {"Authorization": f"Basic {TOKEN}"}):
            async with scraper(app, **headers) as c:  # from loopback, but no (right) token
                r = await c.get("/metrics")
            assert r.status_code == 401 and r.json()["code"] == "metrics_token", headers
            assert r.headers["www-authenticate"].startswith("Bearer") and "loaphuong_" not in r.text
        async with scraper(app, ("203.0.113.9", 51000), Authorization=f"Bearer {TOKEN}") as c:
            r = await c.get("/metrics")
        assert r.status_code == 200 and "loaphuong_units_total 0" in r.text
    with pytest.raises(ValueError, match="at least 16"):
        MetricsSettings(token=SecretStr("short"))


async def test_metrics_over_http_behind_a_trusted_proxy(tmp_path: Path) -> None:
    """Over a real socket, with 127.0.0.1 as a trusted proxy (uvicorn then takes the client's address
    from X-Forwarded-For): the forwarded stranger is refused, the machine itself is answered."""
    settings: Settings = make_settings(tmp_path, free_port()).model_copy(
        update={"http": HttpSettings(trusted_proxies=["127.0.0.1"], request_deadline_s=120)})  # type: ignore[call-arg]
    async with serving(settings) as (_, addr), httpx.AsyncClient(base_url=f"http://{addr}", timeout=30) as c:
        r = await c.get("/metrics", headers={"X-Forwarded-For": "203.0.113.9"})
        assert r.status_code == 403 and r.json()["code"] == "metrics_local_only"
        r = await c.get("/metrics", headers={"X-Forwarded-For": "127.0.0.1"})  # forged "local": still a proxy
        assert r.status_code == 403
        r = await c.get("/metrics")
        assert r.status_code == 200 and parse(r.text)
