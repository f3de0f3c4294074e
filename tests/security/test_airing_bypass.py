"""Issue 11 items 2 and 11, performed for real: a ward-A operator (and approver, ward admin,
province admin) against the controller over real HTTP, with Mosquitto running the configuration
``loaphuong mqtt-config`` generated and the units logged in with their own accounts.

- 2: ``"bulletin_id": "6"`` / 6.0 / true / [6] (a rejected bulletin, another ward's bulletin) on
  POST /api/broadcasts, POST and PATCH /api/schedules: 422, and nothing is created or changed.
- 11: a rejected bulletin relabelled ``emergency``: 409 for everyone; the bypass still covers
  undecided bulletins and is audited with what airs it.
- A bulletin rejected after it was set to air does not air: a schedule's slot fails at fire time,
  a broadcast set for later is not sent, a pre-delivered one is cancelled on the units.
Afterwards the units played nothing they should not have, and the legit operator still airs.
"""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlmodel import Session, select

from controller.airing.models import Broadcast
from controller.bulletins.models import Bulletin
from controller.relays.models import Relay
from firmware_sim.node import SimNode
from scheduler import TIMEZONE
from scheduler.models import Schedule
from tests.conftest import ADMIN
from tests.e2e.helpers import wait_for
from tests.security import ward
from tests.security.ward import World, airing_world

pytestmark = [pytest.mark.broker, pytest.mark.timeout(120)]

ONCE_A_DAY = {"kind": "daily", "times": ["06:00"]}
NOT_IDS = (lambda i: str(i), lambda i: float(i), lambda i: f" {i}", lambda i: [i], lambda i: {"id": i},
           lambda i: True)


def on_air(tmp_path: Path, lead_s: float = 600.0,
           ) -> AbstractAsyncContextManager[tuple[httpx.AsyncClient, World, dict[str, SimNode], FastAPI]]:
    return ward.on_air(tmp_path, airing_world, lead_s=lead_s)


def setting_to_air(bulletin_id: Any, schedule: int) -> list[tuple[str, str, dict[str, Any]]]:
    """Each request that sets ``bulletin_id`` to air in zone za: a broadcast, a new schedule, and
    ``schedule`` changed to air it."""
    return [("POST", "/api/broadcasts", {"bulletin_id": bulletin_id, "target": {"zones": ["za"]}}),
            ("POST", "/api/schedules", {"bulletin_id": bulletin_id, "target": {"zones": ["za"]},
                                        "when": ONCE_A_DAY}),
            ("PATCH", f"/api/schedules/{schedule}", {"bulletin_id": bulletin_id})]


def snapshot(app: FastAPI) -> dict[str, Any]:
    """Every row that airs something, as the database has it."""
    with Session(app.state.services.db.engine) as s:
        return {
            "broadcasts": sorted((b.id, b.bulletin_id, b.priority, b.status)
                                 for b in s.exec(select(Broadcast))),
            "schedules": sorted((x.id, x.bulletin_id, x.priority, x.version, repr(x.targets), x.enabled)
                                for x in s.exec(select(Schedule))),
            "relays": sorted(r.id for r in s.exec(select(Relay))),
        }


def bc_of(app: FastAPI, bid: str) -> Broadcast:
    with Session(app.state.services.db.engine) as s:
        row = s.get(Broadcast, bid)
        assert row is not None
        return row


async def air_legit(admin: httpx.AsyncClient, w: World, units: dict[str, SimNode]) -> str:
    """The ward's operator airs its approved bulletin to "all": only ward A's unit plays it."""
    r = await admin.post("/api/broadcasts", json={"bulletin_id": w.bulletins[("wa", "approved")],
                                                  "target": {"all": True}}, auth=w.auth("op_a"))
    assert r.status_code == 201, r.text
    bc = str(r.json()["id"])
    await wait_for(lambda: (bc, "verified") in units["za-1"].acks, 30, "ward A's unit receiving it")
    return bc


