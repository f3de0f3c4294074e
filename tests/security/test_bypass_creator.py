"""Issue 11 leftover: the emergency bypass lasts only as long as its creator may use it.

Ward A's operator, ward admin and a second operator set up emergencies of undecided bulletins
(schedules, and a broadcast set for later) and a schedule of the approved bulletin; then the
province admin disables the operator, demotes the ward admin to editor and moves the second
operator to ward B. When the slot fires (real HTTP, Mosquitto on the generated configuration, the
unit online with its own account): every emergency slot fails with a reason naming why, audited
as ``emergency_bypass_refused``, the later broadcast is not sent, the unit receives none of them —
and the approved bulletin's schedule of the disabled operator still airs (docs/scheduling.md).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlmodel import Session

from controller.airing.models import Broadcast
from scheduler import TIMEZONE
from tests.e2e.helpers import wait_for
from tests.security import ward
from tests.security.ward import World, airing_world, ok

pytestmark = [pytest.mark.broker, pytest.mark.timeout(120)]


async def world(admin: httpx.AsyncClient) -> World:
    w = await airing_world(admin)
    body = {"username": "op_x", "role": "operator", "org_unit_id": "wa"}
    made = ok(await admin.post("/api/users", json=body))
    w.passwords["op_x"] = str(made["password"])
    return w


async def change_user(admin: httpx.AsyncClient, name: str, change: dict[str, Any]) -> None:
    users = {u["username"]: u["id"] for u in (await admin.get("/api/users")).json()}
    ok(await admin.patch(f"/api/users/{users[name]}", json=change), 200)


async def test_an_emergency_schedule_fires_only_while_its_creator_may_use_the_bypass(tmp_path: Path) -> None:
    async with ward.on_air(tmp_path, world, lead_s=1) as (admin, w, units, app):
        # 20 s: five POSTs and three user changes come before it even on a busy machine (8 s did not)
        slot = datetime.now(tz=TIMEZONE) + timedelta(seconds=20)
        once = {"kind": "once", "at": slot.isoformat()}
        za = {"zones": ["za"]}
        emergency = {"target": za, "when": once, "priority": "emergency"}
        submitted, draft = w.bulletins[("wa", "submitted")], w.bulletins[("wa", "draft")]
        approved = w.bulletins[("wa", "approved")]
        schedules = {}
        for name, who, body in (
                ("disabled", "op_a", emergency | {"bulletin_id": submitted}),
                ("demoted", "adm_a", emergency | {"bulletin_id": draft}),
                ("moved", "op_x", emergency | {"bulletin_id": submitted}),
                ("approved", "op_a", {"target": za, "when": once, "bulletin_id": approved})):
            schedules[name] = ok(await admin.post("/api/schedules", json=body, auth=w.auth(who)))["id"]
        later = ok(await admin.post("/api/broadcasts", auth=w.auth("op_a"), json={
            "bulletin_id": draft, "target": za, "priority": "emergency", "air_at": slot.isoformat()}))["id"]
        await change_user(admin, "op_a", {"active": False})
        await change_user(admin, "adm_a", {"role": "editor"})
        await change_user(admin, "op_x", {"org_unit_id": "wb"})

        async def runs() -> dict[str, dict[str, Any]]:
            out = {}
            for name, sid in schedules.items():
                got = (await admin.get(f"/api/schedules/{sid}/runs")).json()
                if got and got[0]["status"] != "firing":
                    out[name] = got[0]
            return out

        async def all_fired() -> bool:
            return len(await runs()) == len(schedules)

        await wait_for(all_fired, 50, "every schedule's slot to fire", every=0.5)
        done = await runs()
        for name, why in (("disabled", "op_a, who is disabled"),
                          ("demoted", "adm_a, who now has the role editor"),
                          ("moved", "op_x, who no longer belongs to the bulletin's ward")):
            assert done[name]["status"] == "failed", done[name]
            assert why in done[name]["reason"] and done[name]["broadcast_ids"] == [], done[name]
        assert done["approved"]["status"] == "aired", done["approved"]  # the ward's approved content airs
        aired = done["approved"]["broadcast_ids"]
        await wait_for(lambda: (aired[0], "verified") in units["za-1"].acks, 15, "the approved slot on za-1")

        def later_refused() -> bool:
            with Session(app.state.services.db.engine) as s:
                row = s.get(Broadcast, later)
                return row is not None and row.status == "failed" and "op_a, who is disabled" in row.reason

        await wait_for(later_refused, 15, "the later emergency refused when it goes out")
        audit = (await admin.get("/api/audit", params={"limit": 2000})).json()
        refused = {(a["username"], a["detail"].split(":")[1]) for a in audit
                   if a["action"] == "emergency_bypass_refused"}
        assert refused == {("op_a", str(schedules["disabled"])), ("adm_a", str(schedules["demoted"])),
                           ("op_x", str(schedules["moved"]))}, refused
        assert {b for b, _ in units["za-1"].acks} == set(aired), units["za-1"].acks  # nothing else reached it
        assert units["zb-1"].acks == []
