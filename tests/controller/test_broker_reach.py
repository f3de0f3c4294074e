"""Broker-free: the broker probe (devices/probe.py) and custody without the broker
(controller/airing/custody.py): a controller whose broker no longer passes its probe back gives
what it holds up and hands the rows back, takes nothing; a stalled event loop is not a lost broker."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from sqlalchemy import text

from controller.airing.custody import LOST_BROKER, Custody
from controller.airing.models import Broadcast
from controller.airing.ownership import Ownership
from controller.bulletins.models import Bulletin
from controller.core.db import Database
from devices import probe as probe_mod
from devices.messages import now_ms
from devices.probe import BrokerProbe
from tests.controller.test_delivery_fake import seed
from tests.fakes import until


class Echo:
    """A broker that passes the probe back (or not, once ``cut``)."""

    def __init__(self) -> None:
        self.cut = False
        self.probe: BrokerProbe | None = None

    def send(self, topic: str, body: bytes) -> None:
        if not self.cut and self.probe is not None:
            asyncio.get_running_loop().call_soon(self.probe.echoed)


@pytest.fixture(autouse=True)
def fast_probe(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(probe_mod, "PROBE_S", 0.05)


async def test_the_probe_is_heard_while_the_broker_echoes_and_silent_once_cut() -> None:
    echo = Echo()
    probe = echo.probe = BrokerProbe("lp/controller/probe/x", echo.send, lambda: True)
    assert probe.silent_s() == 0.0  # not started: nothing judged yet
    probe.start()
    try:
        await until(lambda: probe.stats["echoed"] >= 5, "echoes")
        assert probe.silent_s() < 0.2
        echo.cut = True
        await until(lambda: probe.silent_s() >= 0.5, "silence counted", timeout_s=5)
        echo.cut = False
        await until(lambda: probe.silent_s() < 0.2, "heard again", timeout_s=5)
    finally:
        await probe.stop()


async def test_a_stalled_loop_is_not_taken_for_a_silent_broker() -> None:
    echo = Echo()
    probe = echo.probe = BrokerProbe("lp/controller/probe/x", echo.send, lambda: True)
    probe.start()
    try:
        await until(lambda: probe.stats["echoed"] >= 2, "echoes")
        time.sleep(0.6)  # noqa: ASYNC251 - the event loop blocked (a busy machine): no probe sent
        assert probe.silent_s() <= 2 * probe_mod.PROBE_S  # counted in ticks, not in wall time
    finally:
        await probe.stop()


async def test_without_the_broker_custody_gives_up_hands_the_rows_back_and_takes_nothing(
        tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'lp.db'}")
    db.migrate(tmp_path)
    bulletin = seed(db, tmp_path / "audio", {"u-1": "z"})
    with db.session() as s:
        sha = s.get(Bulletin, bulletin).audio_sha256  # type: ignore[union-attr]
        for bc in ("b-1", "b-2"):
            s.add(Broadcast(id=bc, bulletin_id=bulletin, audio_sha256=sha, status="active", air_at=0,
                            expires_at=now_ms() + 600_000, created_at=0))
        s.commit()
    reachable = True
    owner = Ownership(db.engine, "ctl-a", 6.0, reach=lambda: reachable)
    held: set[str] = set()
    given_up: list[tuple[str, str]] = []
    lost: list[int] = []

    async def adopt(bc: str) -> bool:
        held.add(bc)
        return True

    def abandon(bc: str, why: str) -> None:
        held.discard(bc)
        given_up.append((bc, why))

    custody = Custody(owner, lambda: set(held), adopt=adopt, abandon=abandon, renew_s=1.0,
                      on_broker_lost=lambda: lost.append(1))
    await custody.round()
    assert held == {"b-1", "b-2"}  # orphans without an owner row: taken
    reachable = False
    custody.guard()
    assert held == set() and sorted(given_up) == [("b-1", LOST_BROKER), ("b-2", LOST_BROKER)]
    assert lost == [1] and custody.stats["broker_lost"] == 1
    await custody.round()  # the rows handed back: expired now, for another controller's next round
    with db.engine.connect() as c:
        assert c.execute(text("SELECT count(*) FROM broadcast_owner WHERE expires_at > 0")).scalar() == 0
    assert held == set() and not owner.take("b-1")  # no take-over without the broker
    custody.guard()
    assert lost == [1]  # told once per outage
    reachable = True
    await custody.round()
    assert held == {"b-1", "b-2"}  # the broker back and nobody else took them: ours again
    db.dispose()
