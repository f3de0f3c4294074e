"""Reconcile without a broker (controller/airing/reconcile.py): DeliveryService, AirControl and
Presence on a FakeUnitBus, SQLite in tmp_path, the units played by hand. A unit whose reports
disagree with what it was told is asked again — a lost ``play``, a lost ``stop``, a lost
``cancel``, a ``play`` that could not go out while the broker was down, a unit verified late —
and every test says what was sent and what the database holds afterwards."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlmodel import select

from controller.airing.active import ActiveBroadcast, NodeDelivery
from controller.airing.aircontrol import AirControl
from controller.airing.audio_out import AudioOut
from controller.airing.broadcasts import create_broadcast
from controller.airing.delivery import DeliveryService
from controller.airing.late import CATCHING_UP, LATE_RETRIES
from controller.airing.models import Broadcast, Delivery, DeliveryState
from controller.airing.ownership import Ownership
from controller.airing.reconcile import Ask, Reconciler, ask_for, next_wait_ms
from controller.airing.settings import DeliverySettings
from controller.airing.turns import Turn
from controller.core.audiostore import DbAudioStore
from controller.fleet.presence import Presence
from devices import protocol as p
from scheduler.arbiter import PreemptPolicy
from tests.controller.test_aircontrol_fake import control
from tests.controller.test_delivery_fake import Ward, running_ward
from tests.fakes import FakeUnitBus, until

pytestmark = pytest.mark.timeout(90)

S = DeliveryState
V = p.AckState
ZONE = p.AudioScope(kind="group", id="z")
MARGIN_MS = 500


def node(n: str) -> p.AudioScope:
    return p.AudioScope(kind="node", id=n)


@pytest.fixture
async def ward(tmp_path: Path) -> AsyncIterator[Ward]:
    settings = DeliverySettings(chunk_size=4096, sweep_s=0.05, resend_after_s=30,  # type: ignore[call-arg]
                                reconcile_after_ms=MARGIN_MS, reconcile_max_wait_s=4)
    async with running_ward(tmp_path, settings, ready_wait_s=0.3, tick_s=0.02) as w:
        for n in ("z-1", "z-2", "y-1"):
            w.bus.heartbeat(n)
        yield w


def plays_to(ward: Ward, scope: p.AudioScope) -> list[dict[str, object]]:
    return [c.args for c in ward.bus.sent("play") if c.scopes == (scope,)]


async def verified(ward: Ward, bid: str, *units: str) -> None:
    for n in units:
        ward.bus.ack(n, bid, V.RECEIVING)
        ward.bus.ack(n, bid, V.VERIFIED)


def reasons_of(ward: Ward, bid: str) -> dict[str, str]:
    with ward.db.session() as s:
        return {d.node_id: d.reason for d in s.exec(select(Delivery).where(Delivery.broadcast_id == bid))}


async def settled(ward: Ward, bid: str, want: dict[str, str]) -> None:
    """The database holds ``want`` (unit → state) for ``bid`` (written by the batched writer)."""
    await until(lambda: ward.states(bid) == want, f"states {want}", timeout_s=30)


def test_the_rule_asks_only_a_unit_whose_report_disagrees() -> None:
    turn, now = Turn(at_ms=10_000, offset_ms=0, end_ms=20_000), 12_000

    def ask(state: DeliveryState, **kw: object) -> Ask:
        args: dict[str, object] = {"now_ms": now, "margin_ms": 1000, "started": True, "resuming": False,
                                   "turn": turn, "last": turn, "dropped_at": None} | kw
        return ask_for(state, **args)  # type: ignore[arg-type]

    assert ask(S.VERIFIED) is Ask.PLAY  # 2 s after the start, still verified: the play was lost
    assert ask(S.VERIFIED, now_ms=10_500) is Ask.NOTHING  # within the margin: the ack may be on its way
    assert ask(S.VERIFIED, turn=None) is Ask.CATCH_UP  # its zone's turn is over
    assert ask(S.VERIFIED, started=False) is Ask.NOTHING and ask(S.VERIFIED, resuming=True) is Ask.NOTHING
    assert ask(S.PLAYING) is Ask.NOTHING  # sounding, in its turn
    assert ask(S.PLAYING, turn=None, now_ms=20_500) is Ask.NOTHING  # just ended: `played` on its way
    assert ask(S.PLAYING, turn=None, now_ms=21_000) is Ask.CONFIRM  # the end passed, no `played`
    for state in (S.SENT, S.RECEIVING, S.OFFLINE):
        assert ask(state) is Ask.NOTHING  # downloading: the manifest's re-offer is what helps
    assert ask(S.VERIFIED, dropped_at=11_000) is Ask.PREEMPTED  # will never play it
    assert ask(S.PLAYING, dropped_at=11_500) is Ask.NOTHING
    assert ask(S.PLAYING, dropped_at=11_000) is Ask.STOP  # the stop was lost: it still plays
    assert all(ask(state) is Ask.NOTHING for state in (S.PLAYED, S.FAILED, S.EXPIRED, S.CANCELLED))
    assert [next_wait_ms(n, 30_000) for n in (1, 2, 3, 4, 5, 6, 40)] == [
        2000, 4000, 8000, 16_000, 30_000, 30_000, 30_000]


async def test_a_lost_play_is_sent_again_to_that_unit_in_step_until_it_plays(ward: Ward) -> None:
    bid = ward.broadcast(zones=["z"])
    await ward.delivery.air(bid)
    await verified(ward, bid, "z-1", "z-2")
    [group] = plays_to(ward, ZONE)
    ward.bus.ack("z-1", bid, V.PLAYING)  # z-2's play was lost (in flight while it reconnected)
    await until(lambda: plays_to(ward, node("z-2")), "z-2 asked again", timeout_s=30)
    assert plays_to(ward, node("z-2"))[0] == group  # the same instant and offset: it joins in step
    assert plays_to(ward, node("z-1")) == []  # a unit that reported playing is not asked
    # it does not answer: asked again after the backoff, not at every sweep
    await until(lambda: len(plays_to(ward, node("z-2"))) == 2, "z-2 asked a second time", timeout_s=30)
    assert ward.delivery.active[bid].nodes["z-2"].asks == 2
    ward.bus.ack("z-2", bid, V.VERIFIED)  # it reconnected and got the retained manifest: asked at once
    await until(lambda: len(plays_to(ward, node("z-2"))) == 3, "z-2 asked after its verified", timeout_s=5)
    for n in ("z-2", "z-1"):
        ward.bus.ack(n, bid, V.PLAYING)
        ward.bus.ack(n, bid, V.PLAYED)
    await settled(ward, bid, {"z-1": "played", "z-2": "played"})
    assert len(plays_to(ward, node("z-2"))) == 3 and ward.delivery.active_count() == 0


async def test_a_unit_verified_late_joins_its_zone_in_step(ward: Ward) -> None:
    bid = ward.broadcast(zones=["z"])
    await ward.delivery.air(bid)
    await verified(ward, bid, "z-1")
    await until(lambda: plays_to(ward, ZONE), "the zone's play after the ready wait (0.3 s)")
    [group] = plays_to(ward, ZONE)
    ward.bus.ack("z-1", bid, V.PLAYING)
    await verified(ward, bid, "z-2")  # not_ready before, verified now, while z-1 plays
    [late] = plays_to(ward, node("z-2"))
    assert late == group  # the zone's start instant and offset, not a new start from the top


async def test_a_play_that_could_not_go_out_is_sent_when_the_broker_is_back(ward: Ward) -> None:
    bid = ward.broadcast(zones=["z"])
    await ward.delivery.air(bid)
    await verified(ward, bid, "z-1")
    ward.bus.disconnect()  # the broker goes down just before the start instant
    await verified(ward, bid, "z-2")  # (an ack queued in the client before the cut)
    [lost] = ward.bus.sent("play")
    assert lost.scopes == (ZONE,)
    await ward.bus.connect()
    again = ward.bus.sent("play")[1]  # at once on reconnect, to the same scope, the same instant
    assert again.scopes == (ZONE,) and again.args == lost.args and again.id != lost.id
    for n in ("z-1", "z-2"):
        ward.bus.ack(n, bid, V.PLAYING)
        ward.bus.ack(n, bid, V.PLAYED)
    await settled(ward, bid, {"z-1": "played", "z-2": "played"})


async def test_a_lost_stop_is_sent_again_and_the_preempted_are_recorded_preempted(ward: Ward) -> None:
    normal = ward.broadcast(zones=["z", "y"])
    await ward.delivery.air(normal)
    await verified(ward, normal, "z-1", "z-2", "y-1")
    ward.bus.ack("z-1", normal, V.PLAYING)
    ward.bus.ack("y-1", normal, V.PLAYING)  # z-2 never started (its play was lost)
    urgent = ward.broadcast(zones=["z"])
    with ward.db.session() as s:  # the same bulletin as an emergency
        bc = s.get(Broadcast, urgent)
        assert bc is not None
        bc.priority = p.Priority.EMERGENCY.value
        s.add(bc)
        s.commit()
    await ward.delivery.air(urgent)
    await verified(ward, urgent, "z-1", "z-2")
    [stop] = ward.bus.sent("stop")
    assert stop.args == {"bc": normal, "reason": "preempted"}
    ward.bus.ack("y-1", normal, V.FAILED, "preempted")  # y-1 got the stop; z-1's was lost
    await until(lambda: ward.states(normal)["z-2"] == "failed", "z-2 recorded pre-empted", timeout_s=30)
    await until(lambda: [c for c in ward.bus.sent("stop") if c.scopes == (node("z-1"),)],
                "the stop again to z-1", timeout_s=30)
    again = next(c for c in ward.bus.sent("stop") if c.scopes == (node("z-1"),))
    assert again.args == {"bc": normal, "reason": "preempted"}
    ward.bus.answer(again.id, "z-1", stopped="")  # it plays nothing of it (its ack was lost too)
    await settled(ward, normal, {"z-1": "failed", "z-2": "failed", "y-1": "failed"})
    reasons = reasons_of(ward, normal)
    assert reasons == {"z-1": "preempted", "z-2": "preempted", "y-1": "preempted"}
    assert ward.bus.sent("play")[-1].args["bc"] == urgent  # the pre-empted one was never asked again
    assert [c.scopes for c in ward.bus.sent("play") if c.args["bc"] == normal] == [
        (ZONE, p.AudioScope(kind="group", id="y"))]  # once, to its zones; z-2 was not asked again


async def test_a_cancel_is_sent_again_to_a_unit_that_does_not_answer(ward: Ward) -> None:
    bid = ward.broadcast(zones=["z"])
    await ward.delivery.air(bid)
    await verified(ward, bid, "z-1", "z-2")
    assert ward.delivery.cancel(bid)
    [cancel] = ward.bus.sent("cancel")
    assert cancel.scopes == (ZONE,) and cancel.args == {"bc": bid}
    ward.bus.answer(cancel.id, "z-1", cancelled=bid, found=True)  # z-2's cancel was lost
    await until(lambda: len(ward.bus.sent("cancel")) == 2, "the cancel again", timeout_s=30)
    again = ward.bus.sent("cancel")[1]
    assert again.scopes == (node("z-2"),) and again.args == {"bc": bid}
    ward.bus.answer(again.id, "z-2", cancelled=bid, found=True)
    await until(lambda: ward.delivery.reconcile.cancels_open() == 0, "no cancel left to chase", timeout_s=30)
    assert len(ward.bus.sent("cancel")) == 2
    await settled(ward, bid, {"z-1": "cancelled", "z-2": "cancelled"})


async def test_by_expiry_every_unit_is_final_with_how_often_it_was_asked(ward: Ward) -> None:
    bid = ward.broadcast(zones=["z"], valid_s=5)
    await ward.delivery.air(bid)
    await verified(ward, bid, "z-1", "z-2")
    ward.bus.ack("z-1", bid, V.PLAYING)
    ward.bus.ack("z-1", bid, V.PLAYED)  # z-2 never answers anything
    await settled(ward, bid, {"z-1": "played", "z-2": "expired"})
    assert reasons_of(ward, bid)["z-2"].startswith("not played before expiry (asked again ")
    assert len(plays_to(ward, node("z-2"))) >= 1


async def test_a_preempted_report_arriving_after_the_restart_is_not_the_end() -> None:
    """Policy restart: a unit's failed/preempted that reaches the controller after the broadcast
    restarted (a busy link) still means "will continue"; reconcile waits only while it waits."""
    bus, air = control(PreemptPolicy.RESTART)
    air.offer("normal", priority=p.Priority.NORMAL, duration_ms=60_000, scopes=[ZONE], nodes=["z-1"],
              play_at=None, ready=lambda: True)
    air.offer("urgent", priority=p.Priority.EMERGENCY, duration_ms=1, scopes=[ZONE], nodes=["z-1"],
              play_at=None, ready=lambda: True)
    assert air.will_resume("normal") and air.waiting_to_resume("normal")
    air.finished("urgent")  # the emergency is over: the normal one starts again from the top
    assert [c.args["bc"] for c in bus.sent("play")] == ["normal", "urgent", "normal"]
    assert air.will_resume("normal") and not air.waiting_to_resume("normal")
    air.finished("normal")
    assert not air.will_resume("normal")


async def test_many_units_missing_the_play_get_it_once_on_the_group_topic() -> None:
    """Reconcile alone (no database): 12 units of one zone all still verified 0.5 s after the start
    instant get one play on the zone's topic, not twelve; then each waits for its backoff."""
    bus = FakeUnitBus()
    air = AirControl(bus, lambda node_id: ["z"], margin_ms=0)
    info, frames = p.chunk_audio(b"x" * 1000, duration_ms=60_000, chunk_size=4096)
    manifest = p.Manifest(bc="b-1", audio=info, expires_at=p.now_ms() + 600_000, hold=True)
    nodes = {f"u-{i:02d}": NodeDelivery(i, S.VERIFIED) for i in range(12)}
    active = ActiveBroadcast("b-1", manifest, frames, [ZONE], nodes, published=True)
    rec = Reconciler(air, AudioOut(bus), lambda node_id: True, {"b-1": active}.get, lambda *a: None,
                     DeliverySettings(reconcile_after_ms=MARGIN_MS))  # type: ignore[call-arg]
    air.offer("b-1", priority=p.Priority.NORMAL, duration_ms=60_000, scopes=[ZONE], nodes=list(nodes),
              play_at=None, ready=lambda: True)
    [first] = bus.sent("play")
    await until(lambda: p.now_ms() >= first.args["at"] + MARGIN_MS, "the margin after the start")  # type: ignore[operator]
    rec.check(active)
    assert [(c.scopes, c.args) for c in bus.sent("play")] == [((ZONE,), first.args)] * 2
    rec.check(active)  # within every unit's backoff: nothing more
    assert len(bus.sent("play")) == 2 and rec.asked["play_group"] == 1 and rec.asked["play"] == 0
    assert all(nd.asks == 1 for nd in nodes.values())


