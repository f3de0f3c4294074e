"""Accounts: cookie sessions with CSRF, login rate limit, roles, approval, emergency bypass, audit,
and ward scoping (a ward-A user gets 403 on ward B's things). No broker runs here."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from devices.broker import free_port
from tests.conftest import make_settings, running_controller
from tests.e2e.helpers import allowing

pytestmark = pytest.mark.timeout(90)


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[tuple[Any, httpx.AsyncClient]]:
    settings = allowing(make_settings(tmp_path, free_port()), "http://radio.example")  # relay schedules
    async with running_controller(settings) as (app, client):
        for org, parent in (("hn", None), ("wa", "hn"), ("wb", "hn")):
            body = {"id": org, "name": f"Đơn vị {org}", "parent_id": parent}
            r = await client.post("/api/org-units", json=body)
            assert r.status_code == 201, r.text
        for zone, org in (("za", "wa"), ("zb", "wb")):
            r = await client.post("/api/zones", json={"id": zone, "name": zone, "org_unit_id": org})
            assert r.status_code == 201, r.text
            r = await client.post("/api/nodes", json={"id": f"{zone}-1", "zones": [zone]})
            assert r.status_code == 201, r.text
        yield app, client


async def add_user(client: httpx.AsyncClient, name: str, role: str, org: str | None) -> str:
    r = await client.post("/api/users", json={"username": name, "role": role, "org_unit_id": org})
    assert r.status_code == 201, r.text
    return str(r.json()["password"])


def browser(app: Any, token: str | None = None) -> httpx.AsyncClient:
    c = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://controller", timeout=60)
    if token:
        c.cookies.set("lp_session", token)
    return c


async def login(app: Any, name: str, password: str) -> httpx.AsyncClient:
    c = browser(app)
    r = await c.post("/api/login", json={"username": name, "password": password})
    assert r.status_code == 200, r.text
    c.headers["X-CSRF-Token"] = r.json()["csrf_token"]
    return c


async def test_cookie_session_csrf_logout(api: tuple[Any, httpx.AsyncClient]) -> None:
    app, admin = api
    pw = await add_user(admin, "bt1", "editor", "wa")
    async with browser(app) as c:
        r = await c.post("/api/login", json={"username": "bt1", "password": pw})
        assert r.status_code == 200
        cookie = r.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=strict" in cookie and "secure" not in cookie
        token, csrf = c.cookies["lp_session"], r.json()["csrf_token"]
        assert (await c.get("/api/me")).json()["role"] == "editor"
        # a state change without (or with a wrong) CSRF token is refused and changes nothing
        body = {"term": "UBND", "spoken": "ủy ban nhân dân"}
        assert (await c.post("/api/speech/dictionary", json=body)).status_code == 403
        r = await c.post("/api/speech/dictionary", json=body, headers={"X-CSRF-Token": "x" + csrf})
        assert r.status_code == 403
        r = await c.post("/api/speech/dictionary", json=body, headers={"X-CSRF-Token": csrf})
        assert r.status_code == 201, r.text
        # a cross-site post is refused even with the right token, and so is one with Basic auth
        evil = {"X-CSRF-Token": csrf, "Origin": "https://evil.example"}
        assert (await c.post("/api/speech/dictionary", json=body, headers=evil)).status_code == 403
        r = await admin.post(f"/api/bulletins/{999}/approve", headers={"Sec-Fetch-Site": "cross-site"})
        assert r.status_code == 403 and "cross-site" in r.text
        ok = {"X-CSRF-Token": csrf, "Origin": "http://controller", "Sec-Fetch-Site": "same-origin"}
        r = await c.post("/api/speech/dictionary", json=body | {"term": "TP."}, headers=ok)
        assert r.status_code == 201
        # a new login gives a new session; the old cookie value is dead
        r = await c.post("/api/login", json={"username": "bt1", "password": pw})
        assert c.cookies["lp_session"] != token
        assert (await browser(app, token).get("/api/me")).status_code == 401
        csrf = r.json()["csrf_token"]
        token = c.cookies["lp_session"]
        assert (await c.post("/api/logout", headers={"X-CSRF-Token": csrf})).status_code == 204
        assert (await browser(app, token).get("/api/me")).status_code == 401
    # changing one's password ends the other sessions and the old password
    c3 = await login(app, "bt1", pw)
    other = await login(app, "bt1", pw)
    r = await c3.post("/api/me/password", json={"current": pw, "new": "a-new-long-password"})
    assert r.status_code == 200, r.text
    c3.headers["X-CSRF-Token"] = r.json()["csrf_token"]
    assert (await c3.get("/api/me")).status_code == 200 and (await other.get("/api/me")).status_code == 401
    old = await browser(app).post("/api/login", json={"username": "bt1", "password": pw})
    assert old.status_code == 401
    pw = "a-new-long-password"
    await c3.aclose()
    await other.aclose()
    # disabling a user ends their sessions
    c2 = await login(app, "bt1", pw)
    users = {u["username"]: u["id"] for u in (await admin.get("/api/users")).json()}
    assert (await admin.patch(f"/api/users/{users['bt1']}", json={"active": False})).status_code == 200
    assert (await c2.get("/api/me")).status_code == 401
    await c2.aclose()


async def test_login_rate_limit(api: tuple[Any, httpx.AsyncClient]) -> None:
    app, admin = api
    pw = await add_user(admin, "op1", "operator", None)
    async with browser(app) as c:
        for _ in range(5):
            r = await c.post("/api/login", json={"username": "op1", "password": "wrong"})
            assert r.status_code == 401
        r = await c.post("/api/login", json={"username": "op1", "password": pw})
        assert r.status_code == 429  # even the right password, until the window passes
    audit = (await admin.get("/api/audit")).json()
    assert sum(1 for a in audit if a["action"] == "login_failed" and a["username"] == "op1") == 5


async def test_roles_approval_and_emergency(api: tuple[Any, httpx.AsyncClient]) -> None:
    app, admin = api
    editor = await login(app, "bt", await add_user(admin, "bt", "editor", "wa"))
    approver = await login(app, "pd", await add_user(admin, "pd", "approver", "wa"))
    operator = await login(app, "vh", await add_user(admin, "vh", "operator", "wa"))
    r = await editor.post("/api/bulletins", json={"text": "Họp tổ dân phố lúc 19 giờ."})
    assert r.status_code == 201, r.text
    b = r.json()
    assert b["approval"] == "draft" and b["created_by"] == "bt"
    target = {"bulletin_id": b["id"], "target": {"zones": ["za"]}}
    assert (await editor.post("/api/broadcasts", json=target)).status_code == 403  # editors do not air
    assert (await operator.post("/api/broadcasts", json=target)).status_code == 409  # not approved
    assert (await operator.post("/api/bulletins", json={"text": "x"})).status_code == 403
    assert (await editor.post(f"/api/bulletins/{b['id']}/approve")).status_code == 403
    r = await editor.post(f"/api/bulletins/{b['id']}/submit")
    assert r.json()["approval"] == "submitted"
    queue = (await approver.get("/api/bulletins", params={"approval": "submitted"})).json()
    assert [q["id"] for q in queue] == [b["id"]]
    r = await approver.post(f"/api/bulletins/{b['id']}/approve", json={"note": "ok"})
    assert r.status_code == 200 and r.json()["approval"] == "approved" and r.json()["decided_by"] == "pd"
    assert r.json()["decided_at"] and r.json()["submitted_at"]
    r = await operator.post("/api/broadcasts", json=target)
    assert r.status_code == 201, r.text
    # an emergency by an authorised user skips the queue, and it is audited
    r = await editor.post("/api/bulletins", json={"text": "Khẩn cấp: nước lên nhanh.",
                                                  "priority": "emergency"})
    e = r.json()
    assert e["approval"] == "draft"
    emergency = {"bulletin_id": e["id"], "target": {"all": True}}
    assert (await editor.post("/api/broadcasts", json=emergency)).status_code == 403
    r = await operator.post("/api/broadcasts", json=emergency)
    assert r.status_code == 201, r.text
    assert r.json()["targets"]["zones"] == ["za"]  # "all" of a ward user is their ward
    audit = (await admin.get("/api/audit")).json()
    actions = {(a["username"], a["action"]) for a in audit}
    assert {("bt", "bulletin_submit"), ("pd", "bulletin_approved"), ("vh", "emergency_bypass"),
            ("vh", "POST /api/broadcasts")} <= actions
    assert (await editor.get("/api/audit")).status_code == 403
    for c in (editor, approver, operator):
        await c.aclose()


async def test_ward_scoping(api: tuple[Any, httpx.AsyncClient]) -> None:
    app, admin = api
    a = await login(app, "opa", await add_user(admin, "opa", "operator", "wa"))
    b_bulletin = (await admin.post("/api/bulletins", json={"text": "Bản tin của phường khác."})).json()
    with app.state.services.db.session() as s:  # make it ward B's
        from controller.bulletins.models import Bulletin

        row = s.get(Bulletin, b_bulletin["id"])
        row.org_unit_id = "wb"
        s.add(row)
        s.commit()
    assert [n["id"] for n in (await a.get("/api/nodes")).json()] == ["za-1"]
    assert [z["id"] for z in (await a.get("/api/zones")).json()] == ["za"]
    assert (await a.get("/api/nodes/zb-1")).status_code == 403
    assert (await a.get("/api/nodes/za-1")).status_code == 200
    assert (await a.get(f"/api/bulletins/{b_bulletin['id']}")).status_code == 403
    assert (await a.get("/api/bulletins")).json() == []
    r = await a.post("/api/broadcasts", json={"bulletin_id": b_bulletin["id"], "target": {"zones": ["za"]}})
    assert r.status_code == 403
    # a bulletin of the top of the tree: only users without an org unit see it
    own = (await admin.post("/api/bulletins", json={"text": "Bản tin chung."})).json()
    assert (await a.get(f"/api/bulletins/{own['id']}")).status_code == 403
    cmd = {"name": "volume", "args": {"level": 50}, "timeout_s": 1}
    assert (await a.post("/api/nodes/zb-1/commands", json=cmd)).status_code == 403
    assert (await a.post("/api/zones/zb/commands", json=cmd)).status_code == 403
    # the command log: a command that went to ward B's unit is invisible to ward A
    from controller.fleet.models import NodeCommand

    with app.state.services.db.session() as s:
        for cid, node in (("c-a", "za-1"), ("c-b", "zb-1")):
            res = [{"node_id": node, "status": "ok", "data": {}, "error": "", "ms": 5}]
            s.add(NodeCommand(id=cid, name="ping", args={}, target={"nodes": [node]}, created_by="admin",
                              results=res, created_at=1, finished_at=2))
        s.commit()
    assert (await a.get("/api/commands/c-b")).status_code == 403
    assert (await a.get("/api/commands/c-a")).status_code == 200
    assert [c["id"] for c in (await a.get("/api/commands")).json()] == ["c-a"]
    assert sorted(c["id"] for c in (await admin.get("/api/commands")).json()) == ["c-a", "c-b"]
    bc = (await admin.post("/api/broadcasts", json={"bulletin_id": b_bulletin["id"],
                                                    "target": {"zones": ["zb"]}})).json()
    assert (await a.get(f"/api/broadcasts/{bc['id']}")).status_code == 403
    assert (await a.post(f"/api/broadcasts/{bc['id']}/cancel")).status_code == 403
    assert (await a.get("/api/broadcasts")).json() == []
    await a.aclose()


async def test_schedules_follow_roles_approval_and_wards(api: tuple[Any, httpx.AsyncClient]) -> None:
    app, admin = api
    ed = await login(app, "bta", await add_user(admin, "bta", "editor", "wa"))
    op = await login(app, "opa2", await add_user(admin, "opa2", "operator", "wa"))
    draft = (await ed.post("/api/bulletins", json={"text": "Lịch tiêm phòng."})).json()
    when = {"kind": "daily", "times": ["06:00"]}
    sched = {"bulletin_id": draft["id"], "target": {"zones": ["za"]}, "when": when}
    assert (await ed.post("/api/schedules", json=sched)).status_code == 403  # editors do not air
    assert (await op.post("/api/schedules", json=sched)).status_code == 409  # not approved
    assert (await admin.post(f"/api/bulletins/{draft['id']}/approve")).status_code == 409  # never submitted
    assert (await ed.post(f"/api/bulletins/{draft['id']}/submit")).status_code == 200
    assert (await admin.post(f"/api/bulletins/{draft['id']}/approve")).status_code == 200
    assert (await op.post("/api/schedules", json=sched | {"target": {"zones": ["zb"]}})).status_code == 403
    assert (await op.post("/api/schedules", json=sched | {"target": {"all": True}})).status_code == 403
    r = await op.post("/api/schedules", json=sched)
    assert r.status_code == 201, r.text
    # ward B's schedule: invisible and untouchable for ward A
    theirs = (await admin.post("/api/bulletins", json={"text": "Bản tin phường B."})).json()
    with app.state.services.db.session() as s:
        from controller.bulletins.models import Bulletin

        row = s.get(Bulletin, theirs["id"])
        row.org_unit_id = "wb"
        s.add(row)
        s.commit()
    r = await admin.post("/api/schedules", json={"bulletin_id": theirs["id"], "target": {"zones": ["zb"]},
                                                 "when": when})
    assert r.status_code == 201, r.text
    sid = r.json()["id"]
    assert [x["bulletin_id"] for x in (await op.get("/api/schedules")).json()] == [draft["id"]]
    assert (await op.get(f"/api/schedules/{sid}")).status_code == 403
    assert (await op.delete(f"/api/schedules/{sid}")).status_code == 403
    assert [z["zone"] for z in (await op.get("/api/agenda")).json()["zones"]] == ["za"]
    assert len((await admin.get("/api/schedules")).json()) == 2
    for c in (ed, op):
        await c.aclose()


async def test_relay_schedules_and_relays_follow_wards(api: tuple[Any, httpx.AsyncClient]) -> None:
    """A relay schedule has no bulletin: it is visible to a ward user when all its targets are in
    the ward; a relay likewise (relays are rows, listed without a broker running)."""
    app, admin = api
    op = await login(app, "opa3", await add_user(admin, "opa3", "operator", "wa"))
    ed = await login(app, "bta3", await add_user(admin, "bta3", "editor", "wa"))
    relay = {"url": "http://radio.example/vov1.mp3", "duration_s": 600}
    when = {"kind": "daily", "times": ["06:00"]}
    assert (await ed.post("/api/schedules", json={"relay": relay, "target": {"zones": ["za"]},
                                                  "when": when})).status_code == 403  # editors do not air
    assert (await op.post("/api/schedules", json={"relay": relay, "target": {"zones": ["zb"]},
                                                  "when": when})).status_code == 403
    mine = await op.post("/api/schedules", json={"relay": relay, "target": {"zones": ["za"]}, "when": when})
    assert mine.status_code == 201, mine.text
    theirs = await admin.post("/api/schedules", json={"relay": relay, "target": {"zones": ["zb"]},
                                                      "when": when})
    assert theirs.status_code == 201, theirs.text
    everything = await admin.post("/api/schedules", json={"relay": relay, "target": {"all": True},
                                                          "when": when})
    assert everything.status_code == 201, everything.text
    assert [x["id"] for x in (await op.get("/api/schedules")).json()] == [mine.json()["id"]]
    for sid in (theirs.json()["id"], everything.json()["id"]):
        assert (await op.get(f"/api/schedules/{sid}")).status_code == 403
        assert (await op.patch(f"/api/schedules/{sid}", json={"enabled": False})).status_code == 403
    assert len((await admin.get("/api/schedules")).json()) == 3

    from controller.relays.models import Relay
    with app.state.services.db.session() as s:
        for rid, node in (("relay-a", "za-1"), ("relay-b", "zb-1")):
            s.add(Relay(id=rid, url=relay["url"], mode="node_fetch", nodes=[node], state="ended",
                        reason="finished", owner="elsewhere", created_by="admin"))
        s.commit()
    assert [x["id"] for x in (await op.get("/api/relays")).json()] == ["relay-a"]
    assert (await op.get("/api/relays/relay-b")).status_code == 404
    assert {x["id"] for x in (await admin.get("/api/relays")).json()} == {"relay-a", "relay-b"}
    for c in (ed, op):
        await c.aclose()
