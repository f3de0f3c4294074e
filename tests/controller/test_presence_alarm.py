"""Presence without a broker (Presence on a FakeUnitBus, SQLite in tmp_path), issue 13:
D12, the ``duplicate_id`` alarm clears (by itself once no second unit is seen for DUP_CLEAR_S,
or by an operator) and is raised again while two units use the id; D18, a heartbeat alone brings
a unit marked offline for silence back online, while a unit shut down cleanly stays ``shutdown``
until it boots again (a new session)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from sqlmodel import select

from controller.accounts.models import AuditEntry
from controller.core.db import Database
from controller.core.writer import DbWriter
from controller.fleet import presence as presence_mod
from controller.fleet.models import Node, NodeEvent
from controller.fleet.presence import Presence
from devices import protocol as p
from devices.broker import free_port
from tests.conftest import ADMIN, make_settings, running_controller
from tests.fakes import FakeUnitBus

pytestmark = pytest.mark.timeout(60)


@dataclass
class Fleet:
    db: Database
    bus: FakeUnitBus
    writer: DbWriter
    presence: Presence

    def node(self, node_id: str = "u1") -> Node:
        with self.db.session() as s:
            n = s.get(Node, node_id)
            assert n is not None
            return n

    def events(self, node_id: str = "u1") -> list[tuple[str, str]]:
        with self.db.session() as s:
            q = select(NodeEvent).where(NodeEvent.node_id == node_id).order_by(NodeEvent.id)  # type: ignore[arg-type]
            return [(e.kind, e.detail) for e in s.exec(q)]


class Clock:
    """presence's monotonic clock, moved by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    c = Clock()
    monkeypatch.setattr(presence_mod, "time", c)
    return c


@pytest.fixture
def fleet(tmp_path: Path, clock: Clock) -> Iterator[Fleet]:
    db = Database(f"sqlite:///{tmp_path / 'ward.db'}")
    db.migrate()
    with db.session() as s:
        s.add(Node(id="u1"))
        s.commit()
    bus = FakeUnitBus()
    writer = DbWriter(db)
    presence = Presence(bus, writer, heartbeat_timeout_s=45)
    with db.session() as s:
        presence.load(s)
    yield Fleet(db, bus, writer, presence)
    db.dispose()


def two_units(f: Fleet, returns: int = 3) -> None:
    """Two units with id u1 heard in turn: sessions a, b, a, b, ... (``returns`` returns to a session
    seen before)."""
    for i in range(returns + 2):
        f.bus.heartbeat("u1", session="a" if i % 2 == 0 else "b", seq=i)


def alarm(f: Fleet) -> str:
    view = f.presence.view("u1")
    assert view is not None
    return view.alarm


async def test_duplicate_id_clears_once_no_second_unit_is_seen(fleet: Fleet, clock: Clock) -> None:
    two_units(fleet)
    assert alarm(fleet) == "duplicate_id"
    await fleet.writer.flush()
    assert fleet.node().alarm == "duplicate_id"

    clock.now += presence_mod.DUP_CLEAR_S - 1
    fleet.presence.check_timeouts()
    assert alarm(fleet) == "duplicate_id"  # the second unit was heard less than DUP_CLEAR_S ago
    clock.now += 2
    fleet.bus.heartbeat("u1", session="a", seq=10)  # the one left (a, heard last): no return
    fleet.presence.check_timeouts()
    assert alarm(fleet) == ""
    await fleet.writer.flush()
    assert fleet.node().alarm == ""
    kinds = [k for k, _ in fleet.events()]
    assert kinds.count("duplicate_id") == 1 and kinds[-1] == "alarm_cleared"
    assert "no second unit seen for 600 s" in fleet.events()[-1][1]

    two_units(fleet)  # the two are back: raised again at once (the quiet period starts afresh)
    assert alarm(fleet) == "duplicate_id"