async def test_a_lost_played_is_asked_for_and_a_unit_without_the_file_gets_the_manifest(ward: Ward) -> None:
    """z-1's `played` is lost: after the end (3 s of audio) + the margin it gets the last play
    again and answers with its state. z-2 answers a play `unknown broadcast` (it lost the file):
    the manifest goes to it again so it downloads it anew."""
    bid = ward.broadcast(zones=["z"])
    await ward.delivery.air(bid)
    await verified(ward, bid, "z-1", "z-2")
    [group] = plays_to(ward, ZONE)
    ward.bus.ack("z-1", bid, V.PLAYING)
    await until(lambda: plays_to(ward, node("z-2")), "z-2 asked again", timeout_s=30)
    again = next(c for c in ward.bus.sent("play") if c.scopes == (node("z-2"),))
    offers = len(ward.bus.on_topic(f"/node/z-2/bcast/{bid}/manifest"))
    ward.bus.answer(again.id, "z-2", status="error", error="unknown broadcast")
    assert len(ward.bus.on_topic(f"/node/z-2/bcast/{bid}/manifest")) == offers + 1
    await until(lambda: plays_to(ward, node("z-1")), "z-1 asked after the end", timeout_s=30)
    confirm = next(c for c in ward.bus.sent("play") if c.scopes == (node("z-1"),))
    assert confirm.args == group  # the last start again: a unit that played it only answers
    assert p.now_ms() >= int(str(group["at"])) + 3000 + MARGIN_MS
    ward.bus.answer(confirm.id, "z-1", bc=bid, already="played")
    ward.bus.ack("z-1", bid, V.PLAYED)  # the ack it re-sends with that answer
    ward.bus.ack("z-2", bid, V.FAILED, "checksum")
    await settled(ward, bid, {"z-1": "played", "z-2": "failed"})


