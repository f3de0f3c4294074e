"""Relay sessions in the database (the ``relay`` table): written when made, kept up to date as
they wait, play, are interrupted and end, and read back when a controller starts.

A relay belongs to one controller, named by its MQTT client id (``owner``): the one that made
it through the API, or the one that fired its schedule slot. Only the owner runs it; after a
restart the owner picks up its relays that have not ended (controller/relays.py ``restore``).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from sqlmodel import Session, col, select

from controller.models import Relay
from devices import protocol as p

logger = logging.getLogger(__name__)

ACTIVE = ("scheduled", "waiting", "playing", "interrupted")


def ms(t: datetime | None) -> int | None:
    return int(t.timestamp() * 1000) if t is not None else None


def dt(v: int | None) -> datetime | None:
    return datetime.fromtimestamp(v / 1000, tz=UTC) if v is not None else None


def insert(s: Session, row: Relay) -> None:
    s.add(row)
    s.commit()


def load(s: Session, relay_id: str) -> Relay | None:
    return s.get(Relay, relay_id)


def active_of(s: Session, owner: str) -> list[Relay]:
    return list(s.exec(select(Relay).where(Relay.owner == owner)
                        .where(col(Relay.state).in_(ACTIVE)).order_by(col(Relay.created_at))).all())


def recent(s: Session, *, limit: int = 100, offset: int = 0) -> list[Relay]:
    q = select(Relay).order_by(col(Relay.created_at).desc()).offset(offset).limit(limit)
    return list(s.exec(q).all())


def save_op(relay_id: str, fields: dict[str, Any]) -> Any:
    """A DbWriter operation updating one relay row (state, reason, times, detail)."""

    def op(s: Session) -> None:
        row = s.get(Relay, relay_id)
        if row is None:
            logger.warning("relay %s is not in the database; its %s is not recorded", relay_id,
                           fields.get("state"))
            return
        for k, v in fields.items():
            setattr(row, k, v)
        s.add(row)

    return op


def scopes_of(row: Relay) -> list[p.AudioScope]:
    return [p.AudioScope.model_validate(x) for x in row.scopes]


def public_row(row: Relay) -> dict[str, Any]:
    """The API view of a relay from its row (a relay this controller does not run, or an old one)."""
    def iso(v: int | None) -> str | None:
        t = dt(v)
        return t.isoformat() if t else None
    return {"id": row.id, "url": row.url, "mode": row.mode, "state": row.state, "reason": row.reason,
            "user": row.created_by, "priority": row.priority, "nodes": row.nodes,
            "start_at": iso(row.start_at), "duration_s": row.duration_s, "started_at": iso(row.started_at),
            "ended_at": iso(row.ended_at), "owner": row.owner, "schedule_id": row.schedule_id,
            **row.detail}
