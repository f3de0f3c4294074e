"""Requests that tolerate the request deadline while the machine is busy (a 503 is the
controller's "try again shortly"): the fault tests run the controller with a short deadline."""

from __future__ import annotations

from typing import Any

import httpx

from tests.e2e.helpers import wait_for


async def get_ok(client: httpx.AsyncClient, path: str, within_s: float = 60) -> httpx.Response:
    """GET ``path`` until it answers 200 (a 503 is retried)."""
    got: list[httpx.Response] = []

    async def ok() -> bool:
        got.append(await client.get(path))
        return got[-1].status_code == 200

    await wait_for(ok, within_s, f"GET {path} answering 200", every=0.2)
    return got[-1]


async def post_made(client: httpx.AsyncClient, path: str, body: dict[str, Any], within_s: float = 60) -> None:
    """POST until made: 201, or 409 when a try answered 503 had made it after all."""
    async def made() -> bool:
        r = await client.post(path, json=body)
        assert r.status_code in (201, 409, 503), r.text
        return r.status_code != 503

    await wait_for(made, within_s, f"POST {path} made", every=0.2)


async def provision(client: httpx.AsyncClient, zones: dict[str, list[str]]) -> None:
    for zid, nodes in zones.items():
        await post_made(client, "/api/zones", {"id": zid, "name": f"Tổ dân phố {zid}"})
        for n in nodes:
            await post_made(client, "/api/nodes", {"id": n, "zones": [zid], "name": f"Loa {n}"})


async def wait_online(client: httpx.AsyncClient, ids: list[str], within_s: float = 60) -> None:
    async def ok() -> bool:
        r = await client.get("/api/nodes")
        if r.status_code != 200:
            return False
        status = {n["id"]: n["status"] for n in r.json()}
        return all(status.get(i) == "online" for i in ids)

    await wait_for(ok, within_s, f"{len(ids)} units online", every=0.2)
