"""Delivery without a broker: DeliveryService, AirControl and Presence on a FakeUnitBus, SQLite in
tmp_path. The units' side is played by hand (heartbeats, acks, repair requests), and each test
checks what went out on the bus and what the database says afterwards."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import select

from controller.airing.aircontrol import AirControl
from controller.airing.broadcasts import create_broadcast
from controller.airing.delivery import DeliveryService
from controller.airing.models import Broadcast, Delivery, DeliveryEvent
from controller.airing.ownership import Ownership
from controller.airing.settings import DeliverySettings
from controller.bulletins.models import Bulletin
from controller.bulletins.render import store_audio
from controller.core.audiostore import DbAudioStore
from controller.core.db import Database
from controller.core.writer import DbWriter
from controller.fleet.models import Node, NodeZone, Zone
from controller.fleet.presence import Presence
from devices import protocol as p
from tests.fakes import FakeUnitBus, until

pytestmark = pytest.mark.timeout(60)

AUDIO = bytes(range(256)) * 40  # 10 KiB: 3 chunks of 4 KiB (not real MP3: nothing decodes it here)
ZONE = p.AudioScope(kind="group", id="z")


@dataclass
class Ward:
    bus: FakeUnitBus
    db: Database
    writer: DbWriter
    presence: Presence
    air: AirControl
    delivery: DeliveryService
    bulletin_id: int

    def broadcast(self, *, zones: list[str] | None = None, nodes: list[str] | None = None,
                  valid_s: int = 3600) -> str:
        with self.db.session() as s:
            bc = create_broadcast(s, bulletin_id=self.bulletin_id, all_nodes=False, zones=zones or [],
                                  nodes=nodes or [], priority=None, air_at=None, valid_s=valid_s, repeat=1,
                                  created_by="test")
            return bc.id

    def status(self, bid: str) -> str:
        with self.db.session() as s:
            bc = s.get(Broadcast, bid)
            assert bc is not None
            return bc.status

    def states(self, bid: str) -> dict[str, str]:
        with self.db.session() as s:
            return {d.node_id: d.state for d in s.exec(select(Delivery).where(Delivery.broadcast_id == bid))}

    def history(self, bid: str, node_id: str) -> list[str]:
        with self.db.session() as s:
            q = select(Delivery).where(Delivery.broadcast_id == bid, Delivery.node_id == node_id)
            d = s.exec(q).one()
            events = s.exec(select(DeliveryEvent).where(DeliveryEvent.delivery_id == d.id)
                            .order_by(DeliveryEvent.id)).all()  # type: ignore[arg-type]
            return [e.state for e in events]


def seed(db: Database, audio_dir: Path, units: dict[str, str]) -> int:
    """Zones and units (unit → zone) and one approved bulletin with AUDIO; the bulletin's id."""
    sha = hashlib.sha256(AUDIO).hexdigest()
    with db.session() as s:
        for zone in sorted(set(units.values())):
            s.add(Zone(id=zone, name=zone))
        for node_id in units:
            s.add(Node(id=node_id))
        s.flush()
        for node_id, zone in units.items():
            s.add(NodeZone(node_id=node_id, zone_id=zone))
        store_audio(s, DbAudioStore(db, audio_dir), data=AUDIO, sha256=sha, codec="mp3", duration_ms=3000,
                    sample_rate=22050, bitrate_kbps=32, engine="test", voice="test")
        b = Bulletin(title="Tiêm phòng", text="Sáng mai tiêm phòng.", voice="test", audio_sha256=sha,
                     approval="approved", approved_sha256=sha)
        s.add(b)
        s.commit()
        assert b.id is not None
        return b.id


@asynccontextmanager
async def running_ward(tmp_path: Path, settings: DeliverySettings, **air: Any) -> AsyncIterator[Ward]:
    """Delivery and air control (``air``: AirControl's options) on a fake bus and SQLite: three
    units, z-1 and z-2 in zone z, y-1 in zone y, and one approved bulletin."""
    db = Database(f"sqlite:///{tmp_path / 'ward.db'}")
    db.migrate()
    bulletin_id = seed(db, tmp_path / "audio", {"z-1": "z", "z-2": "z", "y-1": "y"})
    bus = FakeUnitBus()
    writer = DbWriter(db, interval=0.02)
    presence = Presence(bus, writer)
    with db.session() as s:
        presence.load(s)
    control = AirControl(bus, presence.groups_of, margin_ms=0, **air)
    delivery = DeliveryService(db, writer, bus, presence, settings, DbAudioStore(db, tmp_path / "audio"),
                               control, Ownership(db.engine, "test", settings.owner_ttl_s))
    writer.start()
    await delivery.start()
    control.start()
    try:
        yield Ward(bus, db, writer, presence, control, delivery, bulletin_id)
    finally:
        await control.stop()
        await delivery.stop()
        await writer.stop()
        db.dispose()


