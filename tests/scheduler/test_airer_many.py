"""controller/schedules/airer.py ``air_many`` (slots due together, controller/airing/burst.py): the
same broadcasts, deliveries, events, refusals and audit entries as ``air`` one slot at a time, on a
real SQLite ward, nothing committed by the airer; and a burst through the runner with the real
airer: one batch, each slot once, handed to delivery in slot-then-schedule order."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import Session, col, select

from controller.accounts.models import AuditEntry
from controller.accounts.users import add_user
from controller.airing.models import Broadcast, Delivery, DeliveryEvent
from controller.bulletins.models import Bulletin
from controller.core.db import Database
from devices.protocol import now_ms
from scheduler.clock import epoch_ms
from scheduler.models import ScheduleRun
from scheduler.ports import Aired, Slot
from tests.scheduler.ward import Sink, airer, fast, in_s, make_ward, once, runner, session, wait_until

pytestmark = pytest.mark.timeout(90)

Z1: dict[str, Any] = {"all": False, "zones": ["z1"], "nodes": []}
BOTH: dict[str, Any] = {"all": False, "zones": ["z2"], "nodes": ["n1"]}


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    ward = make_ward(f"sqlite:///{tmp_path / 'ward.db'}", duration_ms=2000)
    with ward.session() as s:  # bulletin 2: a draft (airs only as an emergency, by someone who may)
        b = Bulletin(title="Bão", text="Bão số 9.", voice="vi", audio_sha256="a" * 64, approval="draft")
        s.add(b)
        s.flush()
        add_user(s, "op_a", "operator", b.org_unit_id)
        s.commit()
    yield ward
    ward.dispose()


def slot(sid: int, *, created_by: str = "op", **kw: Any) -> Slot:
    now = now_ms()
    fields: dict[str, Any] = {"schedule_id": sid, "slot_ms": now + 60_000, "now_ms": now, "bulletin_id": 1,
                              "relay": None, "targets": Z1, "priority": None, "repeat": 1, "interval_s": 0,
                              "valid_for_s": None, "created_by": created_by, **kw}
    return Slot(**fields)


def mix(base: int) -> list[Slot]:
    """Approved slots (one spaced, one to a zone and a unit), a refused target, an undecided
    bulletin as an emergency by one who may and one who may not, and a rejected-at-the-rule one."""
    return [slot(base), slot(base + 1, repeat=2, interval_s=60), slot(base + 2, targets=BOTH),
            slot(base + 3, targets={"zones": ["nope"]}),
            slot(base + 4, bulletin_id=2, priority="emergency", created_by="op_a"),
            slot(base + 5, bulletin_id=2, priority="emergency", created_by="gone_user"),
            slot(base + 6, bulletin_id=2)]


def shape(s: Session, aired: Aired) -> list[tuple[Any, ...]]:
    """What a slot made, without ids and instants: each broadcast's row and its units' rows."""
    out: list[tuple[Any, ...]] = []
    for bid, _ in aired.broadcasts:
        bc = s.get(Broadcast, bid)
        assert bc is not None
        ds = s.exec(select(Delivery).where(Delivery.broadcast_id == bid)).all()
        q = select(DeliveryEvent).where(col(DeliveryEvent.delivery_id).in_([d.id for d in ds]))
        events = s.exec(q).all()
        out.append((bc.bulletin_id, bc.audio_sha256, bc.priority, bc.status, bc.reason, bc.targets, bc.scopes,
                    bc.repeat, bc.play_at is not None, bc.expires_at - bc.air_at > 0, bc.sent_at,
                    bc.finished_at, bc.created_by.split(" (")[1],
                    sorted((d.node_id, d.state, d.reason) for d in ds),
                    sorted((e.state, e.reason) for e in events)))
    return out


def test_air_many_makes_what_air_makes_slot_by_slot(db: Database) -> None:
    one: list[Aired] = []
    with session(db) as s:
        for sl in mix(10):
            one.append(airer().air(s, sl, lambda _ids: None))
            s.commit()
    with session(db) as s:
        many = airer().air_many(s, mix(20))
        s.commit()
    assert [bool(a.failure) for a in many] == [False, False, False, True, False, True, True]
    assert [a.failure for a in many] == [a.failure for a in one]  # the same refusals, word for word
    with session(db) as s:
        assert [shape(s, a) for a in many] == [shape(s, a) for a in one]
        assert [len(a.broadcasts) for a in many] == [1, 2, 1, 0, 1, 0, 0]
        entries = list(s.exec(select(AuditEntry).order_by(col(AuditEntry.id))).all())
    audit = sorted((a.action, a.username) for a in entries if a.action != "schedule_fired")
    assert audit == [("emergency_bypass", "op_a")] * 2 + [("emergency_bypass_refused", "gone_user")] * 2
    fired = [(a.username, a.target, json.loads(a.detail)) for a in entries if a.action == "schedule_fired"]
    outcome = [(u, d["outcome"], d.get("reason"), d["broadcasts"], d.get("title")) for u, _, d in fired]
    assert len(fired) == 14 and outcome[:7] == outcome[7:]  # one entry per slot, the same either way
    assert [o[1] for o in outcome[7:]] == ["failed" if a.failure else "aired" for a in many]


def test_air_many_commits_nothing_itself(db: Database) -> None:
    with Session(db.engine) as s:
        assert all(not a.failure for a in airer().air_many(s, [slot(1), slot(2)]))
        s.rollback()
    with session(db) as s:
        assert s.exec(select(Broadcast)).all() == [] and s.exec(select(Delivery)).all() == []


async def test_a_burst_through_the_runner_airs_each_slot_once_in_order(db: Database) -> None:
    url = str(db.engine.url)
    at = in_s(5)
    ids = [once(db, at, target={"zones": ["z1" if k % 2 else "z2"]}) for k in range(40)]
    sink = Sink()
    svc = runner(url, fast(prepare_s=0), sink=sink, holder="burst")  # APScheduler's round (see test_wheel)
    batches: list[int] = []
    on_batch = svc._on_batch

    def counting(batch: list[tuple[int, int, list[object]]]) -> None:
        batches.append(len(batch))
        on_batch(batch)  # type: ignore[arg-type]

    svc.executor._on_batch = counting  # type: ignore[assignment]
    await svc.start()
    try:
        await wait_until(lambda: svc.leading, 10, "leading")
        for sid in ids:
            svc.changed(sid)
        await wait_until(lambda: len(sink.aired) == len(ids), 30, "every slot handed to delivery")
    finally:
        await svc.stop()
    assert batches == [len(ids)]  # one scheduler round, one batch
    with session(db) as s:
        runs = s.exec(select(ScheduleRun)).all()
        made = {r.schedule_id: r.broadcast_ids for r in runs}
        zones = {b.id: b.targets["zones"] for b in s.exec(select(Broadcast)).all()}
        deliveries = s.exec(select(Delivery)).all()
    assert sorted(made) == ids and {(r.status, r.slot_at) for r in runs} == {("aired", epoch_ms(at))}
    assert [bid for bid, _, _ in sink.aired] == [made[sid][0] for sid in ids]  # slot, then schedule order
    assert [zones[made[sid][0]] for sid in ids] == [["z1" if k % 2 else "z2"] for k in range(40)]
    assert len(deliveries) == 20 * 2 + 20 * 1 and {d.state for d in deliveries} == {"queued"}


@pytest.mark.postgres
def test_the_bulk_rows_on_postgresql(pg_url: str) -> None:
    """The driver-level bulk inserts (controller/airing/delivery_rows.py) on PostgreSQL too: a burst's
    rows and one broadcast's rows, each delivery with its first event."""
    ward = make_ward(pg_url, duration_ms=2000)
    try:
        with session(ward) as s:
            many = airer().air_many(s, [slot(1), slot(2, targets=BOTH)])
            s.commit()
        with session(ward) as s:
            one = airer().air(s, slot(3), lambda _ids: None)
            s.commit()
        with session(ward) as s:
            assert [len(shape(s, a)[0][13]) for a in [*many, one]] == [2, 2, 2]
            events = s.exec(select(DeliveryEvent)).all()
        assert len(events) == 6 and {e.state for e in events} == {"queued"}
    finally:
        ward.dispose()


