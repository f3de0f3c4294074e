"""Issue 11 item 3: a ward admin acts only inside their subtree, and grants nothing above their own.

Two wards (``wa``, ``wb``) under one province (``hn``), users of each role, the real app over
HTTP and Mosquitto run from the files ``loaphuong mqtt-config`` writes. Ward A's admin tries
every escalation; each is refused, nothing of ward B (or above) changes, the legitimate users keep
working, and a unit ward A's admin tried to put into ward B's zone does not get that zone's audio.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from sqlmodel import select

from controller.accounts.models import OrgUnit, User
from controller.accounts.roles import may_grant_role
from controller.accounts.scope import scope_refusal
from controller.fleet.models import NodeCredential
from devices.mqtt import BrokerAddress
from firmware_sim.node import SimNode
from tests.conftest import ADMIN
from tests.e2e.helpers import air, bulletin, wait_broadcast, wait_for, wait_online
from tests.security._admin_scope_fixtures import Ward, add_unit, add_user, org_tree, secure_ward

pytestmark = [pytest.mark.broker, pytest.mark.timeout(120)]


async def snapshot(ward: Ward, admin: httpx.AsyncClient) -> dict[str, Any]:
    """Everything an escalation could change: accounts (with password hashes), units, zones,
    org units, broker credentials."""
    out: dict[str, Any] = {}
    for path in ("/api/users", "/api/nodes", "/api/zones", "/api/org-units"):
        r = await admin.get(path)
        assert r.status_code == 200, r.text
        out[path] = sorted(json.dumps({k: v for k, v in row.items() if k not in ("status", "last_seen")},
                                      sort_keys=True) for row in r.json())
    with ward.app.state.services.db.session() as s:
        out["hashes"] = sorted((u.username, u.password_hash, u.active) for u in s.exec(select(User)).all())
        out["creds"] = sorted((c.node_id, c.password_hash) for c in s.exec(select(NodeCredential)).all())
    return out


def states(bc: dict[str, Any]) -> dict[str, str]:
    return {d["node_id"]: d["state"] for d in bc["deliveries"]}


def acl_block(ward: Ward, user: str) -> list[str]:
    lines = (ward.dir / "acl").read_text().splitlines()
    start = lines.index(f"user {user}")
    block = []
    for line in lines[start + 1:]:
        if line.startswith(("user ", "pattern ")) or not line.strip():
            break
        block.append(line)
    return block


async def test_ward_admin_cannot_reach_beyond_their_ward() -> None:
    async with secure_ward() as ward:
        root = ward.http(*ADMIN)
        await org_tree(root)
        pw_zb1 = await add_unit(root, "zb-1", ["zb"])
        await add_unit(root, "za-1", ["za"])
        await add_unit(root, "shared-1", ["za", "zb"])  # the province's unit in both wards
        users: dict[str, tuple[int, str]] = {}
        for ward_id in ("wa", "wb"):
            for role in ("admin", "editor", "approver", "operator"):
                users[f"{role}-{ward_id}"] = await add_user(root, f"{role}-{ward_id}", role, ward_id)
        users["admin-hn"] = await add_user(root, "admin-hn", "admin", "hn")
        a = ward.http("admin-wa", users["admin-wa"][1])
        b = ward.http("admin-wb", users["admin-wb"][1])
        assert (await b.post("/api/users", json={"username": "bt2-wb", "role": "editor",
                                                 "org_unit_id": "wb"})).status_code == 201
        root_id = next(u["id"] for u in (await root.get("/api/users")).json() if u["username"] == ADMIN[0])

        # ward A's admin does legitimate things in ward A (the scoping does not refuse everything)
        legit = [
            ("POST", "/api/users", {"username": "vh2-wa", "role": "operator", "org_unit_id": "wa"}, 201),
            ("POST", "/api/org-units", {"id": "wa-t1", "name": "Tổ 1", "parent_id": "wa"}, 201),
            ("POST", "/api/zones", {"id": "za2", "name": "Tổ za2", "org_unit_id": "wa-t1"}, 201),
            ("POST", "/api/nodes", {"id": "za-2", "zones": ["za"]}, 201),
            ("PATCH", "/api/nodes/za-2", {"zones": ["za", "za2"], "name": "Loa chợ"}, 200),
            ("PATCH", f"/api/users/{users['editor-wa'][0]}", {"role": "approver"}, 200),
            ("PATCH", f"/api/users/{users['operator-wa'][0]}", {"org_unit_id": "wa-t1"}, 200),
        ]
        pw_za2 = ""
        for method, path, body, code in legit:
            r = await a.request(method, path, json=body)
            assert r.status_code == code, (method, path, r.text)
            if path == "/api/nodes":
                pw_za2 = r.json()["mqtt"]["password"]
        before = await snapshot(ward, root)

        b_editor, b_admin, hn_admin = users["editor-wb"][0], users["admin-wb"][0], users["admin-hn"][0]
        attacks: list[tuple[str, str, dict[str, Any] | None]] = [
            # accounts above one's scope or in another ward
            ("POST", "/api/users", {"username": "x1", "role": "admin", "org_unit_id": None}),
            ("POST", "/api/users", {"username": "x2", "role": "admin", "org_unit_id": "hn"}),
            ("POST", "/api/users", {"username": "x3", "role": "admin", "org_unit_id": "wb"}),
            ("POST", "/api/users", {"username": "x4", "role": "editor", "org_unit_id": "wb"}),
            ("POST", "/api/users", {"username": "x5", "role": "operator"}),
            ("PATCH", f"/api/users/{b_editor}", {"active": False}),
            ("PATCH", f"/api/users/{b_editor}", {"role": "admin"}),
            ("PATCH", f"/api/users/{b_admin}", {"active": False}),
            ("PATCH", f"/api/users/{hn_admin}", {"active": False}),
            ("PATCH", f"/api/users/{root_id}", {"role": "editor"}),
            ("POST", f"/api/users/{b_editor}/password", None),
            ("POST", f"/api/users/{root_id}/password", None),
            # moving one's own or a ward-A account out of the ward; one's own role / org
            ("PATCH", f"/api/users/{users['approver-wa'][0]}", {"org_unit_id": "wb"}),
            ("PATCH", f"/api/users/{users['approver-wa'][0]}", {"org_unit_id": None}),
            ("PATCH", f"/api/users/{users['approver-wa'][0]}", {"org_unit_id": "hn"}),
            ("PATCH", f"/api/users/{users['admin-wa'][0]}", {"org_unit_id": None}),
            ("PATCH", f"/api/users/{users['admin-wa'][0]}", {"org_unit_id": "wa-t1"}),
            ("PATCH", f"/api/users/{users['admin-wa'][0]}", {"role": "editor"}),
            ("PATCH", f"/api/users/{users['admin-wa'][0]}", {"active": False}),
            # org units and zones outside the subtree
            ("POST", "/api/org-units", {"id": "x6", "name": "x", "parent_id": None}),
            ("POST", "/api/org-units", {"id": "x7", "name": "x", "parent_id": "hn"}),
            ("POST", "/api/org-units", {"id": "x8", "name": "x", "parent_id": "wb"}),
            ("POST", "/api/zones", {"id": "x9", "name": "x", "org_unit_id": "wb"}),
            ("POST", "/api/zones", {"id": "x10", "name": "x", "org_unit_id": None}),
            ("POST", "/api/zones", {"id": "x11", "name": "x", "org_unit_id": "hn"}),
            # units: into ward B's zone, out of the ward, ward B's or shared units
            ("POST", "/api/nodes", {"id": "x12", "zones": ["zb"]}),
            ("POST", "/api/nodes", {"id": "x13", "zones": ["za", "zb"]}),
            ("POST", "/api/nodes", {"id": "x14", "zones": []}),
            ("PATCH", "/api/nodes/za-2", {"zones": ["za", "zb"]}),
            ("PATCH", "/api/nodes/za-2", {"zones": ["zb"]}),
            ("PATCH", "/api/nodes/za-2", {"zones": []}),
            ("PATCH", "/api/nodes/zb-1", {"name": "mine now"}),
            ("PATCH", "/api/nodes/shared-1", {"zones": ["za"]}),
            ("DELETE", "/api/nodes/zb-1", None),
            ("DELETE", "/api/nodes/shared-1", None),
            ("POST", "/api/nodes/zb-1/credentials", None),
            ("POST", "/api/nodes/shared-1/credentials", None),
        ]
        for method, path, body in attacks:
            r = await a.request(method, path, json=body)
            assert r.status_code == 403, (method, path, body, r.status_code, r.text)
            assert r.json()["detail"], r.text
        for path in ("/api/users/99999999999999999999", "/api/users/0"):  # no such account: 404, not 500
            assert (await a.patch(path, json={"active": False})).status_code == 404
            assert (await a.post(path + "/password")).status_code == 404
        # the other roles of ward A may not administer at all
        for role in ("editor", "approver", "operator"):
            c = ward.http(f"{role}-wa", users[f"{role}-wa"][1])
            for method, path, body in [("POST", "/api/users", {"username": "y", "role": "editor",
                                                               "org_unit_id": "wa"}),
                                       ("DELETE", "/api/nodes/za-1", None), ("GET", "/api/audit", None),
                                       ("POST", "/api/nodes/za-1/credentials", None)]:
                r = await c.request(method, path, json=body)
                assert r.status_code == 403, (role, method, path, r.text)

        # nothing changed; ward B's admin and editor, and the province admin, still work
        assert await snapshot(ward, root) == before
        for name in ("admin-wb", "editor-wb", "admin-hn"):
            me = await ward.http(name, users[name][1]).get("/api/me")
            assert me.status_code == 200 and me.json()["active"], (name, me.text)
        # what ward A's admin reads is ward A's
        seen = {u["username"] for u in (await a.get("/api/users")).json()}
        assert seen == {"admin-wa", "editor-wa", "approver-wa", "operator-wa", "vh2-wa"}
        assert {o["id"] for o in (await a.get("/api/org-units")).json()} == {"wa", "wa-t1"}
        log = (await a.get("/api/audit", params={"limit": 2000})).json()
        assert {e["username"] for e in log} <= seen
        assert any(e["username"] == "admin-wa" and e["detail"] == "403" for e in log)  # refusals audited
        full = (await root.get("/api/audit", params={"limit": 2000})).json()
        assert {"admin", "admin-wb"} <= {e["username"] for e in full}

        # the broker: za-2 (which ward A's admin tried to put into zb) gets none of zb's audio
        await ward.regenerate()
        assert not [line for line in acl_block(ward, "za-2") if "/group/zb/" in line]
        spy = await ward.accepted("za-2", pw_za2)
        await spy.sub(["#"])
        zb1 = SimNode("zb-1", BrokerAddress(port=ward.port, username="zb-1", password=pw_zb1), heartbeat_s=2)
        await zb1.start()
        try:
            await wait_online(root, ["zb-1"])
            b_news = await bulletin(root, "Thông báo của phường B: lịch tiêm phòng.")
            bc_b = await air(root, b_news["id"], {"zones": ["zb"]})
            done = await wait_broadcast(root, bc_b, 30, lambda bc: "played" in states(bc).values())
            assert states(done) == {"zb-1": "played", "shared-1": "offline"}  # ward B's units only
            # a barrier: a later broadcast to za2 reaches the spy, so zb's would have by now
            bc_a = await air(root, b_news["id"], {"zones": ["za2"]})
            await wait_for(lambda: any(bc_a in t for t in spy.topics()), 15, "za2's broadcast at za-2")
            assert not [t for t in spy.topics() if bc_b in t or "/group/zb/" in t], spy.topics()
        finally:
            await zb1.stop()


def test_role_ranking_and_scope_rules() -> None:
    """The rules themselves, without a broker: ranks, and org scopes against the tree."""
    from sqlmodel import Session, SQLModel, create_engine

    engine = create_engine("sqlite://")
    SQLModel.metadata.create_all(engine)
    with Session(engine) as s:
        for org, parent in (("hn", None), ("wa", "hn"), ("wa1", "wa"), ("wb", "hn")):
            s.add(OrgUnit(id=org, name=org, parent_id=parent))
        s.commit()
        ward_admin = User(username="a", password_hash="", role="admin", org_unit_id="wa")
        top = User(username="t", password_hash="", role="admin", org_unit_id=None)
        approver = User(username="p", password_hash="", role="approver", org_unit_id="wa")
        assert may_grant_role(ward_admin, "admin") and may_grant_role(approver, "operator")
        assert not may_grant_role(approver, "admin") and not may_grant_role(ward_admin, "root")
        for org in ("wa", "wa1"):
            assert scope_refusal(s, ward_admin, org) is None
        for org in (None, "hn", "wb", "nowhere"):
            assert scope_refusal(s, ward_admin, org), org
        assert scope_refusal(s, top, None) is None and scope_refusal(s, top, "wb") is None
