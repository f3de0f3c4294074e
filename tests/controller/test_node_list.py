"""GET /api/nodes: paging, filters, and the cached static rows following additions at once."""

from __future__ import annotations

from pathlib import Path

import pytest

from devices.broker import free_port
from tests.conftest import make_settings, running_controller

pytestmark = pytest.mark.timeout(60)


async def test_node_list_pages_filters_and_sees_new_units_at_once(tmp_path: Path) -> None:
    async with running_controller(make_settings(tmp_path, free_port())) as (app, client):
        for z in ("z1", "z2"):
            assert (await client.post("/api/zones", json={"id": z, "name": z})).status_code == 201
        for i in range(7):
            r = await client.post("/api/nodes", json={"id": f"n-{i}", "zones": ["z1" if i % 2 else "z2"],
                                                      "name": f"Loa {i}", "lat": 21.0, "lon": 105.8})
            assert r.status_code == 201, r.text
        r = await client.get("/api/nodes")
        assert r.headers["x-total-count"] == "7"
        assert [n["id"] for n in r.json()] == [f"n-{i}" for i in range(7)]
        first = r.json()[0]
        assert first == {"id": "n-0", "name": "Loa 0", "zones": ["z2"], "status": "unknown", "alarm": "",
                         "last_seen": None, "telemetry": {}, "lat": 21.0, "lon": 105.8, "hw": "", "fw": ""}
        r = await client.get("/api/nodes", params={"limit": 2, "offset": 2})
        assert [n["id"] for n in r.json()] == ["n-2", "n-3"] and r.headers["x-total-count"] == "7"
        r = await client.get("/api/nodes", params={"zone": "z1", "limit": 10})
        assert [n["id"] for n in r.json()] == ["n-1", "n-3", "n-5"] and r.headers["x-total-count"] == "3"
        assert (await client.get("/api/nodes", params={"state": "online"})).json() == []
        directory = app.state.services.node_directory
        rebuilds = directory.rebuilds
        await client.get("/api/nodes")
        assert directory.rebuilds == rebuilds  # nothing changed: no reload
        assert (await client.post("/api/nodes", json={"id": "n-7", "zones": ["z1", "z2"]})).status_code == 201
        r = await client.get("/api/nodes", params={"offset": 7})
        assert [(n["id"], n["zones"]) for n in r.json()] == [("n-7", ["z1", "z2"])]
        assert directory.rebuilds == rebuilds + 1
        for bad in ({"limit": 0}, {"offset": -1}, {"limit": "x"}):
            assert (await client.get("/api/nodes", params=bad)).status_code == 422


async def test_node_list_pages_are_bounded_linked_and_rows_serialised_once(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from controller.api import fleet

    monkeypatch.setattr(fleet, "MAX_PAGE", 3)  # 1,000 in service: 3 keeps the test small
    async with running_controller(make_settings(tmp_path, free_port())) as (app, client):
        assert (await client.post("/api/zones", json={"id": "z", "name": "z"})).status_code == 201
        for i in range(7):
            assert (await client.post("/api/nodes", json={"id": f"n-{i}", "zones": ["z"]})).status_code == 201
        seen: list[str] = []
        url = "/api/nodes?limit=50"  # more than the page: served a full page, the rest linked
        while url:
            r = await client.get(url)
            assert r.status_code == 200 and r.headers["x-total-count"] == "7"
            page = [n["id"] for n in r.json()]
            assert 1 <= len(page) <= 3
            seen += page
            link = r.headers.get("link", "")
            url = link[1:link.index(">")] if link else ""
            assert not link or link.endswith('; rel="next"')
        assert seen == [f"n-{i}" for i in range(7)]
        assert [n["id"] for n in (await client.get("/api/nodes")).json()] == ["n-0", "n-1", "n-2"]
        directory = app.state.services.node_directory
        before = directory.serialised
        again = (await client.get("/api/nodes", params={"offset": 3})).json()
        assert [n["id"] for n in again] == ["n-3", "n-4", "n-5"]
        assert directory.serialised == before  # nothing changed: the cached JSON of each unit
        r = await client.patch("/api/nodes/n-4", json={"name": "Loa mới"})
        assert r.status_code == 200, r.text
        again = (await client.get("/api/nodes", params={"offset": 3})).json()
        assert again[1]["name"] == "Loa mới"  # a changed unit is serialised again, at once