async def test_units_that_missed_their_broadcast_catch_up_in_one_turn() -> None:
    """Two units verify b-1 after its turn ended while b-2 holds their zone: their catch-ups share
    one turn (one play to both, when the zone is free), not one turn each, one after the other."""
    bus, air = control()
    air.start()
    try:
        air.offer("b-1", priority=p.Priority.NORMAL, duration_ms=1, scopes=[ZONE], nodes=["z-1", "z-2"],
                  play_at=None, ready=lambda: True)
        air.offer("b-2", priority=p.Priority.NORMAL, duration_ms=60_000, scopes=[ZONE], nodes=["z-1", "z-2"],
                  play_at=None, ready=lambda: True)
        await until(lambda: [c.args["bc"] for c in bus.sent("play")] == ["b-1", "b-2"], "b-2 after b-1")
        for n in ("z-1", "z-2"):
            air.unit_ready("b-1", n, priority=p.Priority.NORMAL, duration_ms=1)
        assert len(bus.sent("play")) == 2  # the zone is b-2's
        air.finished("b-2")
        await until(lambda: len(bus.sent("play")) == 3, "the catch-up's start")
        catch_up = bus.sent("play")[2]
        assert catch_up.args["bc"] == "b-1" and catch_up.scopes == (node("z-1"), node("z-2"))
        main, own = air.standing("b-1")
        assert main.turn is None and own["z-1"] == own["z-2"] and own["z-1"].last is not None
    finally:
        await air.stop()


