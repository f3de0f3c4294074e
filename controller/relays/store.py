"""Relay sessions in the database (the ``relay`` table): written when made, kept up to date as
they wait, play, are interrupted and end, and read back when a controller starts.

A relay belongs to one controller, named by its MQTT client id (``owner``): the one that made
it through the API, or the one that fired its schedule slot. Only the owner runs it; after a
restart the owner picks up its relays that have not ended (controller/relays/hub.py ``restore``).
The owner marks its running relays every few seconds (``owner_seen_at``, :func:`beat`); a relay
not marked for ``owner_ttl_s`` is claimed by another controller with a compare-and-set on
(owner, owner_seen_at) (:func:`claim`), so exactly one takes it over.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import or_, update
from sqlmodel import Session, col, select

from controller.relays.models import Relay
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


def beat(s: Session, owner: str, ids: list[str], now: int) -> list[str]:
    """Mark ``ids`` as still run by ``owner``; returns those that are no longer ours (taken over)."""
    if not ids:
        return []
    s.execute(update(Relay).where(col(Relay.id).in_(ids)).where(col(Relay.owner) == owner)
              .values(owner_seen_at=now))
    s.commit()
    still = set(s.exec(select(Relay.id).where(col(Relay.id).in_(ids)).where(col(Relay.owner) == owner)).all())
    return [i for i in ids if i not in still]


def orphans(s: Session, owner: str, now: int, ttl_ms: int) -> list[Relay]:
    """Relays not ended whose controller has not marked them for ``ttl_ms``."""
    seen = col(Relay.owner_seen_at)
    q = (select(Relay).where(col(Relay.state).in_(ACTIVE)).where(col(Relay.owner) != owner)
         .where(or_(seen.is_(None), seen < now - ttl_ms)))
    return list(s.exec(q).all())


def claim(s: Session, row: Relay, owner: str, now: int) -> bool:
    """Take ``row`` over unless someone else did first (compare-and-set on owner + last beat)."""
    seen = col(Relay.owner_seen_at)
    q = (update(Relay).where(col(Relay.id) == row.id).where(col(Relay.owner) == row.owner)
         .where(col(Relay.state).in_(ACTIVE))
         .where(seen.is_(None) if row.owner_seen_at is None else seen == row.owner_seen_at)
         .values(owner=owner, owner_seen_at=now))
    won = s.execute(q).rowcount == 1  # type: ignore[attr-defined]
    s.commit()
    if won:
        row.owner, row.owner_seen_at = owner, now
    return won


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
            "ended_at": iso(row.ended_at), "owner": row.owner, "owner_seen_at": iso(row.owner_seen_at),
            "schedule_id": row.schedule_id,
            **row.detail}