async def test_ids_must_be_json_integers_and_a_rejected_bulletin_never_airs(tmp_path: Path) -> None:
    """Item 2 (string / float / bool ids) and item 11 (relabelled emergency), one ward on air."""
    async with on_air(tmp_path) as (admin, w, units, app):
        op = w.auth("op_a")
        legit = {"bulletin_id": w.bulletins[("wa", "approved")], "target": {"zones": ["za"]},
                 "when": ONCE_A_DAY}
        r = await admin.post("/api/schedules", json=legit, auth=op)
        assert r.status_code == 201, r.text
        mine = r.json()["id"]
        # the province's schedule of ward A's bulletin for ward B's zone: ward A cannot re-aim it at ward B
        r = await admin.post("/api/schedules", json=legit | {"target": {"zones": ["zb"]}})
        assert r.status_code == 201, r.text
        shared = r.json()["id"]
        before = snapshot(app)
        for change in ({"bulletin_id": w.bulletins[("wa", "draft")], "priority": "emergency"},
                       {"priority": "emergency"}, {"enabled": False}, {"name": "x"}):
            r = await admin.patch(f"/api/schedules/{shared}", json=change, auth=op)
            assert r.status_code == 403 and "another ward" in r.json()["detail"], (change, r.text)
        r = await admin.delete(f"/api/schedules/{shared}", auth=op)
        assert r.status_code == 403 and "another ward" in r.json()["detail"], r.text
        victims = ((w.bulletins[("wa", "rejected")], 409), (w.bulletins[("wb", "approved")], 403),
                   (w.bulletins[("wb", "rejected")], 403))
        for victim, refused in victims:
            for shape in (f(victim) for f in NOT_IDS):
                for method, path, body in setting_to_air(shape, mine):
                    r = await admin.request(method, path, json=body, auth=op)
                    assert r.status_code == 422, (method, path, shape, r.text)
                    assert "JSON integer" in r.text, r.text  # says what is wrong
            # the integer itself is refused for what it is (rejected: 409, another ward's: 403)
            for method, path, body in setting_to_air(victim, mine):
                r = await admin.request(method, path, json=body, auth=op)
                assert r.status_code == refused, (method, path, victim, r.text)
                assert isinstance(r.json()["detail"], str) and r.json()["detail"]
        # a flag that is not a JSON boolean ("all": "false" reads as true in lax mode)
        r = await admin.post("/api/broadcasts", json={"bulletin_id": w.bulletins[("wa", "approved")],
                                                      "target": {"all": "false", "zones": ["za"]}}, auth=op)
        assert r.status_code == 422, r.text
        assert snapshot(app) == before  # nothing created, the operator's schedule unchanged
        assert units["za-1"].acks == [] and units["zb-1"].acks == []  # no unit was sent anything
        await relabelled_as_emergency(admin, w, units, app, mine)


async def relabelled_as_emergency(admin: httpx.AsyncClient, w: World, units: dict[str, SimNode], app: FastAPI,
                                  mine: int) -> None:
    """Item 11: a rejected bulletin never airs, not even as an emergency, by anyone."""
    rejected = w.bulletins[("wa", "rejected")]
    before = snapshot(app)
    for auth in (w.auth("op_a"), w.auth("ap_a"), w.auth("adm_a"), ADMIN):
        for priority in ("emergency", "priority", "normal", None):
            extra = {} if priority is None else {"priority": priority}
            r = await admin.post("/api/broadcasts", auth=auth, json={
                "bulletin_id": rejected, "target": {"zones": ["za"]}} | extra)
            if auth[0] == "ap_a":  # an approver airs emergencies only, and no schedules at all
                assert r.status_code == (409 if priority == "emergency" else 403), (priority, r.text)
                continue
            assert r.status_code == 409 and "rejected" in r.json()["detail"], (auth[0], priority, r.text)
            r = await admin.post("/api/schedules", auth=auth, json={
                "bulletin_id": rejected, "target": {"zones": ["za"]}, "when": ONCE_A_DAY} | extra)
            assert r.status_code == 409 and "rejected" in r.json()["detail"], (auth[0], priority, r.text)
            r = await admin.patch(f"/api/schedules/{mine}", auth=auth,
                                  json={"bulletin_id": rejected} | extra)
            assert r.status_code == 409, (auth[0], priority, r.text)
    r = await admin.patch(f"/api/schedules/{mine}", auth=w.auth("ap_a"), json={"priority": "emergency"})
    assert r.status_code == 403
    assert snapshot(app) == before
    assert not any(a["action"] == "emergency_bypass" for a in (await admin.get("/api/audit")).json())
    # the bypass covers undecided bulletins only, for the roles that may use it, and is audited
    draft = w.bulletins[("wa", "draft")]
    body = {"bulletin_id": draft, "target": {"zones": ["za"]}, "priority": "emergency"}
    assert (await admin.post("/api/broadcasts", json=body, auth=w.auth("ed_a"))).status_code == 403
    r = await admin.post("/api/broadcasts", json=body | {"priority": "normal"}, auth=w.auth("op_a"))
    assert r.status_code == 409 and "draft" in r.json()["detail"]
    r = await admin.post("/api/broadcasts", json=body, auth=w.auth("op_a"))
    assert r.status_code == 201, r.text
    bc = r.json()["id"]
    bypass = [a for a in (await admin.get("/api/audit")).json() if a["action"] == "emergency_bypass"]
    assert [(a["username"], a["target"]) for a in bypass] == [("op_a", f"bulletin:{draft}")]
    assert bc in bypass[0]["detail"] and "draft" in bypass[0]["detail"]
    await wait_for(lambda: (bc, "verified") in units["za-1"].acks, 30, "the emergency reaching ward A")
    legit = await air_legit(admin, w, units)  # the legit operator still airs
    assert {b for b, _ in units["za-1"].acks} == {bc, legit} and units["zb-1"].acks == []


