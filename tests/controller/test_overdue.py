"""Broadcasts left ``scheduled`` past their time (their controller died before claiming them): any
controller hands them to its own timer (controller/airing/overdue.py). SQLite, no broker: the
timer is a list."""

from __future__ import annotations

from pathlib import Path

from sqlmodel import select

from controller.airing.broadcasts import create_broadcast
from controller.airing.models import Broadcast
from controller.airing.overdue import OverdueBroadcasts
from controller.core.db import Database
from devices.protocol import now_ms
from tests.controller.test_delivery_fake import seed


async def test_only_broadcasts_still_waiting_past_the_grace_and_not_held_here_are_rearmed(
        tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'ward.db'}")
    db.migrate()
    bulletin_id = seed(db, tmp_path / "audio", {"z-1": "z"})
    now = now_ms()
    ids: dict[str, str] = {}
    with db.session() as s:
        for name, air_at in (("left", now - 30_000), ("held here", now - 30_000), ("just due", now - 1_000),
                             ("later", now + 60_000), ("aired", now - 30_000)):
            bc = create_broadcast(s, bulletin_id=bulletin_id, all_nodes=False, zones=["z"], nodes=[],
                                  priority=None, air_at=air_at, valid_s=3600, repeat=1, created_by="test")
            ids[name] = bc.id
        aired = s.exec(select(Broadcast).where(Broadcast.id == ids["aired"])).one()
        aired.status = "sending"  # claimed: custody's, not ours
        s.add(aired)
        s.commit()
    armed: list[tuple[str, int]] = []
    overdue = OverdueBroadcasts(db, lambda bc, at: armed.append((bc, at)),
                                waiting=lambda bc: bc == ids["held here"], grace_s=6, every_s=2)
    await overdue.scan()
    assert armed == [(ids["left"], now - 30_000)]
    await overdue.scan()  # still waiting (the timer did not claim it yet): handed over again
    assert [bc for bc, _ in armed] == [ids["left"]] * 2 and overdue.stats["rearmed"] == 2
    db.dispose()
