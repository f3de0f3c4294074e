"""Creating broadcasts of a bulletin to resolved targets, and marking missed ones."""

from __future__ import annotations

import logging
import secrets
from datetime import UTC, datetime

from sqlmodel import Session, select

from controller.airing.delivery_rows import insert_deliveries
from controller.airing.models import Broadcast, BroadcastStatus, Delivery, DeliveryEvent, DeliveryState
from controller.airing.rules import airing_refusal
from controller.bulletins.binding import audio_refusal
from controller.bulletins.models import Bulletin
from controller.core.errors import ServiceError
from controller.fleet.targets import resolve_targets
from devices import protocol as p

logger = logging.getLogger(__name__)


# ---------------------------------------------------------------------- broadcasts


def id_stamp() -> str:
    """The UTC second a broadcast id carries."""
    return datetime.now(tz=UTC).strftime("%Y%m%d-%H%M%S")


def new_broadcast_id(stamp: str | None = None) -> str:
    """``b-<UTC second>-<8 hex>``: 32 random bits, so a burst of 1,000 in one second (schedules on
    a round time) collides with odds of ~1 in 10,000 (16 bits: nearly always). ``stamp``: the
    second (:func:`id_stamp`) when many are made at once."""
    return f"b-{stamp or id_stamp()}-{secrets.token_hex(4)}"


def airable(s: Session, bulletin_id: int, priority: str | None) -> Bulletin:
    """The bulletin if it may air at ``priority`` now (the airing rule, its bound audio), else a
    ``ServiceError`` saying why: checked for every broadcast, API or schedule."""
    bulletin = s.get(Bulletin, bulletin_id)
    if bulletin is None:
        raise ServiceError(404, f"bulletin {bulletin_id} does not exist")
    if (why := airing_refusal(bulletin, priority)) is not None:
        raise ServiceError(409, why)
    if bulletin.audio_sha256 is None:
        raise ServiceError(409, f"bulletin {bulletin_id} has no audio")
    unbound = audio_refusal(bulletin, bulletin.audio_sha256)
    if unbound is not None:
        raise ServiceError(409, unbound)
    return bulletin


def create_broadcast(s: Session, *, bulletin_id: int, all_nodes: bool, zones: list[str], nodes: list[str],
                     priority: str | None, air_at: int | None, valid_s: int, repeat: int,
                     created_by: str, play_at: int | None = None) -> Broadcast:
    """A broadcast and its queued deliveries, committed (many at once, uncommitted: a burst of
    schedule slots, controller/airing/burst.py)."""
    bulletin = airable(s, bulletin_id, priority)
    assert bulletin.audio_sha256 is not None  # airable refuses a bulletin without audio
    now = p.now_ms()
    start = now if air_at is None else air_at
    if start < now - 60_000:
        raise ServiceError(422, "the air time is in the past")
    target = resolve_targets(s, all_nodes=all_nodes, zones=zones, nodes=nodes)
    bc = Broadcast(
        id=new_broadcast_id(), bulletin_id=bulletin_id, audio_sha256=bulletin.audio_sha256,
        priority=priority or bulletin.priority, status=BroadcastStatus.SCHEDULED.value,
        targets={"all": all_nodes, "zones": zones, "nodes": nodes},
        scopes=[sc.model_dump() for sc in target.scopes], repeat=repeat, air_at=start,
        expires_at=max(start, play_at or start) + valid_s * 1000, created_by=created_by, play_at=play_at,
    )
    s.add(bc)
    s.flush()
    insert_deliveries(s, bc.id, list(target.nodes), now)  # one batch, not a flush per unit
    s.commit()
    s.refresh(bc)
    logger.info("broadcast %s of bulletin %d for %d node(s) in %d scope(s), airs at %d",
                bc.id, bulletin_id, len(target.nodes), len(target.scopes), start)
    return bc


def mark_missed(s: Session, broadcast_id: str, reason: str) -> None:
    bc = s.get(Broadcast, broadcast_id)
    if bc is None or bc.status != BroadcastStatus.SCHEDULED.value:
        return
    bc.status, bc.reason = BroadcastStatus.FAILED.value, reason[:500]
    s.add(bc)
    for d in s.exec(select(Delivery).where(Delivery.broadcast_id == broadcast_id)).all():
        d.state, d.reason, d.updated_at = DeliveryState.FAILED.value, "broadcast missed its slot", p.now_ms()
        s.add(d)
        assert d.id is not None
        s.add(DeliveryEvent(delivery_id=d.id, state=d.state, reason=d.reason, at=d.updated_at))
    s.commit()
