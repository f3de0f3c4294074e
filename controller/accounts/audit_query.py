"""Reading the audit log: who may see which entries, filtered by person, action and period, paged.

One query for ``GET /api/audit`` and the log screen (controller/ui/audit.py). An admin with an
org unit sees exactly the entries made by (or, for failed logins, in the name of) accounts of their
subtree; entries by province-level accounts, the CLI or unknown names stay with admins without an
org unit."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from sqlalchemy import or_
from sqlmodel import Session, col, select

from controller.accounts.models import AuditEntry, User
from controller.accounts.scope import subtree
from scheduler import TIMEZONE

MAX_PAGE = 2000


@dataclass(frozen=True)
class AuditFilter:
    username: str | None = None
    actions: tuple[str, ...] = ()  # exact actions, or SQL LIKE patterns with '%'
    since_ms: int | None = None  # included
    until_ms: int | None = None  # excluded


def audit_rows(s: Session, admin: User, f: AuditFilter, *, offset: int = 0,
               limit: int = 200) -> list[AuditEntry]:
    """The entries ``admin`` may see that match ``f``, newest first."""
    q = select(AuditEntry)
    if admin.org_unit_id is not None:
        names = select(User.username).where(col(User.org_unit_id).in_(subtree(s, admin.org_unit_id)))
        q = q.where(col(AuditEntry.username).in_(names))
    if f.username:
        q = q.where(AuditEntry.username == f.username)
    if f.actions:
        q = q.where(or_(*[col(AuditEntry.action).like(a) if "%" in a else col(AuditEntry.action) == a
                          for a in f.actions]))
    if f.since_ms is not None:
        q = q.where(col(AuditEntry.at) >= f.since_ms)
    if f.until_ms is not None:
        q = q.where(col(AuditEntry.at) < f.until_ms)
    q = q.order_by(col(AuditEntry.id).desc()).offset(max(0, offset)).limit(max(1, min(limit, MAX_PAGE)))
    return list(s.exec(q).all())


def day_ms(d: date | None, after: bool = False) -> int | None:
    """Epoch ms of ``d`` 00:00 ward time (``after``: of the next day)."""
    if d is None:
        return None
    return int(datetime.combine(d + timedelta(days=1 if after else 0), time(0), TIMEZONE).timestamp() * 1000)
