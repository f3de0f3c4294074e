"""controller/schedules/airer.py alone: what a slot airs, on a real SQLite ward, with no runner,
no APScheduler and no broker (the scheduler's side is in test_firing.py)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import Session, select

from controller.accounts.models import AuditEntry
from controller.accounts.users import add_user
from controller.airing.models import Broadcast
from controller.bulletins.models import Bulletin
from controller.core.db import Database
from controller.relays.models import Relay
from controller.schedules.airer import ScheduleAirer, relay_id
from devices.protocol import now_ms
from scheduler.ports import Aired, Slot
from tests.scheduler.ward import Sink, airer, make_ward, session

Z1: dict[str, Any] = {"all": False, "zones": ["z1"], "nodes": []}


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    ward = make_ward(f"sqlite:///{tmp_path / 'ward.db'}", duration_ms=2000)
    yield ward
    ward.dispose()


def slot(*, ahead_ms: int = 60_000, **kw: Any) -> Slot:
    now = now_ms()
    fields: dict[str, Any] = {"schedule_id": 7, "slot_ms": now + ahead_ms, "now_ms": now, "bulletin_id": 1,
                              "relay": None, "targets": Z1, "priority": None, "repeat": 1, "interval_s": 0,
                              "valid_for_s": None, "created_by": "op", **kw}
    return Slot(**fields)


def air(db: Database, sl: Slot) -> tuple[Aired, list[list[str]]]:
    seen: list[list[str]] = []
    with session(db) as s:
        out = airer().air(s, sl, seen.append)
        s.commit()
    return out, seen


def rows(db: Database, model: Any) -> list[Any]:
    with session(db) as s:
        return list(s.exec(select(model)).all())


def test_a_bulletin_slot_becomes_a_broadcast_played_at_the_slot(db: Database) -> None:
    sl = slot(valid_for_s=300)
    out, seen = air(db, sl)
    [bc] = rows(db, Broadcast)
    assert out == Aired(broadcasts=[(bc.id, bc.air_at)]) and seen == [[bc.id]]
    assert (bc.bulletin_id, bc.play_at, bc.repeat, bc.targets) == (1, sl.slot_ms, 1, Z1)
    assert bc.created_by == "schedule 7 (op)" and bc.expires_at >= sl.slot_ms + 300_000


def test_spaced_repeats_are_one_broadcast_each_and_a_late_slot_plays_on_arrival(db: Database) -> None:
    sl = slot(repeat=3, interval_s=60)
    out, seen = air(db, sl)
    by_id = {b.id: b for b in rows(db, Broadcast)}
    assert [by_id[b].play_at for b, _ in out.broadcasts] == [sl.slot_ms + k * 60_000 for k in range(3)]
    assert {b.repeat for b in by_id.values()} == {1} and [len(x) for x in seen] == [1, 2, 3]
    late, _ = air(db, slot(ahead_ms=-2000, repeat=2))  # back-to-back repeats: one broadcast
    [(late_id, _)] = late.broadcasts
    [bc] = [b for b in rows(db, Broadcast) if b.id not in by_id]
    assert bc.id == late_id
    assert bc.play_at is None and bc.repeat == 2


def test_a_rejected_bulletin_airs_nothing_and_says_why(db: Database) -> None:
    with session(db) as s:
        b = s.get(Bulletin, 1)
        assert b is not None
        b.approval = "rejected"
        s.add(b)
        s.commit()
    out, seen = air(db, slot(repeat=2, interval_s=60))
    assert out.broadcasts == [] and seen == [] and rows(db, Broadcast) == []
    assert "rejected" in out.failure and out.failure.endswith("(0 of 2 aired)")


def test_an_emergency_bypass_holds_only_while_its_creator_may_use_it(db: Database) -> None:
    with session(db) as s:
        b = s.get(Bulletin, 1)
        assert b is not None
        b.approval = "draft"
        s.add(b)
        add_user(s, "op_a", "operator", b.org_unit_id)
        s.commit()
    out, _ = air(db, slot(priority="emergency", created_by="op_a"))
    assert not out.failure and len(out.broadcasts) == 1
    refused, _ = air(db, slot(priority="emergency", created_by="gone_user"))
    assert refused.broadcasts == [] and "gone_user, who no longer exists" in refused.failure
    audit = sorted((a.action, a.username) for a in rows(db, AuditEntry) if a.action != "schedule_fired")
    assert audit == [("emergency_bypass", "op_a"), ("emergency_bypass_refused", "gone_user")]


def test_every_slot_handled_is_audited_with_its_bulletin_and_outcome(db: Database) -> None:
    """One slot aired, one refused (one by one), two of a burst (one INSERT): each a
    ``schedule_fired`` entry in the slot's transaction, by the schedule's creator, naming the
    schedule, the bulletin's title, the zones and whether it aired or failed (and why)."""
    with session(db) as s:
        b = s.get(Bulletin, 1)
        assert b is not None
        title = b.title
    air(db, slot(created_by="op_a"))
    air(db, slot(created_by="op_b", targets={"all": False, "zones": ["nowhere"], "nodes": []}))
    with session(db) as s:
        airer().air_many(s, [slot(schedule_id=8), slot(schedule_id=9, bulletin_id=404)])
        s.commit()
    fired = [a for a in rows(db, AuditEntry) if a.action == "schedule_fired"]
    got = [(a.username, a.target, json.loads(a.detail)) for a in fired]
    assert [(u, t, d["outcome"]) for u, t, d in got] == [
        ("op_a", "schedule:7", "aired"), ("op_b", "schedule:7", "failed"),
        ("op", "schedule:8", "aired"), ("op", "schedule:9", "failed")]
    assert got[0][2]["title"] == title and got[0][2]["zones"] == ["z1"] and got[0][2]["broadcasts"] == 1
    assert "unknown zone(s): nowhere" in got[1][2]["reason"] and got[1][2]["broadcasts"] == 0
    assert got[2][2]["title"] == title and "bulletin 404 does not exist" in got[3][2]["reason"]


