"""Relay sessions in the database (the ``relay`` table): written when made, kept up to date as
they wait, play, are interrupted and end, and read back when a controller starts.

A relay is run by one controller, named by its MQTT client id (``owner``, shown to staff): the
one that made it through the API, fired its schedule slot, or took it over. Who runs it is its
``relay_owner`` lease (controller/relays/lease.py: the broadcasts' lease machinery, on the
database clock); ``owner`` follows the lease. Its starts and ends go to the audit log too
(:func:`audit_op`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlmodel import Session, col, select

from controller.accounts.audit import record
from controller.relays.models import Relay
from devices import protocol as p
from scheduler.models import Schedule

logger = logging.getLogger(__name__)

ACTIVE = ("scheduled", "waiting", "playing", "interrupted")


def ms(t: datetime | None) -> int | None:
    return int(t.timestamp() * 1000) if t is not None else None


def dt(v: int | None) -> datetime | None:
    return datetime.fromtimestamp(v / 1000, tz=UTC) if v is not None else None


def iso(v: int | None) -> str | None:
    t = dt(v)
    return t.isoformat() if t else None


def insert(s: Session, row: Relay) -> None:
    s.add(row)
    s.commit()


def load(s: Session, relay_id: str) -> Relay | None:
    return s.get(Relay, relay_id)


def recent(s: Session, *, limit: int = 100, offset: int = 0) -> list[Relay]:
    q = select(Relay).order_by(col(Relay.created_at).desc()).offset(offset).limit(limit)
    return list(s.exec(q).all())


def save_op(relay_id: str, fields: dict[str, Any], *,
            then: Callable[[Session, str], None] | None = None) -> Any:
    """A DbWriter operation updating one relay row (state, reason, times, detail); ``then(s, id)``
    in the same transaction (the lease of an ended relay given back)."""

    def op(s: Session) -> None:
        row = s.get(Relay, relay_id)
        if row is None:
            logger.warning("relay %s is not in the database; its %s is not recorded", relay_id,
                           fields.get("state"))
            return
        for k, v in fields.items():
            setattr(row, k, v)
        s.add(row)
        if then is not None:
            then(s, relay_id)

    return op


def scopes_of(row: Relay) -> list[p.AudioScope]:
    return [p.AudioScope.model_validate(x) for x in row.scopes]


def public_row(row: Relay) -> dict[str, Any]:
    """The API view of a relay from its row (a relay this controller does not run, or an old one);
    ``owner_seen_at``: its owner's last renewal of the relay's lease (controller/relays/lease.py)."""
    return {"id": row.id, "url": row.url, "mode": row.mode, "state": row.state, "reason": row.reason,
            "user": row.created_by, "priority": row.priority, "nodes": row.nodes,
            "start_at": iso(row.start_at), "duration_s": row.duration_s, "started_at": iso(row.started_at),
            "ended_at": iso(row.ended_at), "owner": row.owner, "owner_seen_at": iso(row.owner_seen_at),
            "schedule_id": row.schedule_id,
            **row.detail}


def audit_op(action: str, relay_id: str, user: str, schedule_id: int | None, detail: str) -> Any:
    """A DbWriter operation auditing a relay's start or end (``relay_start`` / ``relay_end``), in the
    name of whoever made it: for a schedule's relay, the schedule's creator."""

    def op(s: Session) -> None:
        who = user
        if schedule_id is not None and (sc := s.get(Schedule, schedule_id)) is not None:
            who = sc.created_by
        record(s, who, action, f"relay:{relay_id}", detail)

    return op