async def test_a_bulletin_rejected_after_it_was_set_to_air_does_not_air(tmp_path: Path) -> None:
    """Fire time: a schedule's slot, a broadcast set for later, one already held by the units."""
    async with on_air(tmp_path, lead_s=30) as (admin, w, units, app):  # sent 30 s ahead of play
        op, ap = w.auth("op_a"), w.auth("ap_a")
        submitted, draft = w.bulletins[("wa", "submitted")], w.bulletins[("wa", "draft")]
        now = datetime.now(tz=TIMEZONE)
        slot = (now + timedelta(seconds=45)).isoformat()  # fires (and sends) 30 s ahead: in 15 s
        emergency = {"target": {"zones": ["za"]}, "priority": "emergency"}
        once = {"kind": "once", "at": slot}
        body = emergency | {"bulletin_id": submitted, "when": once}
        r = await admin.post("/api/schedules", auth=op, json=body)
        assert r.status_code == 201, r.text
        sid = r.json()["id"]
        made = {}
        for name, bid, at in (("later", submitted, slot), ("elsewhere", draft, slot),
                              ("held", submitted, (now + timedelta(seconds=25)).isoformat())):
            body = emergency | {"bulletin_id": bid, "air_at": at}
            r = await admin.post("/api/broadcasts", auth=op, json=body)
            assert r.status_code == 201, r.text
            made[name] = r.json()["id"]
        await wait_for(lambda: units["za-1"].player.state_of(made["held"]) is not None, 10,
                       "the unit holding the broadcast sent ahead of its play time")
        assert units["za-1"].played == []
        r = await admin.post(f"/api/bulletins/{submitted}/reject", auth=ap)
        assert r.status_code == 200, r.text
        with Session(app.state.services.db.engine) as s:  # rejected through another controller: only the row
            row = s.get(Bulletin, draft)
            assert row is not None
            row.approval = "rejected"
            s.add(row)
            s.commit()
        assert bc_of(app, made["later"]).status == "cancelled"  # withdrawn at once
        assert (await admin.get(f"/api/schedules/{sid}/runs")).json() == [], "slot fired before the reject"
        await wait_for(lambda: units["za-1"].player.state_of(made["held"]) is None, 10,
                       "the unit dropping it")
        assert bc_of(app, made["held"]).status == "cancelled"

        async def fired() -> bool:
            runs = (await admin.get(f"/api/schedules/{sid}/runs")).json()
            return bool(runs) and runs[0]["status"] == "failed"

        await wait_for(fired, 30, "the schedule's slot to fire")
        run = (await admin.get(f"/api/schedules/{sid}/runs")).json()[0]
        assert "rejected" in run["reason"] and run["broadcast_ids"] == []
        await wait_for(lambda: bc_of(app, made["elsewhere"]).status == "failed", 30,
                       "the later broadcast's send time")
        assert "rejected" in bc_of(app, made["elsewhere"]).reason
        assert units["za-1"].played == [] and units["zb-1"].acks == []
        assert {b for b, _ in units["za-1"].acks} == {made["held"]}  # only the one withdrawn from it
        await air_legit(admin, w, units)