async def test_a_restarted_controller_lets_the_units_not_started_join_in_step(ward: Ward,
                                                                            tmp_path: Path) -> None:
    """The controller restarts while its broadcast sounds (z-1 plays it, z-2's play was lost): the
    new one takes the broadcast back at the instant its first unit reported playing, and sends z-2
    a play naming that instant (it joins mid-way, in step), not a start from the top."""
    with ward.db.session() as s:
        bid = create_broadcast(s, bulletin_id=ward.bulletin_id, all_nodes=False, zones=["z"], nodes=[],
                               priority=None, air_at=None, valid_s=600, repeat=10, created_by="test").id
    await ward.delivery.air(bid)  # 10 x 3 s of audio
    await verified(ward, bid, "z-1", "z-2")
    [group] = plays_to(ward, ZONE)
    ward.bus.ack("z-1", bid, V.PLAYING)
    await settled(ward, bid, {"z-1": "playing", "z-2": "verified"})
    bus = FakeUnitBus(connected=False)  # the restarted controller, on the same database
    presence = Presence(bus, ward.writer)
    with ward.db.session() as s:
        presence.load(s)
    air = AirControl(bus, presence.groups_of, margin_ms=0, ready_wait_s=0.3, tick_s=0.02)
    settings = DeliverySettings(chunk_size=4096, sweep_s=0.05, resend_after_s=30,  # type: ignore[call-arg]
                                reconcile_after_ms=MARGIN_MS)
    delivery = DeliveryService(ward.db, ward.writer, bus, presence, settings,
                               DbAudioStore(ward.db, tmp_path / "audio"), air,
                               Ownership(ward.db.engine, "test", settings.owner_ttl_s))
    await delivery.start()
    try:
        await bus.connect()
        for n in ("z-1", "z-2"):
            bus.heartbeat(n)
        [again] = [c for c in bus.sent("play") if c.args["bc"] == bid]
        assert again.scopes == (node("z-2"),) and again.args["offset_ms"] == 0
        assert int(str(group["at"])) <= int(str(again.args["at"])) <= int(str(group["at"])) + 2000
    finally:
        await delivery.stop()


