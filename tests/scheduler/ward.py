"""Helpers for schedule tests: a small ward in a real database (fixtures in conftest.py),
schedule runners with second-scale settings, and polling."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from functools import partial
from typing import Any

from sqlmodel import Session, col, select

from controller.airing.models import Broadcast
from controller.api.schemas import ScheduleCreate
from controller.bulletins.models import AudioAsset, Bulletin
from controller.core.db import Database
from controller.fleet.models import Node, NodeZone, Zone
from controller.schedules.airer import ScheduleAirer
from controller.schedules.crud import create_schedule
from controller.schedules.engine import scheduler_engine
from devices.protocol import now_ms
from scheduler.clock import TIMEZONE
from scheduler.models import ScheduleRun
from scheduler.runner import ScheduleService
from scheduler.settings import ScheduleSettings

FAST = ScheduleSettings(lead_s=1, grace_s=4, lease_ttl_s=1.2, renew_s=0.3, reconcile_s=0.5, db_timeout_s=0.5)


def fast(**kw: Any) -> ScheduleSettings:
    return FAST.model_copy(update=kw)


def make_ward(url: str, *, duration_ms: int = 5000) -> Database:
    """Migrate and add zones z1 (n1, n2) and z2 (n3), and bulletin 1 with (metadata of) audio."""
    db = Database(url)
    db.migrate()
    with db.session() as s:
        ward = {"z1": ["n1", "n2"], "z2": ["n3"]}
        for z, nodes in ward.items():
            s.add(Zone(id=z, name=z.upper()))
            s.add_all(Node(id=n) for n in nodes)
        s.flush()
        s.add_all(NodeZone(node_id=n, zone_id=z) for z, nodes in ward.items() for n in nodes)
        s.add(AudioAsset(sha256="a" * 64, size=20_000, duration_ms=duration_ms, codec="mp3",
                         sample_rate=24_000, bitrate_kbps=32, engine="test", voice="vi", path="aa/none.mp3"))
        s.add(Bulletin(title="Họp tổ dân phố", text="Họp tổ dân phố lúc 19h.", voice="vi",
                       audio_sha256="a" * 64, approved_sha256="a" * 64))
        s.commit()
    return db


def in_s(seconds: float) -> datetime:
    """A whole-second instant ``seconds`` from now in ward time."""
    return (datetime.now(tz=TIMEZONE) + timedelta(seconds=seconds)).replace(microsecond=0)


def once(db: Database, at: datetime, **kw: Any) -> int:
    return add(db, {"kind": "once", "at": at.isoformat()}, **kw)


def add(db: Database, when: dict[str, Any], **kw: Any) -> int:
    body = ScheduleCreate.model_validate({"bulletin_id": 1, "target": kw.pop("target", {"zones": ["z1"]}),
                                         "when": when, **kw})
    with db.session() as s:
        row = create_schedule(s, body, created_by="test")
        assert row.id is not None
        return row.id


@dataclass
class Sink:
    """Where aired broadcasts go instead of delivery (delivery is not under test here)."""

    aired: list[tuple[str, int, float]] = field(default_factory=list)

    def __call__(self, bc_id: str, air_at: int) -> None:
        self.aired.append((bc_id, air_at, time.time()))


def _nowhere(*_: object) -> None:
    """Delivery and the relay hub are not under test here."""


def airer(sink: Sink | None = None, relays: Callable[[str], None] | None = None) -> ScheduleAirer:
    """The controller's airer with its handoffs going to ``sink`` / ``relays``."""
    return ScheduleAirer(default_valid_s=600, owner="test", to_delivery=sink or _nowhere,
                         to_relays=relays or _nowhere)


def runner(url: str, settings: ScheduleSettings = FAST, *, sink: Sink | None = None,
           holder: str | None = None, clock: Callable[[], int] = now_ms,
           reach: Callable[[], bool] | None = None) -> ScheduleService:
    return ScheduleService(partial(scheduler_engine, url, settings.db_timeout_s), settings,
                           airer=airer(sink), holder=holder, clock=clock, reach=reach)


def runs(db: Database, schedule_id: int | None = None) -> list[ScheduleRun]:
    with db.session() as s:
        q = select(ScheduleRun).order_by(col(ScheduleRun.slot_at))
        if schedule_id is not None:
            q = q.where(ScheduleRun.schedule_id == schedule_id)
        return list(s.exec(q).all())


def broadcasts(db: Database) -> list[Broadcast]:
    with db.session() as s:
        return list(s.exec(select(Broadcast).order_by(col(Broadcast.created_at))).all())


async def wait_until(pred: Callable[[], Any], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out after {timeout:.1f} s waiting for {what}")


def today() -> date:
    return datetime.now(tz=TIMEZONE).date()


def session(db: Database) -> Session:
    return Session(db.engine, expire_on_commit=False)
