"""HTTP API: bad input gets a clear error and leaves nothing half-written.

No broker runs here: the controller keeps retrying in the background while the API works.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlmodel import func, select

from controller.airing.models import Broadcast, Delivery
from controller.bulletins.models import Bulletin
from devices.broker import free_port
from tests.conftest import make_settings, running_controller

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[tuple[Any, httpx.AsyncClient]]:
    async with running_controller(make_settings(tmp_path, free_port())) as (app, client):
        for z in ("z1", "empty"):
            assert (await client.post("/api/zones", json={"id": z, "name": z.upper()})).status_code == 201
        for n in ("n1", "n2"):
            r = await client.post("/api/nodes", json={"id": n, "zones": ["z1"]})
            assert r.status_code == 201
        yield app, client


def counts(app: Any) -> tuple[int, int, int]:
    with app.state.services.db.session() as s:
        return tuple(s.exec(select(func.count()).select_from(m)).one()  # type: ignore[return-value]
                     for m in (Bulletin, Broadcast, Delivery))


async def test_login_required(api: tuple[Any, httpx.AsyncClient]) -> None:
    _, client = api
    for auth in (None, ("admin", "wrong"), ("nobody", "x")):
        r = await client.get("/api/nodes", auth=auth) if auth else await client.get(
            "/api/nodes", auth=httpx.BasicAuth("", ""))
        assert r.status_code == 401 and "login" in r.json()["detail"]


@pytest.mark.parametrize(("text", "needle"), [
    ("", "nothing to read aloud"), ("   \n\t ", "nothing to read aloud"),
    ("... !!! ???", "nothing to read aloud"), ("🔥🔥📢", "nothing to read aloud"),
    ("a" * 5001, "limit is 5000"),
])
async def test_bad_bulletin_text(api: tuple[Any, httpx.AsyncClient], text: str, needle: str) -> None:
    app, client = api
    before = counts(app)
    r = await client.post("/api/bulletins", json={"text": text})
    assert r.status_code == 422, r.text
    assert needle in r.json()["detail"].lower()
    assert counts(app) == before


async def test_decomposed_unicode_is_spoken_like_composed(api: tuple[Any, httpx.AsyncClient]) -> None:
    import unicodedata

    _, client = api
    text = "Thông báo tiêm phòng tại nhà văn hóa"
    a = (await client.post("/api/bulletins", json={"text": text})).json()
    b = (await client.post("/api/bulletins", json={"text": unicodedata.normalize("NFD", text)})).json()
    assert a["audio"]["sha256"] == b["audio"]["sha256"]


async def test_bad_broadcasts_are_refused_and_write_nothing(api: tuple[Any, httpx.AsyncClient]) -> None:
    app, client = api
    bid = (await client.post("/api/bulletins", json={"text": "Họp tổ dân phố lúc 19h."})).json()["id"]
    past = (datetime.now(tz=UTC) - timedelta(hours=1)).isoformat()
    naive = (datetime.now() + timedelta(hours=1)).replace(tzinfo=None).isoformat()
    cases: list[tuple[dict[str, Any], int, str]] = [
        ({"bulletin_id": bid, "target": {"zones": ["nope"]}}, 404, "unknown zone"),
        ({"bulletin_id": bid, "target": {"nodes": ["n1", "ghost"]}}, 404, "unknown unit(s): ghost"),
        ({"bulletin_id": 999, "target": {"all": True}}, 404, "bulletin 999"),
        ({"bulletin_id": bid, "target": {}}, 422, "choose the whole ward"),
        ({"bulletin_id": bid, "target": {"zones": ["empty"]}}, 422, "no loudspeaker"),
        ({"bulletin_id": bid, "target": {"all": True}, "air_at": past}, 422, "in the past"),
        ({"bulletin_id": bid, "target": {"all": True}, "air_at": naive}, 422, "utc offset"),
        ({"bulletin_id": bid, "target": {"all": True}, "repeat": 0}, 422, ""),
        ({"bulletin_id": bid, "target": {"all": True}, "valid_for_s": 1}, 422, ""),
        ({"bulletin_id": bid, "target": {"all": True}, "colour": "red"}, 422, ""),
        ({"bulletin_id": "one", "target": {"all": True}}, 422, ""),
    ]
    before = counts(app)
    for body, code, needle in cases:
        r = await client.post("/api/broadcasts", json=body)
        assert r.status_code == code, (body, r.text)
        assert needle in r.text.lower(), (body, r.text)
    assert counts(app) == before


async def test_fleet_validation(api: tuple[Any, httpx.AsyncClient]) -> None:
    _, client = api
    assert (await client.post("/api/zones", json={"id": "Bad Id", "name": "x"})).status_code == 422
    assert (await client.post("/api/zones", json={"id": "all", "name": "x"})).status_code == 422
    assert (await client.post("/api/zones", json={"id": "z1", "name": "again"})).status_code == 409
    r = await client.post("/api/nodes", json={"id": "n9", "zones": ["zz"]})
    assert r.status_code == 404 and "zz" in r.json()["detail"]
    assert (await client.post("/api/nodes", json={"id": "n1"})).status_code == 409
    assert (await client.get("/api/nodes/ghost")).status_code == 404
    nodes = (await client.get("/api/nodes", params={"zone": "z1"})).json()
    assert [n["id"] for n in nodes] == ["n1", "n2"]
    assert all(n["status"] == "unknown" for n in nodes)  # no broker link: we do not claim to know


async def test_scheduled_broadcast_can_be_cancelled(api: tuple[Any, httpx.AsyncClient]) -> None:
    app, client = api
    bid = (await client.post("/api/bulletins", json={"text": "Chiều nay 17h họp dân."})).json()["id"]
    later = (datetime.now(tz=UTC) + timedelta(hours=2)).isoformat()
    r = await client.post("/api/broadcasts", json={"bulletin_id": bid, "target": {"zones": ["z1"]},
                                                   "air_at": later, "priority": "priority"})
    assert r.status_code == 201
    bc = r.json()
    assert bc["status"] == "scheduled" and bc["air_at"].endswith("+07:00") and bc["tally"] == {"queued": 2}
    assert (await client.get("/api/health")).json()["scheduled"] == 1
    r = await client.post(f"/api/broadcasts/{bc['id']}/cancel")
    assert r.status_code == 200 and r.json()["status"] == "cancelled"
    assert app.state.services.scheduler.pending() == []
    assert (await client.post(f"/api/broadcasts/{bc['id']}/cancel")).status_code == 409
