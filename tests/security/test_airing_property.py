"""Property (issue 11 items 2 and 11): no request shape makes a broadcast, schedule or relay air
something its sender may not air, or reach units outside the sender's ward.

Users of every role in ward A; bulletins of every approval state in wards A and B. Hypothesis
sends POST /api/broadcasts, POST /api/schedules, PATCH /api/schedules/{id} (ward A's and ward
B's) and POST /api/relays with ids as int / str / float / bool / list / object / huge / negative,
priorities, targets naming both wards' zones and units, flags as strings, unknown fields — over
real HTTP to the real app (uvicorn, SQLite). After every request the database is checked, not
just the status code: every row that airs is allowed for whoever made or changed it, and every
refusal is a 4xx with a detail, never a 5xx.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlmodel import Session, select

from controller.accounts.models import AuditEntry
from controller.accounts.roles import CAN_AIR, CAN_EMERGENCY
from controller.accounts.users import add_user
from controller.airing.models import Broadcast, Delivery
from controller.bulletins.models import Bulletin
from controller.relays.models import Relay
from devices.broker import free_port
from scheduler import TIMEZONE
from scheduler.models import Schedule
from tests.conftest import ADMIN, make_settings
from tests.e2e.test_browser import Server
from tests.security.ward import AIRING_USERS, STATES, WARD_A, World, airing_world

pytestmark = pytest.mark.timeout(180)

DAILY = {"kind": "daily", "times": ["06:00"]}
STATION = "http://127.0.0.1:9"  # allow-listed, never fetched (relays start in an hour, node_fetch)
RELAY = {"url": f"{STATION}/live", "mode": "node_fetch", "duration_s": 60}
MINE = {"za", "za-1"}  # ward A's zone and unit
IN_AN_HOUR = (datetime.now(tz=TIMEZONE) + timedelta(hours=1)).isoformat()


@dataclass
class Ward:
    server: Server
    world: World
    mine: int  # ward A's bulletin schedule (op_a)
    mine_relay: int  # ward A's relay schedule (op_a)
    theirs: int  # ward B's schedule (the province admin)
    shared: int  # ward A's bulletin to ward B's zone (the province admin): ward A may not change it


@pytest.fixture(scope="module")
def ward(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Ward]:
    base = make_settings(tmp_path_factory.mktemp("airing"), free_port())  # no broker: nothing plays
    relay = base.relay.model_copy(update={"allowed_stations": [STATION]})
    no_firing = base.schedule.model_copy(update={"enabled": False})  # rows are checked, not aired
    with Server(base.model_copy(update={"relay": relay, "schedule": no_firing})) as srv:
        async def setup() -> Ward:
            async with httpx.AsyncClient(base_url=srv.url, auth=ADMIN, timeout=60) as admin:
                w = await airing_world(admin)
                op = w.auth("op_a")
                made = []
                for auth, body in ((op, {"bulletin_id": w.bulletins[("wa", "approved")]}),
                                   (op, {"relay": RELAY}),
                                   (ADMIN, {"bulletin_id": w.bulletins[("wb", "approved")]}),
                                   (ADMIN, {"bulletin_id": w.bulletins[("wa", "approved")]})):
                    zone = "za" if auth == op else "zb"
                    r = await admin.post("/api/schedules", auth=auth,
                                         json=body | {"target": {"zones": [zone]}, "when": DAILY})
                    assert r.status_code == 201, r.text
                    made.append(int(r.json()["id"]))
                return Ward(srv, w, *made)

        yield asyncio.run(setup())


# ----------------------------------------------------------------------------- request shapes

BULLETIN_KEYS = [(ward, state) for ward in ("wa", "wb") for state in STATES]


def id_shapes(i: int) -> st.SearchStrategy[Any]:
    return st.sampled_from([i] * 12 + [str(i), float(i), f"{i}.0", True, False, [i], {"id": i}, 2**63 + i,
                            2**64, -i, 0, None, "", f"{i}abc", 10**30])


priorities = st.sampled_from([None, "normal", "priority", "emergency", "emergency", "EMERGENCY", 1, True])
names = st.sampled_from(["za", "zb", "nope", "za-1", "zb-1", "all"])
targets = st.one_of(
    st.just({"zones": ["za"]}), st.just({"all": True}), st.just({"nodes": ["za-1"]}),
    st.fixed_dictionaries({}, optional={
        "all": st.sampled_from([True, False, "true", "false", 1, 0, "yes"]),
        "zones": st.lists(names, max_size=3), "nodes": st.lists(names, max_size=3),
        "org_unit_id": st.just("wb"),
    }),
    st.sampled_from(["za", ["za"], None]),
)
extras = st.fixed_dictionaries({}, optional={
    "org_unit_id": st.just("wa"), "created_by": st.just("admin"), "approval": st.just("approved"),
    "enabled": st.sampled_from([True, False, "true", 0]), "repeat": st.sampled_from([1, "2", 2.0]),
})


@st.composite
def requests(draw: st.DrawFn, w: Ward) -> tuple[str, str, str, dict[str, Any]]:
    user = draw(st.sampled_from([*WARD_A, "op_a", "op_a", "adm_a"]))
    kind = draw(st.sampled_from(["broadcast", "schedule", "patch", "relay", "delete"]))
    body: dict[str, Any] = {}
    if (kind != "relay" and draw(st.booleans())) or kind in ("broadcast", "schedule"):
        key = draw(st.sampled_from(BULLETIN_KEYS))
        body["bulletin_id"] = draw(id_shapes(w.world.bulletins[key]))
    if kind in ("schedule", "patch") and draw(st.integers(0, 4)) == 0:
        body["relay"] = RELAY
        if draw(st.booleans()):
            body.pop("bulletin_id", None)
    if (p := draw(priorities)) is not None:
        body["priority"] = p
    if kind != "patch" or draw(st.booleans()):
        body["target"] = draw(targets)
    if kind == "schedule":
        body["when"] = DAILY
    if kind == "relay":
        body |= {"url": RELAY["url"], "mode": "node_fetch", "start_at": IN_AN_HOUR}
        body.pop("bulletin_id", None)
    body |= draw(extras) if draw(st.integers(0, 5)) == 0 else {}
    if kind == "delete":  # only the schedules ward A may not touch (its own stay for the patches)
        return user, "DELETE", f"/api/schedules/{draw(st.sampled_from([w.theirs, w.shared]))}", {}
    sid = draw(st.sampled_from([w.mine, w.mine_relay, w.theirs, w.shared]))
    path = {"broadcast": "/api/broadcasts", "schedule": "/api/schedules", "relay": "/api/relays",
            "patch": f"/api/schedules/{sid}"}[kind]
    return user, "PATCH" if kind == "patch" else "POST", path, body


# ----------------------------------------------------------------------------- the property


def may_air(b: Bulletin | None, priority: str | None, role: str, org: str | None) -> bool:
    if b is None:
        return False
    emergency = (priority or b.priority) == "emergency"
    if org is not None and b.org_unit_id != org:
        return False
    if b.approval == "approved":
        return role in CAN_AIR or (emergency and role in CAN_EMERGENCY)
    return b.approval in ("draft", "submitted") and emergency and role in CAN_EMERGENCY


def within(target: dict[str, Any], allowed: set[str]) -> bool:
    names = set(target.get("zones") or []) | set(target.get("nodes") or [])
    return not target.get("all") and names <= allowed


def check_database(w: Ward, before: dict[int, tuple[Any, ...]]) -> None:
    with Session(w.server.app.state.services.db.engine) as s:
        for bc in s.exec(select(Broadcast)):
            role, org = AIRING_USERS.get(bc.created_by, ("admin", None))
            assert may_air(s.get(Bulletin, bc.bulletin_id), bc.priority, role, org), bc
            units = set(s.exec(select(Delivery.node_id).where(Delivery.broadcast_id == bc.id)))
            assert within(bc.targets, MINE) and units <= MINE, bc
            b = s.get(Bulletin, bc.bulletin_id)
            if b is not None and b.approval != "approved":  # an emergency bypass, audited with its id
                q = select(AuditEntry).where(AuditEntry.action == "emergency_bypass")
                assert any(bc.id in a.detail for a in s.exec(q)), bc
        for sc in s.exec(select(Schedule)):
            if sc.id in before:  # ward B's, or reaching ward B: nobody in ward A changed it
                assert (sc.version, sc.bulletin_id, sc.priority, sc.targets, sc.relay) == before[sc.id]
                continue
            if sc.bulletin_id is not None:  # ward A's: what it airs, an operator of ward A may air
                assert may_air(s.get(Bulletin, sc.bulletin_id), sc.priority, "operator", "wa"), sc
            assert within(sc.targets, MINE), sc
        for relay in s.exec(select(Relay)):
            assert set(relay.nodes) <= MINE and within(relay.target, MINE), relay


def row_of(w: Ward, schedule_id: int) -> tuple[Any, ...]:
    with Session(w.server.app.state.services.db.engine) as s:
        sc = s.get(Schedule, schedule_id)
        assert sc is not None
        return sc.version, sc.bulletin_id, sc.priority, sc.targets, sc.relay


def test_no_request_shape_airs_what_its_sender_may_not(ward: Ward) -> None:
    theirs = {i: row_of(ward, i) for i in (ward.theirs, ward.shared)}
    seen: dict[int, int] = {}
    with httpx.Client(base_url=ward.server.url, timeout=30) as client:

        @settings(max_examples=200, deadline=None, database=None,
                  suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
        @given(req=requests(ward))
        def attack(req: tuple[str, str, str, dict[str, Any]]) -> None:
            user, method, path, body = req
            r = client.request(method, path, json=body or None, auth=ward.world.auth(user))
            seen[r.status_code] = seen.get(r.status_code, 0) + 1
            assert r.status_code < 500, (req, r.text)
            if r.status_code >= 400:
                detail = r.json().get("detail")
                assert detail and (isinstance(detail, str) or all(d.get("msg") for d in detail)), r.text
            check_database(ward, theirs)

        attack()
    # the property was exercised both ways: things were refused, and allowed things were made
    assert sum(n for code, n in seen.items() if code >= 400) > 50, seen
    print("status codes:", dict(sorted(seen.items())))
    assert seen.get(201, 0) + seen.get(200, 0) > 5, seen


def test_the_property_check_sees_a_forbidden_row(ward: Ward) -> None:
    """The checker is not vacuous: a rejected bulletin's broadcast planted in the database fails it."""
    theirs = {i: row_of(ward, i) for i in (ward.theirs, ward.shared)}
    with Session(ward.server.app.state.services.db.engine) as s:
        b = s.get(Bulletin, ward.world.bulletins[("wa", "rejected")])
        assert b is not None and b.audio_sha256 is not None
        s.add(Broadcast(id="planted", bulletin_id=b.id, audio_sha256=b.audio_sha256, priority="emergency",
                        targets={"zones": ["za"]}, air_at=0, expires_at=0, created_by="op_a"))
        s.commit()
    try:
        with pytest.raises(AssertionError):
            check_database(ward, theirs)
    finally:
        with Session(ward.server.app.state.services.db.engine) as s:
            planted = s.get(Broadcast, "planted")
            assert planted is not None
            s.delete(planted)
            s.commit()


