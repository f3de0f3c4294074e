"""A lost ``stop`` is reconciled whatever the pre-emption policy and across a controller restart
(controller/airing/reconcile.py, controller/airing/takeover.py), without a broker: DeliveryService,
AirControl and Presence on a FakeUnitBus, SQLite in tmp_path, the units played by hand.

The set-up of each: a normal broadcast of zones z and y plays on z-1 and y-1; an emergency in zone
z pre-empts it; the ``stop`` reaches z-1 but y-1 loses it and plays on."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from sqlmodel import select

from controller.airing.aircontrol import AirControl
from controller.airing.delivery import DeliveryService
from controller.airing.models import Broadcast, Delivery
from controller.airing.ownership import Ownership
from controller.airing.reconcile import RESUMES
from controller.airing.settings import DeliverySettings
from controller.core.audiostore import DbAudioStore
from controller.fleet.presence import Presence
from devices import protocol as p
from scheduler.arbiter import PreemptPolicy
from tests.controller.test_delivery_fake import Ward, running_ward
from tests.fakes import FakeUnitBus, until

pytestmark = pytest.mark.timeout(90)

V = p.AckState
MARGIN_MS = 500
UNITS = ("z-1", "z-2", "y-1")


def settings(margin_ms: int = MARGIN_MS) -> DeliverySettings:
    return DeliverySettings(chunk_size=4096, sweep_s=0.05, resend_after_s=30,  # type: ignore[call-arg]
                            reconcile_after_ms=margin_ms, reconcile_max_wait_s=4)


@asynccontextmanager
async def ward_with(tmp_path: Path, policy: PreemptPolicy, margin_ms: int = MARGIN_MS) -> AsyncIterator[Ward]:
    async with running_ward(tmp_path, settings(margin_ms), ready_wait_s=0.3, tick_s=0.02, policy=policy) as w:
        for n in UNITS:
            w.bus.heartbeat(n)
        yield w


def stops_to(bus: FakeUnitBus, unit: str) -> list[dict[str, object]]:
    return [c.args for c in bus.sent("stop") if c.scopes == (p.AudioScope(kind="node", id=unit),)]


def reasons(ward: Ward, bid: str) -> dict[str, tuple[str, str]]:
    with ward.db.session() as s:
        rows = s.exec(select(Delivery).where(Delivery.broadcast_id == bid))
        return {d.node_id: (d.state, d.reason) for d in rows}


async def pre_empted(ward: Ward, verified: tuple[str, ...] = ("z-1", "z-2")) -> tuple[str, str]:
    """The set-up of the module docstring; (normal, emergency). z-2 never started the normal one;
    the units of ``verified`` verify the emergency's audio (the others stay ``receiving``)."""
    normal = ward.broadcast(zones=["z", "y"], valid_s=600)
    await ward.delivery.air(normal)
    for n in UNITS:
        ward.bus.ack(n, normal, V.RECEIVING)
        ward.bus.ack(n, normal, V.VERIFIED)
    await until(lambda: ward.bus.sent("play"), "the normal broadcast's play")
    ward.bus.ack("z-1", normal, V.PLAYING)
    ward.bus.ack("y-1", normal, V.PLAYING)
    urgent = ward.broadcast(zones=["z"], valid_s=600)
    with ward.db.session() as s:
        bc = s.get(Broadcast, urgent)
        assert bc is not None
        bc.priority = p.Priority.EMERGENCY.value
        s.add(bc)
        s.commit()
    await ward.delivery.air(urgent)
    for n in ("z-1", "z-2"):
        ward.bus.ack(n, urgent, V.RECEIVING)
        if n in verified:
            ward.bus.ack(n, urgent, V.VERIFIED)
    await until(lambda: [c for c in ward.bus.sent("stop") if c.args["bc"] == normal], "the first stop")
    return normal, urgent


@pytest.mark.parametrize("policy", [PreemptPolicy.RESUME, PreemptPolicy.RESTART])
async def test_a_lost_stop_is_sent_again_while_the_broadcast_waits_to_continue(
        tmp_path: Path, policy: PreemptPolicy) -> None:
    async with ward_with(tmp_path, policy) as ward:
        normal, urgent = await pre_empted(ward)
        assert ward.air.waiting_to_resume(normal)
        ward.bus.ack("z-1", normal, V.FAILED, "preempted")  # y-1's stop was lost: it plays on
        await until(lambda: stops_to(ward.bus, "y-1"), "the stop again to y-1", timeout_s=30)
        assert stops_to(ward.bus, "y-1")[0] == {"bc": normal, "reason": "preempted"}
        assert stops_to(ward.bus, "z-1") == []  # it reported the stop: not asked again
        ward.bus.ack("y-1", normal, V.FAILED, "preempted")  # it stops now
        want = {"z-1": ("verified", RESUMES), "y-1": ("verified", RESUMES)}
        await until(lambda: {n: reasons(ward, normal)[n] for n in want} == want, "both waiting to continue")
        plays = len([c for c in ward.bus.sent("play") if c.args["bc"] == normal])
        for n in ("z-1", "z-2"):
            ward.bus.ack(n, urgent, V.PLAYING)
            ward.bus.ack(n, urgent, V.PLAYED)
        await until(lambda: len([c for c in ward.bus.sent("play") if c.args["bc"] == normal]) > plays,
                    "the normal broadcast continues after the emergency", timeout_s=30)
        again = [c for c in ward.bus.sent("play") if c.args["bc"] == normal][-1]
        offset = int(str(again.args["offset_ms"]))
        assert offset > 0 if policy is PreemptPolicy.RESUME else offset == 0


