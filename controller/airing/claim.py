"""Claiming a broadcast to air it: the compare-and-set of its row, its owner row, its audio loaded.

With several controllers on one database only the one whose ``UPDATE broadcast SET status =
'sending' WHERE status = 'scheduled'`` changed the row airs it; the same transaction writes its
``broadcast_owner`` row (controller/airing/ownership.py), so no other controller ever sees the
broadcast on its way without an owner.
"""

from __future__ import annotations

import logging

from sqlmodel import Session, col, update

from controller.airing.active import ActiveBroadcast, load_active, refusal
from controller.airing.broadcasts import mark_missed
from controller.airing.models import Broadcast, BroadcastStatus
from controller.airing.ownership import Ownership
from controller.core.audiostore import AudioStore
from devices import protocol as p

logger = logging.getLogger(__name__)


def claim_to_air(s: Session, broadcast_id: str, owner: Ownership, store: AudioStore,
                 chunk_size: int) -> ActiveBroadcast | None:
    """The broadcast to publish now, claimed by this controller; None if it is not to air (here):
    refused since it was set, claimed by another controller, expired, or its audio unreadable."""
    if (why := refusal(s, broadcast_id)) is not None:  # rejected since it was set
        mark_missed(s, broadcast_id, f"not aired: {why}")
        logger.warning("broadcast %s not aired: %s", broadcast_id, why)
        return None
    claimed = s.exec(update(Broadcast).where(  # type: ignore[call-overload]
        col(Broadcast.id) == broadcast_id, col(Broadcast.status) == BroadcastStatus.SCHEDULED.value,
    ).values(status=BroadcastStatus.SENDING.value)).rowcount
    # its owner row, in the claim's transaction; none while our broker is out of reach: claimed
    # without an owner, the broadcast is an orphan another controller's custody takes over
    owned = claimed == 1 and owner.claim(s, broadcast_id)
    s.commit()
    bc = s.get(Broadcast, broadcast_id)
    if bc is None or claimed != 1:
        logger.warning("broadcast %s is not waiting to air (here); not airing", broadcast_id)
        return None
    if not owned:
        logger.warning("broadcast %s claimed but not aired here: the broker is out of reach (another "
                       "controller takes it over)", broadcast_id)
        return None
    if bc.expires_at <= p.now_ms():
        bc.status, bc.reason = BroadcastStatus.EXPIRED.value, "air time passed its validity"
        _ended(s, bc, owner)
        return None
    try:
        return load_active(s, bc, store, chunk_size)
    except (OSError, ValueError) as exc:
        bc.status, bc.reason = BroadcastStatus.FAILED.value, f"cannot load its audio: {exc}"[:500]
        logger.error("broadcast %s failed: %s", broadcast_id, exc)
        _ended(s, bc, owner)
        return None


def _ended(s: Session, bc: Broadcast, owner: Ownership) -> None:
    s.add(bc)
    owner.release_in(s, bc.id)
    s.commit()