async def test_an_operator_clears_it_and_a_restart_counts_from_the_start(
        fleet: Fleet, clock: Clock) -> None:
    two_units(fleet)
    assert fleet.presence.clear_alarm("u1", "cleared by op") == "duplicate_id"
    assert alarm(fleet) == "" and fleet.presence.clear_alarm("u1", "again") == ""
    await fleet.writer.flush()
    assert fleet.node().alarm == "" and fleet.events()[-1] == ("alarm_cleared", "duplicate_id: cleared by op")
    for seq, session in enumerate("ba"):  # heard last: a
        fleet.bus.heartbeat("u1", session=session, seq=seq)
    assert alarm(fleet) == ""  # two returns since the clearing do not make an alarm (DUP_SWITCHES = 3)
    fleet.bus.heartbeat("u1", session="b", seq=20)
    assert alarm(fleet) == "duplicate_id"  # still two units: raised again
    await fleet.writer.flush()

    clock.now += presence_mod.DUP_CLEAR_S + 1  # before the restart: it counts from the restart
    restarted = Presence(FakeUnitBus(), DbWriter(fleet.db))  # a controller restart: the alarm from the row
    with fleet.db.session() as s:
        restarted.load(s)
    restarted.check_timeouts()
    view = restarted.view("u1")
    assert view is not None and view.alarm == "duplicate_id"
    clock.now += presence_mod.DUP_CLEAR_S + 1
    restarted.check_timeouts()
    view = restarted.view("u1")
    assert view is not None and view.alarm == ""


def test_a_heartbeat_brings_a_silent_unit_back_but_not_one_shut_down(fleet: Fleet, clock: Clock) -> None:
    bus, pr = fleet.bus, fleet.presence
    bus.deliver("state", "u1", p.NodeState(node_id="u1", status=p.NodeStatus.ONLINE, session="s1"))
    assert pr.status("u1") == "online"
    clock.now += 46  # silent for longer than the timeout (45 s)
    pr.check_timeouts()
    assert pr.status("u1") == "offline"
    bus.heartbeat("u1", session="s1", seq=2)  # a heartbeat alone: online again
    assert pr.status("u1") == "online"

    bus.deliver("state", "u1", p.NodeState(node_id="u1", status=p.NodeStatus.SHUTDOWN, session="s1"))
    assert pr.status("u1") == "shutdown" and not pr.is_online("u1")
    bus.heartbeat("u1", session="s1", seq=3)  # late, from the session that shut down
    assert pr.status("u1") == "shutdown"
    bus.heartbeat("u1", session="s2", seq=1)  # booted again (a new session)
    assert pr.status("u1") == "online"


async def test_clear_alarm_through_the_api_is_audited(tmp_path: Path) -> None:
    async with running_controller(make_settings(tmp_path, free_port())) as (app, client):
        assert (await client.post("/api/zones", json={"id": "z", "name": "Z"})).status_code == 201
        assert (await client.post("/api/nodes", json={"id": "u1", "zones": ["z"]})).status_code == 201
        sv = app.state.services
        with sv.db.session() as s:  # raised before (e.g. before a restart): on the row
            node = s.get(Node, "u1")
            assert node is not None
            node.alarm = "duplicate_id"
            s.add(node)
            s.commit()
            sv.presence.load(s)
        assert (await client.get("/api/nodes/u1")).json()["alarm"] == "duplicate_id"
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://controller",
                                     timeout=60) as browser:
            r = await browser.post("/api/login", json={"username": ADMIN[0], "password": ADMIN[1]})
            assert r.status_code == 200, r.text
            page = (await browser.get("/units/u1")).text
            assert "Trùng mã: hai cụm loa đang dùng chung mã này" in page and "Xóa cảnh báo" in page
            for screen in ("/units", "/"):  # the list and the dashboard's alarms say it in Vietnamese too
                assert "Trùng mã" in (await browser.get(screen)).text, screen
            browser.headers["X-CSRF-Token"] = r.json()["csrf_token"]
            r = await browser.post("/api/nodes/u1/clear-alarm")  # what the page's button calls
            assert "Trùng mã" not in (await browser.get("/units/u1")).text
        assert r.status_code == 200 and r.json() == {"node_id": "u1", "cleared": "duplicate_id"}, r.text
        assert r.status_code == 200 and r.json() == {"node_id": "u1", "cleared": "duplicate_id"}, r.text
        assert (await client.get("/api/nodes/u1")).json()["alarm"] == ""
        assert (await client.post("/api/nodes/u1/clear-alarm")).status_code == 409
        assert (await client.post("/api/nodes/nope/clear-alarm")).status_code == 404
        with sv.db.session() as s:
            [entry] = s.exec(select(AuditEntry).where(AuditEntry.action == "alarm_clear")).all()
            assert (entry.username, entry.target, entry.detail) == (ADMIN[0], "node:u1", "duplicate_id")