async def test_a_stop_that_answers_nothing_playing_waits_to_continue(tmp_path: Path) -> None:
    """Policy resume: y-1's stop and its ack were both lost; it answers the second stop that it plays
    nothing of the broadcast: recorded waiting to continue, not failed."""
    async with ward_with(tmp_path, PreemptPolicy.RESUME) as ward:
        normal, _ = await pre_empted(ward)
        await until(lambda: ward.bus.sent("stop")[1:], "the stop again", timeout_s=30)
        y1 = (p.AudioScope(kind="node", id="y-1"),)
        again = next(c for c in ward.bus.sent("stop")[1:] if c.scopes == y1)
        ward.bus.answer(again.id, "y-1", stopped="")
        await until(lambda: reasons(ward, normal)["y-1"] == ("verified", RESUMES), "y-1 waiting to continue")


KNOWN = ["from its rows", "from a unit's report after the restart", "from the emergency restored with it"]


@pytest.mark.parametrize("known", KNOWN)
async def test_a_restarted_controller_stops_a_unit_that_lost_the_stop(tmp_path: Path, known: str) -> None:
    """Policy drop; the controller stops before it asks y-1 again (its margin is a minute) and a
    new one starts on the same database. It learns the broadcast was pre-empted from z-1's row
    (failed/preempted), or from z-1 re-sending that state when it gets the manifest again, or
    because the emergency it restores wants zone z (still waiting for z-2 to verify its audio:
    what it pre-empts is taken back without a play to the units that had not started it), and
    sends y-1 the stop; the broadcast ends with every unit failed/preempted and is never played
    again (z-2, which had not started it, is recorded pre-empted, not asked to play)."""
    async with ward_with(tmp_path, PreemptPolicy.DROP, margin_ms=60_000) as old:
        normal, _ = await pre_empted(old, verified=("z-1",) if known == KNOWN[2] else ("z-1", "z-2"))
        if known == "from its rows":
            old.bus.ack("z-1", normal, V.FAILED, "preempted")
            await until(lambda: reasons(old, normal)["z-1"] == ("failed", "preempted"), "z-1's row")
        await until(lambda: reasons(old, normal)["y-1"][0] == "playing" and old.status(normal) == "active",
                    "the old controller's rows written")
        await old.air.stop()
        await old.delivery.stop()
        assert stops_to(old.bus, "y-1") == []
        bus = FakeUnitBus(connected=False)  # the restarted controller, on the same database
        presence = Presence(bus, old.writer)
        with old.db.session() as s:
            presence.load(s)
        air = AirControl(bus, presence.groups_of, margin_ms=0, ready_wait_s=0.3, tick_s=0.02)
        delivery = DeliveryService(old.db, old.writer, bus, presence, settings(),
                                   DbAudioStore(old.db, tmp_path / "audio"), air,
                                   Ownership(old.db.engine, "test", settings().owner_ttl_s))
        await delivery.start()
        air.start()
        try:
            await bus.connect()
            for n in UNITS:
                bus.heartbeat(n)
            if known == KNOWN[1]:
                bus.ack("z-1", normal, V.FAILED, "preempted")  # its final state, for the manifest again
            await until(lambda: stops_to(bus, "y-1"), "the stop to y-1 from the new controller", timeout_s=30)
            assert stops_to(bus, "y-1")[0] == {"bc": normal, "reason": "preempted"}
            bus.ack("y-1", normal, V.FAILED, "preempted")
            if known == KNOWN[2]:
                bus.ack("z-1", normal, V.FAILED, "preempted")  # its answer to the stop sent again
            want = {n: ("failed", "preempted") for n in UNITS}
            await until(lambda: reasons(old, normal) == want, "every unit pre-empted", timeout_s=30)
            await until(lambda: old.status(normal) == "done", "the broadcast done")
            assert [c for c in bus.sent("play") if c.args["bc"] == normal] == []
        finally:
            await air.stop()
            await delivery.stop()