# ----------------------------------------------------------------------------- broker-free units


@pytest.mark.parametrize("approval", ["approved", "submitted", "draft", "rejected", "withdrawn"])
@pytest.mark.parametrize("priority", [None, "normal", "priority", "emergency"])
def test_the_airing_rule(approval: str, priority: str | None) -> None:
    """Approved airs; undecided airs only as an emergency; rejected (or unknown) never."""
    from controller.airing.rules import airing_refusal, is_bypass

    for own in ("normal", "emergency"):  # the bulletin's class, used when no priority is asked
        b = Bulletin(id=6, title="", text="x", voice="vi", priority=own, approval=approval)
        emergency = (priority or own) == "emergency"
        allowed = approval == "approved" or (approval in ("draft", "submitted") and emergency)
        assert (airing_refusal(b, priority) is None) is allowed, (approval, priority, own)
        assert is_bypass(b, priority) is (allowed and approval != "approved")
        if approval == "rejected":
            assert "never airs" in (airing_refusal(b, priority) or "")


@pytest.mark.parametrize("shape", ["6", 6.0, "6.0", True, False, [6], {"id": 6}, None, 0, -6, 2**63, 10**30])
def test_an_id_is_a_json_integer(shape: Any) -> None:
    from pydantic import ValidationError

    from controller.api.schemas import BroadcastCreate, ScheduleCreate, ScheduleUpdate

    target = {"zones": ["za"]}
    assert BroadcastCreate.model_validate({"bulletin_id": 6, "target": target}).bulletin_id == 6
    assert ScheduleUpdate.model_validate({"bulletin_id": 6}).bulletin_id == 6
    for model, body in ((BroadcastCreate, {"target": target}), (ScheduleUpdate, {}),
                        (ScheduleCreate, {"target": target, "when": DAILY})):
        if shape is None and model is not BroadcastCreate:
            continue  # "no bulletin" is how a schedule says it relays a stream (or changes nothing)
        with pytest.raises(ValidationError) as err:
            model.model_validate(body | {"bulletin_id": shape})
        assert "bulletin_id" in str(err.value)


