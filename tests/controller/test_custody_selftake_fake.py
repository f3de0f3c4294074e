"""A controller that gives its own broadcast up (its lease belief lapsed: a renewal came late under
load) and takes it back still finishes it (controller/airing/custody.py, delivery's adopt/abandon),
without a broker: DeliveryService, AirControl with the database's zone claims and Presence on a
FakeUnitBus, SQLite in tmp_path, the units played by hand.

The lapse is made as on a loaded machine: a tiny lease (1 s, renewed every 0.25 s) and one
renewal held back before its statement until the guard has given the broadcast up (the CI log of
issue 13: "given up", then "took broadcast over"). At each stage — chunks still being published,
verified before the play, playing — the broadcast must end with every unit final, no unit told to
play twice, and no zone claim left. Two more: a renewal whose statement ran before a claim
committed does not give the new broadcast up ("taken over by another controller" with one
controller), and a broadcast finished here is not taken back while its end is being written."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine

from controller.airing.aircontrol import AirControl
from controller.airing.delivery import DeliveryService
from controller.airing.ownership import Ownership
from controller.airing.settings import DeliverySettings
from controller.airing.zone_claims import DbZoneClaims
from controller.core.audiostore import DbAudioStore
from controller.core.db import Database
from controller.core.feed import NoChanges
from controller.core.writer import DbWriter
from controller.fleet.presence import Presence
from devices import protocol as p
from tests.controller.test_delivery_fake import Ward, seed
from tests.fakes import FakeUnitBus, until

pytestmark = pytest.mark.timeout(90)

V = p.AckState
UNITS = ("z-1", "z-2")
TTL_S = 1.0


class LateOwnership(Ownership):
    """Renewals the test can hold back: ``late`` holds the next one before its statement (the lease
    lapses locally), ``answer_late`` holds the next one after it (its answer comes back late)."""

    def __init__(self, engine: Engine, holder: str, ttl_s: float) -> None:
        super().__init__(engine, holder, ttl_s)
        self.late = threading.Event()
        self.answer_late = threading.Event()
        self.waiting = threading.Event()  # a renewal is held now
        self.go = threading.Event()

    def renew(self) -> set[str]:
        self._hold(self.late)
        mine = super().renew()
        self._hold(self.answer_late)
        return mine

    def _hold(self, flag: threading.Event) -> None:
        if flag.is_set():
            flag.clear()
            self.waiting.set()
            self.go.wait(30)
            self.go.clear()
            self.waiting.clear()


class GatedBus(FakeUnitBus):
    """Chunks wait while ``flowing`` is clear (a publish on its way, as to a slow broker)."""

    def __init__(self) -> None:
        super().__init__()
        self.flowing = asyncio.Event()
        self.flowing.set()

    async def publish(self, topic: str, payload: bytes, *, qos: int = 1, retain: bool = False) -> None:
        if topic.endswith("/data"):
            await self.flowing.wait()
        self.publish_nowait(topic, payload, qos=qos, retain=retain)


@dataclass
class Site:
    ward: Ward
    owner: LateOwnership
    bus: GatedBus


@asynccontextmanager
async def site(tmp_path: Path, *, writer_s: float = 0.02, ttl_s: float = TTL_S) -> AsyncIterator[Site]:
    """A tiny lease by default (the lapse tests); ``ttl_s`` 6 (renewed every 2 s) where only a
    held renewal may be late, even on a loaded machine."""
    renew_s = ttl_s / 4
    settings = DeliverySettings(chunk_size=4096, sweep_s=0.05, resend_after_s=30, owner_ttl_s=ttl_s,  # type: ignore[call-arg]
                                owner_renew_s=renew_s, reconcile_after_ms=500)
    db = Database(f"sqlite:///{tmp_path / 'ward.db'}")
    db.migrate()
    bulletin_id = seed(db, tmp_path / "audio", {"z-1": "z", "z-2": "z", "y-1": "y"})
    bus, writer = GatedBus(), DbWriter(db, interval=writer_s)
    presence = Presence(bus, writer)
    with db.session() as s:
        presence.load(s)
    zones = DbZoneClaims(db.engine, "test", NoChanges(), ttl_s=ttl_s, renew_s=renew_s)
    control = AirControl(bus, presence.groups_of, margin_ms=0, ready_wait_s=30, tick_s=0.02, gate=zones)
    owner = LateOwnership(db.engine, "test", ttl_s)
    delivery = DeliveryService(db, writer, bus, presence, settings, DbAudioStore(db, tmp_path / "audio"),
                               control, owner)
    writer.start()
    await zones.start()
    await delivery.start()
    control.start()
    for n in UNITS:
        bus.heartbeat(n)
    try:
        yield Site(Ward(bus, db, writer, presence, control, delivery, bulletin_id), owner, bus)
    finally:
        owner.go.set()
        await control.stop()
        await delivery.stop()
        await zones.stop()
        await writer.stop()
        db.dispose()


async def lapse_and_take_back(s: Site, bid: str) -> None:
    """One renewal held until the guard gave ``bid`` up; then let through: taken back."""
    custody = s.ward.delivery.custody
    s.owner.late.set()
    await until(lambda: s.owner.waiting.is_set() and custody.stats["abandoned"] >= 1
                and s.ward.delivery.active_count() == 0, "the broadcast given up (the lease lapsed locally)",
                timeout_s=20)
    s.owner.go.set()
    await until(lambda: s.ward.delivery.owns(bid), "the broadcast taken back", timeout_s=20)


def plays_to(bus: FakeUnitBus, bid: str, unit: str) -> int:
    return sum(1 for c in bus.sent("play") if c.args["bc"] == bid
               and any(sc.id in (unit, "z") for sc in c.scopes))


def zone_claims(ward: Ward) -> list[tuple[str, str]]:
    with ward.db.engine.connect() as c:
        return [(str(z), str(i)) for z, i in c.execute(text("SELECT zone, item_id FROM zone_claim"))]


async def played_to_the_end(s: Site, bid: str) -> None:
    """Both units play and finish: the broadcast is done, each unit told to play once, no claim."""
    w = s.ward
    await until(lambda: all(plays_to(w.bus, bid, u) for u in UNITS), "a play to each unit")
    for n in UNITS:
        w.bus.ack(n, bid, V.PLAYING)
        w.bus.ack(n, bid, V.PLAYED)
    await until(lambda: w.status(bid) == "done", "the broadcast done", timeout_s=20)
    assert w.states(bid) == dict.fromkeys(UNITS, "played")
    assert {u: plays_to(w.bus, bid, u) for u in UNITS} == dict.fromkeys(UNITS, 1)
    await until(lambda: zone_claims(w) == [], "its zone claim given back")
    await until(lambda: w.delivery.owner.owner_of(bid) is None, "its owner row gone")


async def test_given_up_while_its_chunks_are_published_it_is_published_again_and_finishes(
        tmp_path: Path) -> None:
    async with site(tmp_path) as s:
        w = s.ward
        bid = w.broadcast(zones=["z"])
        s.bus.flowing.clear()  # the chunks wait in the "broker"
        airing = asyncio.create_task(w.delivery.air(bid))
        await until(lambda: w.bus.on_topic(f"/bcast/{bid}/manifest"), "the manifest out")
        await lapse_and_take_back(s, bid)
        s.bus.flowing.set()
        await airing
        await until(lambda: w.status(bid) == "active", "published (by the broadcast taken back)")
        w.bus.ack("z-1", bid, V.VERIFIED)
        w.bus.deliver("repair", "z-2", p.RepairRequest(node_id="z-2", bc=bid, missing=[1]))
        await until(lambda: w.states(bid)["z-2"] == "receiving", "z-2's repair taken")
        await until(lambda: not w.delivery.repairs.gathering(), "the repair sent")
        w.bus.ack("z-2", bid, V.VERIFIED)
        await played_to_the_end(s, bid)


async def test_given_up_between_verified_and_play_it_plays_once_and_finishes(tmp_path: Path) -> None:
    async with site(tmp_path) as s:
        w = s.ward
        bid = w.broadcast(zones=["z"])
        await w.delivery.air(bid)
        w.bus.ack("z-1", bid, V.VERIFIED)  # z-2 still downloading: no play yet (ready_wait 30 s)
        w.bus.ack("z-2", bid, V.RECEIVING)
        await until(lambda: w.states(bid) == {"z-1": "verified", "z-2": "receiving"}, "the states written")
        assert w.bus.sent("play") == []
        await lapse_and_take_back(s, bid)
        assert w.bus.sent("play") == []
        w.bus.ack("z-2", bid, V.VERIFIED)
        await played_to_the_end(s, bid)


async def test_given_up_while_it_plays_it_is_not_played_again_and_finishes(tmp_path: Path) -> None:
    async with site(tmp_path) as s:
        w = s.ward
        bid = w.broadcast(zones=["z"])
        await w.delivery.air(bid)
        for n in UNITS:
            w.bus.ack(n, bid, V.VERIFIED)
        await until(lambda: w.bus.sent("play"), "the play")
        for n in UNITS:
            w.bus.ack(n, bid, V.PLAYING)
        await until(lambda: w.states(bid) == dict.fromkeys(UNITS, "playing"), "both playing, written")
        await until(lambda: zone_claims(w) == [("z", bid)], "zone z claimed for it")
        await lapse_and_take_back(s, bid)
        await until(lambda: w.delivery.aircontrol.started(bid), "taken back as sounding")
        # its claim given back at the lapse and taken again: the release never lands after the claim
        await until(lambda: zone_claims(w) == [("z", bid)], "zone z claimed for it again")
        for n in UNITS:
            w.bus.ack(n, bid, V.PLAYED)
        await until(lambda: w.status(bid) == "done", "the broadcast done", timeout_s=20)
        assert {u: plays_to(w.bus, bid, u) for u in UNITS} == dict.fromkeys(UNITS, 1)
        await until(lambda: zone_claims(w) == [], "its zone claim given back")


async def test_a_renewal_answered_after_a_claim_does_not_give_the_new_broadcast_up(tmp_path: Path) -> None:
    async with site(tmp_path, ttl_s=6.0) as s:
        w = s.ward
        s.owner.answer_late.set()  # the next renewal has read our rows; its answer is held
        await until(s.owner.waiting.is_set, "a renewal held after its statement")
        bid = w.broadcast(zones=["z"])
        await w.delivery.air(bid)  # claimed (its row committed) after the renewal read our rows
        s.owner.go.set()
        await until(lambda: not s.owner.waiting.is_set(), "the renewal answered")
        for _ in range(3):
            await w.delivery.custody.round()
        assert w.delivery.custody.stats["abandoned"] == 0 and w.delivery.owns(bid)
        for n in UNITS:
            w.bus.ack(n, bid, V.VERIFIED)
        await played_to_the_end(s, bid)


async def test_a_broadcast_finished_here_is_not_taken_back_while_its_end_is_written(tmp_path: Path) -> None:
    async with site(tmp_path, writer_s=3600, ttl_s=6.0) as s:  # the writer flushes only when asked
        w = s.ward
        bid = w.broadcast(zones=["z"])
        await w.delivery.air(bid)
        for n in UNITS:
            w.bus.ack(n, bid, V.VERIFIED)
            w.bus.ack(n, bid, V.PLAYING)
            w.bus.ack(n, bid, V.PLAYED)
        assert w.delivery.active_count() == 0  # finished here; its status not written yet
        withdrawn = len(w.bus.on_topic(f"/bcast/{bid}/manifest"))
        for _ in range(3):
            await w.delivery.custody.round()
        assert w.delivery.custody.stats["taken_over"] == 0 and w.delivery.active_count() == 0
        assert len(w.bus.on_topic(f"/bcast/{bid}/manifest")) == withdrawn  # not offered again
        assert await w.writer.flush()
        assert w.status(bid) == "done" and w.delivery.owner.owner_of(bid) is None
