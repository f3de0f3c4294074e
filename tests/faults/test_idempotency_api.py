"""Idempotency-Key through the real API on SQLite, no broker (the controller runs without one):
POST /api/bulletins and POST /api/broadcasts retried with the same key give the first answer and
make nothing new, also after a controller restart; another body with the key is 422."""

from __future__ import annotations

from pathlib import Path

from controller.api.idempotent import REPLAYED
from devices.broker import free_port
from tests.conftest import make_settings, running_controller
from tests.e2e.helpers import TEXT, provision


async def test_bulletin_and_broadcast_posts_with_a_key(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, free_port())  # nobody listens there: no broker
    async with running_controller(settings) as (_, client):
        await provision(client, {"z": ["k-1", "k-2"]})
        b1 = await client.post("/api/bulletins", json={"text": TEXT}, headers={"Idempotency-Key": "bul-1"})
        b2 = await client.post("/api/bulletins", json={"text": TEXT}, headers={"Idempotency-Key": "bul-1"})
        assert b1.status_code == b2.status_code == 201 and b2.headers[REPLAYED] == "true"
        assert b2.json() == b1.json()
        assert [b["id"] for b in (await client.get("/api/bulletins")).json()] == [b1.json()["id"]]
        other = await client.post("/api/bulletins", json={"text": TEXT + "!"},
                                  headers={"Idempotency-Key": "bul-1"})
        assert other.status_code == 422 and "different request" in other.text

        body = {"bulletin_id": b1.json()["id"], "target": {"zones": ["z"]}}
        a1 = await client.post("/api/broadcasts", json=body, headers={"Idempotency-Key": "air-1"})
        a2 = await client.post("/api/broadcasts", json=body, headers={"Idempotency-Key": "air-1"})
        assert a1.status_code == a2.status_code == 201 and a2.headers[REPLAYED] == "true"
        assert a2.json()["id"] == a1.json()["id"]
        # the same key for another route is another request: refused
        assert (await client.post("/api/broadcasts", json=body,
                                  headers={"Idempotency-Key": "bul-1"})).status_code == 422
    async with running_controller(settings) as (_, client):  # restarted: the keys are in the database
        a3 = await client.post("/api/broadcasts", json=body, headers={"Idempotency-Key": "air-1"})
        assert a3.status_code == 201 and a3.json()["id"] == a1.json()["id"]
        assert [x["id"] for x in (await client.get("/api/broadcasts")).json()] == [a1.json()["id"]]
        fresh = await client.post("/api/broadcasts", json=body)  # no key: a new broadcast
        assert fresh.status_code == 201 and fresh.json()["id"] != a1.json()["id"]
