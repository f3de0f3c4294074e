"""Tables of the schedules (lịch phát). Times are UTC epoch milliseconds, as elsewhere.

``Schedule`` is the source of truth; the APScheduler job ``schedule:<id>`` in the
``apscheduler_jobs`` table is derived from it. ``ScheduleRun`` is one slot of a schedule
and, by its UNIQUE (schedule_id, slot_at), the idempotency key: a slot is aired by whoever
inserts its run first — never twice, whatever crashes or how many controllers share the
database. ``SchedulerLease`` says which controller fires schedules.
"""

from __future__ import annotations

import enum
from typing import Any

from sqlalchemy import JSON, BigInteger, Column, UniqueConstraint
from sqlmodel import Field, SQLModel

from devices.protocol import now_ms


class RunStatus(enum.StrEnum):
    FIRING = "firing"  # run claimed; broadcasts being created
    AIRED = "aired"  # broadcasts created and handed to delivery (late_ms > 0: aired late)
    MISSED = "missed"  # nobody fired it within the grace period
    SKIPPED = "skipped"  # an exception (holiday) date
    FAILED = "failed"  # could not be aired (reason says why: bulletin gone, no units, ...)


class Schedule(SQLModel, table=True):
    """When a bulletin airs (or a stream is relayed: ``relay`` instead of ``bulletin_id``), and where."""

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(default="", max_length=200)
    bulletin_id: int | None = Field(default=None, index=True)  # no FK: a bulletin may go; its slots then fail
    # a relay schedule: {url, mode, duration_s} instead of a bulletin
    relay: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON))
    targets: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    priority: str | None = Field(default=None, max_length=16)  # None: the bulletin's class
    kind: str = Field(max_length=16)  # once | daily | weekly | between | cron
    spec: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    repeat: int = Field(default=1, ge=1, le=10)
    interval_s: int = Field(default=0, ge=0)  # 0: the repeats play back to back
    exceptions: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    valid_for_s: int | None = None
    enabled: bool = True
    deleted: bool = False
    version: int = 1  # bumped by every change; the job is replaced only when it differs
    version_at: int = Field(default_factory=now_ms, sa_column=Column(BigInteger, nullable=False))
    last_slot_at: int | None = Field(default=None, sa_column=Column(BigInteger))
    created_by: str = Field(default="", max_length=100)
    created_at: int = Field(default_factory=now_ms, sa_column=Column(BigInteger, nullable=False))
    updated_at: int = Field(default_factory=now_ms, sa_column=Column(BigInteger, nullable=False))


class ScheduleRun(SQLModel, table=True):
    """One slot of a schedule and what became of it."""

    __tablename__ = "schedulerun"
    __table_args__ = (UniqueConstraint("schedule_id", "slot_at", name="uq_schedulerun_slot"),)
    id: int | None = Field(default=None, primary_key=True)
    schedule_id: int = Field(foreign_key="schedule.id", index=True)
    slot_at: int = Field(sa_column=Column(BigInteger, nullable=False))
    version: int = 1
    status: str = Field(max_length=16, index=True)  # RunStatus
    late_ms: int | None = Field(default=None, sa_column=Column(BigInteger))
    reason: str = Field(default="", max_length=500)
    broadcast_ids: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    fired_by: str = Field(default="", max_length=100)
    created_at: int = Field(default_factory=now_ms, sa_column=Column(BigInteger, nullable=False))
    updated_at: int = Field(default_factory=now_ms, sa_column=Column(BigInteger, nullable=False))


class SchedulerLease(SQLModel, table=True):
    """Which controller fires the schedules, until when (the database's clock)."""

    __tablename__ = "scheduler_lease"
    name: str = Field(primary_key=True, max_length=63)
    holder: str = Field(default="", max_length=100)
    expires_at: int = Field(default=0, sa_column=Column(BigInteger, nullable=False))
    acquired_at: int = Field(default=0, sa_column=Column(BigInteger, nullable=False))
    epoch: int = 0  # +1 whenever the holder changes (a fencing token, shown in the API)
