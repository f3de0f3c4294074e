"""What staff see of a broadcast (controller/airing/summary.py) and ending the waiting for offline
units (DeliveryService.end_waiting), without a broker: the Ward of test_delivery_fake (FakeUnitBus,
SQLite in tmp_path). Each test says what the summary and the rows must say afterwards."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest
from sqlmodel import select

from controller.airing.aircontrol import AirControl
from controller.airing.delivery import DeliveryService
from controller.airing.models import Broadcast, BroadcastStatus, Delivery
from controller.airing.ownership import Ownership
from controller.airing.settings import DeliverySettings
from controller.airing.summary import ENDED_BY_OPERATOR, DeliveryRow, Summary, clock, online_from, summarize
from controller.core.audiostore import DbAudioStore
from controller.core.writer import DbWriter
from controller.fleet.presence import Presence
from devices import protocol as p
from scheduler import TIMEZONE
from tests.controller.test_delivery_fake import Ward, ward  # noqa: F401  (the fixture)
from tests.fakes import FakeUnitBus, until

pytestmark = pytest.mark.timeout(90)


def summary_of(w: Ward, bid: str) -> Summary:
    with w.db.session() as s:
        bc = s.get(Broadcast, bid)
        assert bc is not None
        rows = [DeliveryRow(d.node_id, d.state, d.reason)
                for d in s.exec(select(Delivery).where(Delivery.broadcast_id == bid))]
        return summarize(bc, rows, w.presence.is_online, p.now_ms())


def reasons(w: Ward, bid: str) -> dict[str, tuple[str, str]]:
    with w.db.session() as s:
        return {d.node_id: (d.state, d.reason)
                for d in s.exec(select(Delivery).where(Delivery.broadcast_id == bid))}


async def test_an_offline_unit_is_waited_for_until_an_operator_ends_the_waiting(ward: Ward) -> None:  # noqa: F811
    ward.bus.heartbeat("z-1")  # z-2 offline (never heard of)
    bid = ward.broadcast(zones=["z"])
    await ward.delivery.air(bid)
    await until(lambda: ward.states(bid) == {"z-1": "sent", "z-2": "offline"}, "z-1 sent, z-2 offline")
    assert summary_of(ward, bid).state == "airing"

    ward.bus.ack("z-1", bid, p.AckState.VERIFIED)
    ward.bus.ack("z-1", bid, p.AckState.PLAYING)
    ward.bus.ack("z-1", bid, p.AckState.PLAYED)
    await until(lambda: ward.states(bid)["z-1"] == "played", "z-1 played")
    sm = summary_of(ward, bid)
    with ward.db.session() as s:
        bc = s.get(Broadcast, bid)
        assert bc is not None and bc.status == BroadcastStatus.ACTIVE.value  # z-2 is still waited for
        expires = bc.expires_at
    at = clock(expires, p.now_ms())
    assert sm.state == "waiting" and sm.waiting_until == expires and sm.waiting_nodes == ["z-2"]
    assert sm.groups == {"played": 1, "playing": 0, "ready": 0, "receiving": 0, "waiting_offline": 1,
                         "ended_by_operator": 0, "not_played": 0}
    assert sm.counts["played"] == 1 and sm.counts["offline"] == 1 and sm.counts["sent"] == 0
    assert sm.text_vi == f"Đã phát xong ở 1/2 cụm loa, 1 cụm mất kết nối — sẽ phát khi kết nối lại đến {at}"
    assert sm.text_en == f"Aired on 1/2 units, 1 offline — they play when they reconnect, until {at}"

    published, plays = len(ward.bus.published), len(ward.bus.sent("play"))
    assert ward.delivery.end_waiting(bid) == ["z-2"]
    await until(lambda: ward.status(bid) == "done", "the broadcast done once nothing is waited for")
    assert reasons(ward, bid) == {"z-1": ("played", ""), "z-2": ("cancelled", ENDED_BY_OPERATOR)}
    assert ward.history(bid, "z-2") == ["queued", "offline", "cancelled"]
    after = ward.bus.published[published:]
    assert [m.payload for m in after] == [b""] and after[0].retain  # only the manifest withdrawn
    assert ward.bus.sent("cancel") == [] and ward.delivery.active_count() == 0
    sm = summary_of(ward, bid)
    assert sm.state == "partly_aired" and sm.waiting_until is None
    assert sm.text_vi == "Đã phát xong một phần: 1 loa đã phát, 1 loa thôi chờ (người vận hành kết thúc)"

    ward.bus.heartbeat("z-2")  # back now: nothing more for it
    ward.bus.ack("z-2", bid, p.AckState.VERIFIED)
    await until(lambda: ward.presence.is_online("z-2"), "z-2 online")
    assert len(ward.bus.published) == published + 1 and len(ward.bus.sent("play")) == plays
    assert reasons(ward, bid)["z-2"] == ("cancelled", ENDED_BY_OPERATOR)
    assert ward.delivery.end_waiting(bid) is None  # no longer on its way


async def test_end_waiting_leaves_online_units_on_their_way(ward: Ward) -> None:  # noqa: F811
    ward.bus.heartbeat("z-1")
    bid = ward.broadcast(zones=["z"])
    await ward.delivery.air(bid)
    await until(lambda: ward.states(bid) == {"z-1": "sent", "z-2": "offline"}, "z-1 sent, z-2 offline")
    assert ward.delivery.end_waiting(bid) == ["z-2"]
    await until(lambda: ward.states(bid)["z-2"] == "cancelled", "z-2 ended")
    assert ward.status(bid) == "active" and summary_of(ward, bid).state == "airing"  # z-1 still going
    assert ward.delivery.end_waiting(bid) == []  # nobody else to stop waiting for
    ward.bus.ack("z-1", bid, p.AckState.PLAYED)
    await until(lambda: ward.status(bid) == "done", "done the instant z-1 is final")


async def test_done_as_soon_as_every_unit_is_final_and_aired_says_so(ward: Ward) -> None:  # noqa: F811
    for n in ("z-1", "z-2"):
        ward.bus.heartbeat(n)
    bid = ward.broadcast(zones=["z"])  # valid an hour: nothing may wait for a timer
    await ward.delivery.air(bid)
    for n in ("z-1", "z-2"):
        ward.bus.ack(n, bid, p.AckState.VERIFIED)
        ward.bus.ack(n, bid, p.AckState.PLAYED)
    await until(lambda: ward.status(bid) == "done", "done once both units played", timeout_s=30)
    sm = summary_of(ward, bid)
    assert sm.state == "aired" and sm.text_vi == "Đã phát xong: 2 loa đã phát"
    assert sm.text_en == "Aired: 2 played" and sm.waiting_until is None and sm.waiting_nodes == []


def test_summary_of_rows_states_and_a_unit_offline_behind_a_sent_row() -> None:
    now = int(datetime(2026, 12, 2, 8, 0, tzinfo=TIMEZONE).timestamp() * 1000)
    bc = Broadcast(id="b", bulletin_id=1, audio_sha256="x", status="active", air_at=now,
                   expires_at=now + 3_840_000, created_at=now)  # 09:04 ward time
    rows = [DeliveryRow(f"n{i}", "played") for i in range(4)] + [DeliveryRow("n9", "sent")]
    sm = summarize(bc, rows, lambda n: n != "n9", now)  # n9 went offline after its send
    assert sm.state == "waiting" and sm.waiting_nodes == ["n9"]
    assert sm.text_vi == "Đã phát xong ở 4/5 cụm loa, 1 cụm mất kết nối — sẽ phát khi kết nối lại đến 09:04"
    assert sm.text_en == "Aired on 4/5 units, 1 offline — they play when they reconnect, until 09:04"
    rows[0] = DeliveryRow("n0", "failed")  # one that will not play is said after
    sm = summarize(bc, rows, lambda n: n != "n9", now)
    assert sm.text_vi == ("Đã phát xong ở 3/5 cụm loa, 1 cụm mất kết nối — sẽ phát khi kết nối lại đến "
                          "09:04; 1 cụm không phát được")
    sm = summarize(bc, [DeliveryRow("n9", "sent")], lambda n: False, now)
    assert sm.text_vi == ("Chưa phát ở cụm loa nào (0/1), 1 cụm mất kết nối — sẽ phát khi kết nối lại "
                          "đến 09:04")
    rows[0] = DeliveryRow("n0", "played")
    assert summarize(bc, rows, lambda n: True, now).state == "airing"
    bc.status = "scheduled"
    bc.play_at = now + 86_400_000
    sm = summarize(bc, [DeliveryRow("n1", "queued")], lambda n: True, now)
    assert (sm.state, sm.text_vi, sm.text_en) == ("scheduled", "Chờ đến giờ phát 08:00 03/12",
                                                  "Scheduled for 08:00 03/12")
    bc.status = "expired"
    sm = summarize(bc, [DeliveryRow("n1", "expired"), DeliveryRow("n2", "failed")], lambda n: True, now)
    assert sm.state == "not_aired" and sm.text_en == "Not aired: 2 not played"


def test_summary_before_and_while_it_sounds() -> None:
    now = int(datetime(2026, 12, 2, 16, 55, tzinfo=TIMEZONE).timestamp() * 1000)
    bc = Broadcast(id="b", bulletin_id=1, audio_sha256="x", status="active", air_at=now - 60_000,
                   play_at=now + 300_000, expires_at=now + 3_600_000, created_at=now)  # plays at 17:00
    rows = [DeliveryRow("n1", "verified"), DeliveryRow("n2", "verified"), DeliveryRow("n3", "receiving"),
            DeliveryRow("n4", "offline")]
    sm = summarize(bc, rows, lambda n: n != "n4", now)  # pre-delivered ahead of 17:00: nothing sounds yet
    assert sm.state == "ready"
    assert sm.text_vi == ("Chờ đến giờ phát 17:00: 2 loa đã nhận, chờ phát, 1 loa đang nhận, "
                          "1 loa đang chờ (mất kết nối) đến 17:55")
    assert sm.text_en == "Due at 17:00: 2 ready to play, 1 receiving, 1 waiting offline until 17:55"
    rows[0] = DeliveryRow("n1", "playing")
    sm = summarize(bc, rows, lambda n: n != "n4", now + 301_000)
    assert sm.state == "airing" and sm.groups["playing"] == 1 and sm.groups["ready"] == 1
    assert sm.text_vi.startswith("Đang phát: 1 loa đang phát, 1 loa đã nhận, chờ phát, 1 loa đang nhận")


async def test_a_unit_going_offline_wakes_the_delivery_view(ward: Ward) -> None:  # noqa: F811
    for n in ("z-1", "z-2"):
        ward.bus.heartbeat(n)
    bid = ward.broadcast(zones=["z"])
    await ward.delivery.air(bid)
    await until(lambda: ward.states(bid) == {"z-1": "sent", "z-2": "sent"}, "both sent")
    woken: list[str] = []
    ward.delivery.add_listener(woken.append)
    will = p.NodeState(node_id="z-2", status=p.NodeStatus.OFFLINE, session="fake0001")  # its last-will
    ward.bus.deliver("state", "z-2", will)
    assert woken == [bid]  # no delivery changed, but what staff see did
    assert summary_of(ward, bid).groups["waiting_offline"] == 1 and ward.states(bid)["z-2"] == "sent"


def test_only_a_unit_known_offline_is_waited_for() -> None:
    now = int(datetime(2026, 12, 2, 8, 0, tzinfo=TIMEZONE).timestamp() * 1000)
    bc = Broadcast(id="b", bulletin_id=1, audio_sha256="x", status="active", air_at=now,
                   expires_at=now + 3_840_000, created_at=now)
    rows = [DeliveryRow(n, "sent") for n in "abc"] + [DeliveryRow("d", "offline")]
    status = {"a": "online", "b": "offline", "c": "shutdown", "d": "unknown"}
    sm = summarize(bc, rows, online_from(status.__getitem__), now)
    assert sm.waiting_nodes == ["b", "c", "d"]  # d: its row says offline
    no_link = online_from(lambda n: "unknown")  # the controller's broker link is down: nothing is known
    sm = summarize(bc, rows, no_link, now)
    assert sm.state == "airing" and sm.groups["receiving"] == 3 and sm.waiting_nodes == ["d"]


async def test_restored_with_every_unit_final_it_is_done_at_once(ward: Ward, tmp_path: Path) -> None:  # noqa: F811
    bid = ward.broadcast(zones=["z"])
    with ward.db.session() as s:  # a controller stopped between the last unit's row and the broadcast's
        bc = s.get(Broadcast, bid)
        assert bc is not None
        bc.status = BroadcastStatus.ACTIVE.value
        s.add(bc)
        for d in s.exec(select(Delivery).where(Delivery.broadcast_id == bid)):
            d.state = "played"
            s.add(d)
        s.commit()
    bus = FakeUnitBus(connected=False)
    writer = DbWriter(ward.db, interval=0.02)
    presence = Presence(bus, writer)
    with ward.db.session() as s:
        presence.load(s)
    air = AirControl(bus, presence.groups_of, margin_ms=0, ready_wait_s=30)
    settings = DeliverySettings(chunk_size=4096, sweep_s=0.05)  # type: ignore[call-arg]
    restarted = DeliveryService(ward.db, writer, bus, presence, settings,
                                DbAudioStore(ward.db, tmp_path / "audio"), air,
                                Ownership(ward.db.engine, "test", settings.owner_ttl_s))
    writer.start()
    await restarted.start()  # valid an hour: expiry is far
    try:
        assert restarted.active_count() == 1
        await bus.connect()
        await until(lambda: ward.status(bid) == "done", "done once the link is up, not at expiry")
        assert restarted.active_count() == 0 and summary_of(ward, bid).state == "aired"
    finally:
        await restarted.stop()
        await writer.stop()
