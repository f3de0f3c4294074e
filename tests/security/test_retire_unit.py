"""Issue 11 item 20 (retirement): a retired unit loses its broker account and its zones.

Mosquitto runs from the files ``loaphuong mqtt-config`` writes. After ``DELETE /api/nodes/{id}``
and the documented regenerate + SIGHUP, the unit's old password is refused, a connection it still
holds reads none of the ward's audio, nothing can address it, its history stays readable, and
the id re-created later gets fresh credentials. Another ward's admin cannot retire it.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from devices.mqtt import BrokerAddress
from firmware_sim.node import SimNode
from tests.conftest import ADMIN
from tests.e2e.helpers import air, bulletin, wait_broadcast, wait_for, wait_online
from tests.security._admin_scope_fixtures import add_unit, add_user, org_tree, secure_ward

pytestmark = [pytest.mark.broker, pytest.mark.timeout(120)]

VOLUME = {"name": "volume", "args": {"level": 10}, "timeout_s": 1}


def states(bc: dict[str, Any]) -> dict[str, str]:
    return {d["node_id"]: d["state"] for d in bc["deliveries"]}


def played_by(*nodes: str) -> Callable[[dict[str, Any]], bool]:
    return lambda bc: all(states(bc).get(n) == "played" for n in nodes)


async def test_retired_unit_is_revoked_unaddressable_and_keeps_its_history() -> None:
    async with secure_ward() as ward:
        root = ward.http(*ADMIN)
        await org_tree(root)
        pw = {n: await add_unit(root, n, ["za"]) for n in ("za-1", "za-2")}
        await add_unit(root, "za-9", ["za"])  # provisioned, never switched on
        a = ward.http("admin-wa", (await add_user(root, "admin-wa", "admin", "wa"))[1])
        b = ward.http("admin-wb", (await add_user(root, "admin-wb", "admin", "wb"))[1])
        await ward.regenerate()
        for n in pw:  # the reload has happened once each unit is let in
            await (await ward.accepted(n, pw[n])).client.stop()
        units = {n: SimNode(n, BrokerAddress(port=ward.port, username=n, password=pw[n]), heartbeat_s=2)
                 for n in pw}
        for u in units.values():
            await u.start()
        try:
            await wait_online(root, list(pw))
            news = await bulletin(a, "Thông báo: sáng mai phường tổ chức tiêm phòng.")  # ward A's
            first = await air(a, news["id"], {"zones": ["za"]})
            before = await wait_broadcast(a, first, 30, played_by("za-1", "za-2"))
            assert states(before) == {"za-1": "played", "za-2": "played", "za-9": "offline"}
            later = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
            r = await a.post("/api/broadcasts", json={"bulletin_id": news["id"], "target": {"zones": ["za"]},
                                                      "air_at": later})
            assert r.status_code == 201, r.text
            scheduled = r.json()["id"]

            # another ward's admin cannot retire it; ward A's admin can, once
            assert (await b.delete("/api/nodes/za-1")).status_code == 403
            r = await a.delete("/api/nodes/za-1")
            assert r.status_code == 200, r.text
            assert r.json() == {"id": "za-1", "status": "retired", "left_zones": ["za"],
                                "credentials_revoked": True}
            assert (await a.delete("/api/nodes/za-1")).status_code == 404

            # gone from the lists and the zones; nothing addresses it
            for c in (a, root):
                assert [n["id"] for n in (await c.get("/api/nodes")).json()] == ["za-2", "za-9"]
            assert [z["nodes"] for z in (await a.get("/api/zones")).json()] == [2]
            # deliveries it would never finish end now: the waiting broadcast's, the scheduled one's
            assert (await a.delete("/api/nodes/za-9")).status_code == 200
            done = await wait_broadcast(a, first, 10)
            assert states(done) == {"za-1": "played", "za-2": "played", "za-9": "cancelled"}
            assert done["status"] == "done"

            async def scheduled_cancelled() -> bool:
                bc = (await a.get(f"/api/broadcasts/{scheduled}")).json()
                return states(bc) == {"za-1": "cancelled", "za-2": "queued", "za-9": "cancelled"}

            await wait_for(scheduled_cancelled, 10, "the scheduled deliveries of retired units cancelled")
            to_it = {"bulletin_id": news["id"], "target": {"nodes": ["za-1"]}}
            for c in (a, root):
                r = await c.post("/api/broadcasts", json=to_it)
                assert r.status_code in (403, 404), r.text
            assert (await root.post("/api/nodes/za-1/commands", json=VOLUME)).status_code == 404
            assert (await a.post("/api/nodes/za-1/commands", json=VOLUME)).status_code == 403
            assert (await root.post("/api/nodes/za-1/credentials")).status_code == 404
            assert (await root.patch("/api/nodes/za-1", json={"zones": ["za"]})).status_code == 404

            # its history stays readable (to its ward, not to another)
            old = (await a.get(f"/api/broadcasts/{before['id']}")).json()
            assert {d["node_id"]: d["state"] for d in old["deliveries"]}["za-1"] == "played"
            r = await a.get("/api/nodes/za-1")
            assert r.status_code == 200 and r.json()["status"] == "retired", r.text
            assert "retired" in [e["kind"] for e in r.json()["events"]]
            assert (await b.get("/api/nodes/za-1")).status_code == 403
            log = (await root.get("/api/audit")).json()
            assert any(e["action"] == "node_retire" and e["target"] == "za-1" and e["username"] == "admin-wa"
                       for e in log)

            # the broker: regenerated without it; after the reload its old password is refused
            pw["za-3"] = await add_unit(a, "za-3", ["za"])  # a reload marker: only the new files know it
            await ward.regenerate()
            assert "za-1:" not in (ward.dir / "passwd").read_text()
            assert "user za-1" not in (ward.dir / "acl").read_text().splitlines()
            await (await ward.accepted("za-3", pw["za-3"])).client.stop()
            old_pw = ward.spy("za-1", pw["za-1"])
            await wait_for(old_pw.refused, 15, "za-1's old password refused")
            # Mosquitto (2.0) re-checks connected clients on reload: the unit is put out, and stays out
            await wait_for(lambda: not units["za-1"].connected, 15, "the retired unit disconnected")

            # and even a connection it held would read nothing: a broadcast to the whole ward
            # reaches za-2 and not za-1
            r = await root.post("/api/broadcasts", json={"bulletin_id": news["id"], "target": {"all": True}})
            assert r.status_code == 201, r.text
            every = r.json()["id"]
            done = await wait_broadcast(root, every, 30, played_by("za-2"))
            assert "za-1" not in {d["node_id"] for d in done["deliveries"]}
            assert every not in units["za-1"].played
            assert not [bc for bc, _ in units["za-1"].acks if bc == every]
        finally:
            for u in units.values():
                await u.stop()

        # the id in service again: fresh credentials; the old password stays refused
        r = await a.post("/api/nodes", json={"id": "za-1", "zones": ["za"]})
        assert r.status_code == 201, r.text
        fresh = r.json()["mqtt"]["password"]
        assert fresh != pw["za-1"] and r.json()["status"] != "retired"
        await ward.regenerate()
        await (await ward.accepted("za-1", fresh)).client.stop()
        stale = ward.spy("za-1", pw["za-1"])
        await wait_for(stale.refused, 15, "the retired password refused after re-creation")
        events = (await a.get("/api/nodes/za-1")).json()["events"]
        assert "retired" in [e["kind"] for e in events]  # the history of the id is kept
