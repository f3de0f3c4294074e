"""Helpers for end-to-end tests: provision a ward over the API, run sim nodes, wait for states."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import httpx

from controller.relays.settings import RelaySettings
from controller.settings import Settings
from devices.mqtt import BrokerAddress
from firmware_sim.faults import Faults
from firmware_sim.node import SimNode
from tests.conftest import ADMIN

TEXT = "Thông báo: sáng mai phường tổ chức tiêm phòng tại nhà văn hóa"
FINAL = {"played", "failed", "expired", "cancelled"}
#: A broadcast still at work; any other status is where it ended (done, expired, cancelled, failed).
RUNNING = {"scheduled", "sending", "active"}


async def logged_in(app: Any) -> httpx.AsyncClient:
    """A browser's session on the in-process app: its cookie and CSRF token, as the web app uses the API."""
    c = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://controller", timeout=60)
    r = await c.post("/api/login", json={"username": ADMIN[0], "password": ADMIN[1]})
    assert r.status_code == 200, r.text
    c.headers["X-CSRF-Token"] = r.json()["csrf_token"]
    return c


def allowing(settings: Settings, *stations: str) -> Settings:
    """``settings`` whose relays may fetch these local test stations (URLs: their origins are
    allow-listed; 127.0.0.1 is not public, so a station there must be: controller/core/netguard.py)."""
    origins = [f"{u.scheme}://{u.netloc}" for u in map(urlsplit, stations)]
    relay = RelaySettings(**{**settings.relay.model_dump(), "allowed_stations": origins})
    return settings.model_copy(update={"relay": relay})


async def provision(client: httpx.AsyncClient, zones: dict[str, list[str]]) -> None:
    for zid, nodes in zones.items():
        r = await client.post("/api/zones", json={"id": zid, "name": f"Tổ dân phố {zid}"})
        assert r.status_code == 201, r.text
        for n in nodes:
            r = await client.post("/api/nodes", json={"id": n, "zones": [zid], "name": f"Loa {n}"})
            assert r.status_code == 201, r.text


def sim(node_id: str, port: int, faults: Faults | None = None, **kw: Any) -> SimNode:
    return SimNode(node_id, BrokerAddress(port=port), heartbeat_s=kw.pop("heartbeat_s", 5.0),
                   faults=faults, **kw)


async def wait_for(pred: Callable[[], Any], timeout: float, what: str, every: float = 0.1) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        res = pred()
        if asyncio.iscoroutine(res):
            res = await res
        if res:
            return
        await asyncio.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


async def wait_online(client: httpx.AsyncClient, ids: list[str], timeout: float = 20) -> None:
    async def ok() -> bool:
        nodes = {n["id"]: n["status"] for n in (await client.get("/api/nodes")).json()}
        return all(nodes.get(i) == "online" for i in ids)

    await wait_for(ok, timeout, f"{len(ids)} nodes online", every=0.2)


async def bulletin(client: httpx.AsyncClient, text: str = TEXT, **kw: Any) -> dict[str, Any]:
    r = await client.post("/api/bulletins", json={"text": text, **kw})
    assert r.status_code == 201, r.text
    body: dict[str, Any] = r.json()
    return body


async def air(client: httpx.AsyncClient, bulletin_id: int, target: dict[str, Any], **kw: Any) -> str:
    r = await client.post("/api/broadcasts", json={"bulletin_id": bulletin_id, "target": target, **kw})
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


async def wait_broadcast(client: httpx.AsyncClient, bid: str, timeout: float,
                         done: Callable[[dict[str, Any]], bool] | None = None) -> dict[str, Any]:
    """Poll the broadcast until every delivery is final and the broadcast itself has ended (or
    until ``done`` says so); return it. The broadcast's own status is written just after its last
    delivery's, so a poll in between sees every unit final while the broadcast is still active."""
    last: dict[str, Any] = {}

    async def check() -> bool:
        nonlocal last
        last = (await client.get(f"/api/broadcasts/{bid}")).json()
        if done is not None:
            return done(last)
        return (bool(last["deliveries"]) and all(d["state"] in FINAL for d in last["deliveries"])
                and last["status"] not in RUNNING)

    try:
        await wait_for(check, timeout, f"broadcast {bid}", every=0.25)
    except AssertionError:
        states = {d["node_id"]: (d["state"], d["reason"]) for d in last.get("deliveries") or []}
        raise AssertionError(f"broadcast {bid} did not finish: {last.get('status')} {states}") from None
    return last


def states(bc: dict[str, Any]) -> dict[str, str]:
    return {d["node_id"]: d["state"] for d in bc["deliveries"]}
