"""In-app alerts acknowledged by the officer (issue 14): the alerts themselves are computed by the
page that lists them (controller/ui/alerts.py); acknowledging one hides it for this user until it
happens again (its key names the occurrence)."""

from __future__ import annotations

from fastapi import APIRouter
from sqlmodel import col, select

from controller.accounts.models import AlertAck
from controller.api.deps import SessionDep, UserDep
from controller.api.schemas import AlertAckRequest

router = APIRouter(prefix="/api/alerts", tags=["accounts"])


@router.post("/ack")
def acknowledge(body: AlertAckRequest, s: SessionDep, user: UserDep) -> dict[str, int]:
    assert user.id is not None
    keys = {k[:200] for k in body.keys}
    have = set(s.exec(select(AlertAck.key).where(AlertAck.user_id == user.id,
                                                 col(AlertAck.key).in_(keys))).all())
    for k in keys - have:
        s.add(AlertAck(user_id=user.id, key=k))
    s.commit()
    return {"acknowledged": len(keys)}