def plain(base: int) -> list[Slot]:
    """Slots the airer builds ahead: approved (one spaced, one to a zone and a unit), a refused
    target, a draft not aired as an emergency (refused by the rule)."""
    return [slot(base), slot(base + 1, repeat=2, interval_s=60), slot(base + 2, targets=BOTH),
            slot(base + 3, targets={"zones": ["nope"]}), slot(base + 4, bulletin_id=2)]


def test_prepared_slots_write_what_air_many_writes(db: Database) -> None:
    with session(db) as s:
        many = airer().air_many(s, plain(10))
        s.commit()
    with session(db) as s:
        assert airer().prepare_many(s, mix(30)) is None  # an emergency bypass: judged at the instant
        built = airer().prepare_many(s, plain(20))
        assert built is not None
    with session(db) as s:
        before = len(s.exec(select(Broadcast)).all())
        assert before == 4 and len(s.exec(select(AuditEntry)).all()) == 5  # building wrote nothing
        assert built.current(s)
        at = now_ms()
        written = built.write(s, at)
        s.commit()
    assert [a.failure for a in written] == [a.failure for a in many]  # the same refusals, word for word
    assert {t for a in written for _, t in a.broadcasts} == {at}  # stamped with the instant
    with session(db) as s:
        assert len(s.exec(select(Broadcast)).all()) == before + 4
        assert [shape(s, a) for a in written] == [shape(s, a) for a in many]
        entries = s.exec(select(AuditEntry).order_by(col(AuditEntry.id))).all()
        fired = [json.loads(e.detail) for e in entries if e.action == "schedule_fired"]
    assert [(d["outcome"], d.get("reason")) for d in fired[5:]] == [(d["outcome"], d.get("reason"))
                                                                    for d in fired[:5]]


def test_prepared_slots_are_not_current_once_their_bulletin_changed(db: Database) -> None:
    with session(db) as s:
        built = airer().prepare_many(s, plain(40)[:1])
    assert built is not None
    with session(db) as s:
        b = s.get(Bulletin, 1)
        assert b is not None and built.current(s)
        b.approval = "rejected"
        s.add(b)
        s.commit()
    with session(db) as s:
        assert not built.current(s)


@pytest.mark.postgres
def test_prepared_rows_on_postgresql(pg_url: str) -> None:
    """The prepared batch's driver-level writes (JSON columns as text, first events by INSERT …
    SELECT of these broadcasts' deliveries) on PostgreSQL."""
    ward = make_ward(pg_url, duration_ms=2000)
    try:
        with session(ward) as s:
            built = airer().prepare_many(s, [slot(1), slot(2, targets=BOTH)])
        assert built is not None
        with session(ward) as s:
            assert built.current(s)
            written = built.write(s, now_ms())
            s.commit()
        with session(ward) as s:
            assert [len(shape(s, a)[0][13]) for a in written] == [2, 2]
            assert [shape(s, a)[0][5] for a in written] == [Z1, BOTH]
            events = s.exec(select(DeliveryEvent)).all()
        assert len(events) == 4 and {e.state for e in events} == {"queued"}
    finally:
        ward.dispose()
