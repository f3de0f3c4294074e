"""Fakes of the scheduler's ports (scheduler/ports.py) and a database with only its own tables."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy.engine import Engine
from sqlmodel import Session, SQLModel, create_engine

from scheduler.clock import TIMEZONE, epoch_ms
from scheduler.models import Schedule, SchedulerLease, ScheduleRun
from scheduler.ports import Aired, Progress, Slot

SLOT = epoch_ms(datetime(2026, 12, 3, 6, 0, tzinfo=TIMEZONE))


@dataclass
class FakeAirer:
    """Records the slots it is asked to air and answers what it is told to."""

    answer: Aired = field(default_factory=lambda: Aired(broadcasts=[("bc-1", SLOT - 1000)]))
    asked: list[Slot] = field(default_factory=list)
    handed: list[Aired] = field(default_factory=list)
    handed_on: list[int] = field(default_factory=list)  # the thread of each handoff
    crash_after: list[str] | None = None  # report these as made, commit, then raise
    prepare: bool = True  # build slots ahead (scheduler/wheel.py); False: each is aired at its instant
    prepared: list[Slot] = field(default_factory=list)  # the slots built ahead
    written: list[Slot] = field(default_factory=list)  # ... and written at their instant
    changed: bool = False  # what the prepared slots were built from has changed since

    def air(self, s: Session, slot: Slot, progress: Progress) -> Aired:
        self.asked.append(slot)
        if self.crash_after is not None:
            progress(self.crash_after)
            s.commit()
            raise RuntimeError("the controller died mid-slot")
        return self.answer

    def air_many(self, s: Session, slots: list[Slot]) -> list[Aired]:
        self.asked.extend(slots)
        if self.crash_after is not None:
            raise RuntimeError("the controller died mid-batch")
        return [self.answer for _ in slots]

    def prepare_many(self, s: Session, slots: list[Slot]) -> FakePrepared | None:
        if not self.prepare:
            return None
        self.prepared.extend(slots)
        return FakePrepared(self, slots)

    def handoff(self, aired: Aired) -> None:
        self.handed.append(aired)
        self.handed_on.append(threading.get_ident())



@dataclass
class FakePrepared:
    airer: FakeAirer
    slots: list[Slot]

    def planned(self) -> list[Aired]:
        return [self.airer.answer for _ in self.slots]

    def current(self, s: Session) -> bool:
        return not self.airer.changed

    def write(self, s: Session, now_ms: int) -> list[Aired]:
        self.airer.asked.extend(self.slots)
        self.airer.written.extend(self.slots)
        return [self.airer.answer for _ in self.slots]


def scheduler_db(url: str) -> Engine:
    """An engine on a database holding only the scheduler's tables (no controller table at all)."""
    eng = create_engine(url)
    tables = [Schedule.__table__, ScheduleRun.__table__, SchedulerLease.__table__]
    SQLModel.metadata.create_all(eng, tables=tables)  # type: ignore[arg-type]
    return eng