def test_a_relay_slot_writes_its_relay_row_for_the_hub(db: Database) -> None:
    relay = {"url": "http://radio.example/vov1.m3u8", "mode": "republish", "duration_s": 1800}
    sl = slot(bulletin_id=None, relay=relay, priority="priority")
    out, _ = air(db, sl)
    rid = relay_id(7, sl.slot_ms)
    assert out == Aired(relays=[rid])
    [r] = rows(db, Relay)
    assert (r.id, r.url, r.mode, r.priority, r.nodes, r.start_at, r.duration_s, r.owner, r.schedule_id) == (
        rid, relay["url"], "republish", "priority", ["n1", "n2"], sl.slot_ms, 1800.0, "test", 7)
    bad, _ = air(db, slot(bulletin_id=None, relay=relay, targets={"zones": ["nope"]}))
    assert bad == Aired(failure="unknown zone(s): nope")


def test_handoff_gives_each_broadcast_and_relay_on_even_if_one_fails() -> None:
    relays: list[str] = []
    sink = Sink()

    def flaky(bc_id: str, air_at: int) -> None:
        if bc_id == "bc-1":
            raise RuntimeError("delivery refused it")
        sink(bc_id, air_at)

    a = ScheduleAirer(default_valid_s=600, owner="test", to_delivery=flaky, to_relays=relays.append)
    a.handoff(Aired(broadcasts=[("bc-1", 1), ("bc-2", 2)], relays=["relay-s1-5"]))
    assert [x[:2] for x in sink.aired] == [("bc-2", 2)] and relays == ["relay-s1-5"]


def test_the_session_is_the_callers(db: Database) -> None:
    """Nothing is committed by the airer for a relay: the scheduler's transaction decides."""
    relay = {"url": "http://radio.example/a.mp3", "mode": "node_fetch", "duration_s": 60}
    with Session(db.engine) as s:
        airer().air(s, slot(bulletin_id=None, relay=relay), lambda _ids: None)
        s.rollback()
    assert rows(db, Relay) == []