@pytest.fixture
async def ward(tmp_path: Path) -> AsyncIterator[Ward]:
    settings = DeliverySettings(chunk_size=4096, sweep_s=0.05, resend_after_s=0.2, max_resends=1)  # type: ignore[call-arg]
    async with running_ward(tmp_path, settings, ready_wait_s=30) as w:
        yield w


async def test_published_once_per_scope_then_each_unit_is_followed_to_played(ward: Ward) -> None:
    for n in ("z-1", "z-2", "y-1"):
        ward.bus.heartbeat(n)
    bid = ward.broadcast(zones=["z"])
    await ward.delivery.air(bid)

    [manifest] = ward.bus.on_topic(f"/bcast/{bid}/manifest")
    assert manifest.topic == ward.bus.topics.manifest(ZONE, bid) and manifest.retain and manifest.qos == 1
    m = p.decode(p.Manifest, manifest.payload)
    assert m.bc == bid and m.hold and m.audio.sha256 == hashlib.sha256(AUDIO).hexdigest()
    chunks = ward.bus.on_topic(f"/bcast/{bid}/data")
    assert [c.topic for c in chunks] == [ward.bus.topics.data(ZONE, bid)] * 3  # the zone's topic, once
    assert b"".join(p.parse_chunk(c.payload).data for c in chunks) == AUDIO
    assert ward.bus.sent("play") == []  # held until the units have verified the audio

    for n in ("z-1", "z-2"):
        ward.bus.ack(n, bid, p.AckState.RECEIVING)
        ward.bus.ack(n, bid, p.AckState.VERIFIED)
    [play] = ward.bus.sent("play")  # both ready: one start, on the zone's topic
    assert play.scopes == (ZONE,) and play.args["bc"] == bid
    for n in ("z-1", "z-2"):
        ward.bus.ack(n, bid, p.AckState.PLAYING)
        ward.bus.ack(n, bid, p.AckState.PLAYED)
        ward.bus.ack(n, bid, p.AckState.VERIFIED)  # late and reordered: ignored
    await until(lambda: ward.status(bid) == "done", "the broadcast done in the database")
    assert ward.states(bid) == {"z-1": "played", "z-2": "played"}  # y-1 was not targeted
    assert ward.history(bid, "z-1") == ["queued", "sent", "receiving", "verified", "playing", "played"]
    withdrawn = ward.bus.on_topic(f"/bcast/{bid}/manifest")[-1]
    assert withdrawn.payload == b"" and withdrawn.retain  # the retained manifest is cleared
    assert not ward.air.airing(bid) and ward.delivery.active_count() == 0


async def test_a_start_learnt_late_is_recorded_when_the_unit_says_it_began(ward: Ward) -> None:
    """A unit's ``started_at`` (a controller that took the broadcast over after its units had started
    on the previous owner's play hears of the start only then): the ``playing`` event is dated when it
    began, not when it was heard; ``played`` alone, with it, records the start too. A date beyond
    now is taken as now; without one, the arrival counts."""
    for n in ("z-1", "z-2", "y-1"):
        ward.bus.heartbeat(n)
    bid = ward.broadcast(zones=["z", "y"])
    await ward.delivery.air(bid)
    for n in ("z-1", "z-2", "y-1"):
        ward.bus.ack(n, bid, p.AckState.VERIFIED)
    began, heard = p.now_ms() - 7_000, p.now_ms()
    ward.bus.ack("z-1", bid, p.AckState.PLAYING, started_at=began)
    ward.bus.ack("z-2", bid, p.AckState.PLAYED, started_at=began)
    ward.bus.ack("y-1", bid, p.AckState.PLAYING, started_at=heard + 3_600_000)
    for n in ("z-1", "y-1"):
        ward.bus.ack(n, bid, p.AckState.PLAYED)
    await until(lambda: ward.status(bid) == "done", "the broadcast done in the database")
    with ward.db.session() as s:
        playing = {d.node_id: e.at for e, d in s.exec(select(DeliveryEvent, Delivery).join(Delivery).where(
            Delivery.broadcast_id == bid, DeliveryEvent.state == "playing"))}
    assert playing["z-1"] == playing["z-2"] == began, playing
    assert heard <= playing["y-1"] <= p.now_ms(), playing
    assert ward.history(bid, "z-2")[-2:] == ["playing", "played"]