async def test_a_unit_whose_play_came_too_late_gets_a_catch_up_from_the_start(ward: Ward) -> None:
    """A unit answers ``failed``/``too_late`` (its play reached it after the audio's end: a broker
    that delivered late): it keeps the file, so it is recorded ``verified`` and gets a turn of its
    own from the start, which it plays. Only twice: a unit that answers too late a third time (one
    that cannot play it again) is final with that reason."""
    bid = ward.broadcast(zones=["z"])
    await ward.delivery.air(bid)
    await verified(ward, bid, "z-1", "z-2")
    [group] = plays_to(ward, ZONE)
    ward.bus.ack("z-1", bid, V.PLAYING)
    await until(lambda: ward.air.standing(bid)[0].turn is None, "the zone's turn over (3 s of audio)")
    asked = len(plays_to(ward, node("z-2")))  # (asked again in step while the turn ran: a lost play)
    ward.bus.ack("z-2", bid, V.FAILED, "too_late")
    await until(lambda: len(plays_to(ward, node("z-2"))) > asked, "z-2's catch-up")
    own = plays_to(ward, node("z-2"))[asked]
    assert own["offset_ms"] == 0 and own["at"] > group["at"]  # its own turn, from the start
    await until(lambda: reasons_of(ward, bid)["z-2"] == CATCHING_UP, "recorded verified, catching up")
    assert ward.states(bid)["z-2"] == "verified"
    ward.bus.ack("z-2", bid, V.PLAYING)
    for n in ("z-1", "z-2"):
        ward.bus.ack(n, bid, V.PLAYED)
    await settled(ward, bid, {"z-1": "played", "z-2": "played"})

    again = ward.broadcast(nodes=["z-2"])
    await ward.delivery.air(again)
    await verified(ward, again, "z-2")
    nd = ward.delivery.active[again].nodes["z-2"]
    for n in range(1, LATE_RETRIES + 2):
        await until(lambda: ward.air.standing(again)[0].turn is None and len(ward.bus.sent("play")) > 0,
                    "its turn over")
        ward.bus.ack("z-2", again, V.FAILED, "too_late")
        await until(lambda: nd.state == S.FAILED or nd.late == n, f"too late {n}: a catch-up or the end")  # noqa: B023
    await settled(ward, again, {"z-2": "failed"})
    assert reasons_of(ward, again)["z-2"] == "too_late"