def test_a_slot_re_checks_its_bulletin_when_it_fires(tmp_path: Path) -> None:
    """scheduler/firing.py on a real SQLite database: an emergency slot of a draft, set up by an
    active operator, airs and is audited; once the bulletin is rejected, the next slot fails with
    the reason and airs nothing."""
    from controller.api.schemas import ScheduleCreate
    from controller.schedules.crud import create_schedule
    from scheduler.firing import FireConfig, air_slot
    from tests.scheduler.ward import airer, make_ward

    db = make_ward(f"sqlite:///{tmp_path / 'ward.db'}")
    with Session(db.engine) as s:
        b = s.get(Bulletin, 1)
        assert b is not None
        b.approval = "draft"
        s.add(b)
        add_user(s, "op_a", "operator", b.org_unit_id)  # the bypass holds only for an active operator
        body = ScheduleCreate.model_validate({"bulletin_id": 1, "priority": "emergency",
                                              "target": {"zones": ["z1"]}, "when": DAILY})
        sid = create_schedule(s, body, created_by="op_a").id
        assert sid is not None
    cfg = FireConfig(grace_ms=60_000, holder="test")
    slot = int((datetime.now(tz=TIMEZONE) + timedelta(minutes=5)).timestamp() * 1000)
    aired = air_slot(db.engine, cfg, airer(), schedule_id=sid, version=1, slot_ms=slot, may_fire=lambda: True)
    assert aired.outcome == "aired" and len(aired.broadcasts) == 1
    with Session(db.engine) as s:
        audit = s.exec(select(AuditEntry).where(AuditEntry.action == "emergency_bypass")).all()
        assert [(a.username, a.target) for a in audit] == [("op_a", "bulletin:1")]
        assert aired.broadcasts[0][0] in audit[0].detail and f"schedule:{sid}" in audit[0].detail
        b = s.get(Bulletin, 1)
        assert b is not None
        b.approval = "rejected"
        s.add(b)
        s.commit()
    failed = air_slot(db.engine, cfg, airer(), schedule_id=sid, version=1, slot_ms=slot + 86_400_000,
                      may_fire=lambda: True)
    assert failed.outcome == "failed" and failed.broadcasts == [] and "rejected" in failed.reason
    with Session(db.engine) as s:
        assert len(s.exec(select(Broadcast)).all()) == 1  # only the first slot's
    db.dispose()