async def test_an_offline_unit_gets_it_when_back_and_a_silent_one_expires(ward: Ward) -> None:
    ward.bus.heartbeat("z-1")  # z-2 never heard of
    bid = ward.broadcast(zones=["z"], valid_s=4)  # long enough for the steps below on a busy machine
    await ward.delivery.air(bid)
    await until(lambda: ward.states(bid) == {"z-1": "sent", "z-2": "offline"}, "z-1 sent, z-2 offline")

    ward.bus.heartbeat("z-2")  # back online within validity
    await until(lambda: ward.states(bid)["z-2"] == "sent", "z-2 sent once back")
    assert ward.history(bid, "z-2") == ["queued", "offline", "sent"]
    await until(lambda: len(ward.bus.on_topic(f"/bcast/{bid}/manifest")) >= 2, "a re-offer to a silent unit")
    reoffers = [m.topic for m in ward.bus.on_topic(f"/bcast/{bid}/manifest")[1:]]
    assert set(reoffers) <= {ward.bus.topics.manifest(p.AudioScope(kind="node", id=n), bid)
                             for n in ("z-1", "z-2")}

    ward.bus.ack("z-1", bid, p.AckState.PLAYED)
    await until(lambda: ward.status(bid) == "expired", "the broadcast expired", timeout_s=20)
    assert ward.states(bid) == {"z-1": "played", "z-2": "expired"}


async def test_repairs_go_to_the_unit_that_asked_within_its_budget(ward: Ward) -> None:
    ward.bus.heartbeat("z-1")
    bid = ward.broadcast(nodes=["z-1"])
    await ward.delivery.air(bid)
    data_topic = ward.bus.topics.data(p.AudioScope(kind="node", id="z-1"), bid)
    before = len(ward.bus.on_topic(f"/bcast/{bid}/data"))

    ward.bus.deliver("repair", "z-1", p.RepairRequest(node_id="z-1", bc=bid, missing=[2, 0, 2, 99]))
    await until(lambda: not ward.delivery.repairs.gathering(), "the repair sent (gathered 50 ms)")
    repaired = ward.bus.on_topic(f"/bcast/{bid}/data")[before:]
    assert [(m.topic, p.parse_chunk(m.payload).index) for m in repaired] == [(data_topic, 0), (data_topic, 2)]
    await until(lambda: ward.states(bid)["z-1"] == "receiving", "z-1 receiving (repairing)")

    for _ in range(10):  # asks for everything again and again: 4 × the chunks at most
        ward.bus.deliver("repair", "z-1", p.RepairRequest(node_id="z-1", bc=bid, missing=[0, 1, 2]))
    await until(lambda: not ward.delivery.repairs.gathering(), "the repairs sent")
    # gathered into one ask, 0 and 2 still on their way: only 1 goes out (the budget, 4 × the chunks
    # a minute, is spent on what is sent: tests/controller/test_repairs_fake.py)
    assert len(ward.bus.on_topic(f"/bcast/{bid}/data")) - before == 3
    assert ward.delivery.repairs.stats.chunks_held == 2 and ward.delivery.repairs.stats.over_budget == 0
    ward.bus.deliver("repair", "y-1", p.RepairRequest(node_id="y-1", bc=bid, missing=[0]))  # not its
    assert ward.delivery.ignored_acks == 1


async def test_cancel_ends_every_delivery_and_tells_the_units(ward: Ward) -> None:
    for n in ("z-1", "z-2"):
        ward.bus.heartbeat(n)
    bid = ward.broadcast(zones=["z"])
    await ward.delivery.air(bid)
    ward.bus.ack("z-1", bid, p.AckState.PLAYED)
    assert ward.delivery.cancel(bid, "wrong bulletin")
    [cancel] = ward.bus.sent("cancel")
    assert cancel.scopes == (ZONE,) and cancel.args == {"bc": bid}
    await until(lambda: ward.status(bid) == "cancelled", "the broadcast cancelled")
    assert ward.states(bid) == {"z-1": "played", "z-2": "cancelled"}
    assert not ward.delivery.cancel(bid)  # once


async def test_nothing_is_published_while_the_link_is_down_and_all_of_it_once_it_is_up(ward: Ward) -> None:
    ward.bus.heartbeat("z-1")
    ward.bus.disconnect()
    bid = ward.broadcast(nodes=["z-1"])
    await ward.delivery.air(bid)
    assert ward.bus.published == [] and ward.status(bid) == "sending"
    await ward.bus.connect()
    await until(lambda: len(ward.bus.on_topic(f"/bcast/{bid}/data")) == 3, "the chunks once connected")
    await until(lambda: ward.status(bid) == "active", "the broadcast active")


def _birth(ward: Ward, node_id: str, ts: int) -> None:
    ward.bus.deliver("state", node_id, p.NodeState(ts=ts, node_id=node_id, status=p.NodeStatus.ONLINE,
                                                   session="fake0001"))


async def test_a_unit_that_reconnected_while_online_gets_what_it_lacks_at_once(ward: Ward) -> None:
    """A unit whose broker node died moves to another one before its last-will is seen: presence
    never sees it offline, only a new birth. What was sent to it meanwhile is lost, not queued, so
    its request for every chunk is answered at once — not held as maybe still queued (issue 16:
    7 of 10 units of a killed NATS node stayed "not_ready: 0/2 chunks" while their zone aired)."""
    for n in ("z-1", "z-2"):
        _birth(ward, n, ts=1_000)
    bid = ward.broadcast(zones=["z"])
    await ward.delivery.air(bid)
    before = len(ward.bus.on_topic(f"/bcast/{bid}/data"))

    def repaired() -> list[tuple[str, int]]:
        sent = ward.bus.on_topic(f"/bcast/{bid}/data")[before:]
        return [(m.topic, p.parse_chunk(m.payload).index) for m in sent]

    ward.bus.deliver("repair", "z-1", p.RepairRequest(node_id="z-1", bc=bid, missing=[0, 1, 2]))
    await until(lambda: ward.delivery.repairs.stats.chunks_queued == 3, "z-1's first ask held as queued")
    _birth(ward, "z-2", ts=1_000)  # the retained birth again (our resubscription): no reconnect
    ward.bus.deliver("repair", "z-2", p.RepairRequest(node_id="z-2", bc=bid, missing=[0, 1, 2]))
    await until(lambda: ward.delivery.repairs.stats.chunks_queued == 6, "z-2's ask held as queued")
    assert repaired() == []

    offers = len(ward.bus.on_topic(f"/bcast/{bid}/manifest"))
    _birth(ward, "z-1", ts=2_000)  # a new birth while online: it reconnected
    assert ward.presence.is_online("z-1")
    [offer] = ward.bus.on_topic(f"/bcast/{bid}/manifest")[offers:]  # the manifest again, to it alone
    assert offer.topic == ward.bus.topics.manifest(p.AudioScope(kind="node", id="z-1"), bid)
    ward.bus.deliver("repair", "z-1", p.RepairRequest(node_id="z-1", bc=bid, missing=[0, 1, 2]))
    await until(lambda: len(repaired()) == 3, "every chunk re-sent to z-1")
    own = ward.bus.topics.data(p.AudioScope(kind="node", id="z-1"), bid)
    assert repaired() == [(own, 0), (own, 1), (own, 2)] and ward.delivery.repairs.stats.chunks_queued == 6


async def test_after_the_controllers_own_link_came_back_units_asks_are_not_held(ward: Ward) -> None:
    """The controller's own broker node died (issue 16, the [controller] case of the NATS test):
    what its units said while its link was down (verified acks, repair requests) may be lost, so
    once it is back every unfinished unit counts as rejoined — a request for every chunk is
    answered at once, not held as maybe still queued — and its re-offers start anew."""
    for n in ("z-1", "z-2"):
        _birth(ward, n, ts=1_000)
    bid = ward.broadcast(zones=["z"])
    await ward.delivery.air(bid)
    before = len(ward.bus.on_topic(f"/bcast/{bid}/data"))
    ward.bus.deliver("repair", "z-1", p.RepairRequest(node_id="z-1", bc=bid, missing=[0, 1, 2]))
    await until(lambda: ward.delivery.repairs.stats.chunks_queued == 3, "z-1's ask held as maybe queued")
    ward.bus.ack("z-2", bid, p.AckState.FAILED, "stopped")  # final, and still short of half verified
    await until(lambda: ward.delivery.active[bid].nodes["z-2"].state.final, "z-2 final")
    active = ward.delivery.active[bid]
    active.nodes["z-1"].resends = ward.delivery.settings.max_resends  # its re-offers were spent

    ward.bus.disconnect()
    await ward.bus.connect()  # the controller's link is back
    nd = active.nodes["z-1"]
    assert nd.rejoined and nd.resends == 0 and not active.nodes["z-2"].rejoined  # (z-2 is final)
    ward.bus.deliver("repair", "z-1", p.RepairRequest(node_id="z-1", bc=bid, missing=[0, 1, 2]))
    await until(lambda: len(ward.bus.on_topic(f"/bcast/{bid}/data")) - before == 3, "every chunk re-sent")
    assert ward.delivery.repairs.stats.chunks_queued == 3  # nothing more held
