"""The approval queue: an editor's draft is submitted, then approved or rejected by an approver."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Query, status
from sqlmodel import col, select

from controller.accounts.audit import audit
from controller.accounts.models import User
from controller.api.broadcasts import withdraw
from controller.api.bulletins import bulletin_public
from controller.api.deps import ApproverDep, EditorDep, ServicesDep, SessionDep, UserDep
from controller.api.responses import BulletinSpeechPublic
from controller.api.schemas import Decision
from controller.api.scope import bulletin_for, visible_bulletin_ids
from controller.bulletins.binding import bind
from controller.bulletins.models import Bulletin
from devices.protocol import now_ms

router = APIRouter(prefix="/api/bulletins", tags=["approval"])

APPROVAL_STATES = ("draft", "submitted", "approved", "rejected")


@router.get("", response_model=list[BulletinSpeechPublic])
def list_bulletins(s: SessionDep, user: UserDep, approval: str | None = Query(None, pattern="^[a-z]+$"),
                   limit: int = Query(50, ge=1, le=500)) -> list[BulletinSpeechPublic]:
    """Newest first; ``approval=submitted`` is the approver's queue."""
    q = select(Bulletin).order_by(col(Bulletin.id).desc())
    if approval:
        q = q.where(Bulletin.approval == approval)
    ids = visible_bulletin_ids(s, user)
    if ids is not None:
        q = q.where(col(Bulletin.id).in_(ids))
    return [bulletin_public(s, b) for b in s.exec(q.limit(limit)).all()]


@router.post("/{bulletin_id}/submit", response_model=BulletinSpeechPublic)
def submit(bulletin_id: int, s: SessionDep, user: EditorDep) -> BulletinSpeechPublic:
    b = bulletin_for(s, user, bulletin_id)
    if user.role == "editor" and b.created_by != user.username:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "only its author can submit a draft")
    if b.approval not in ("draft", "rejected"):
        raise HTTPException(status.HTTP_409_CONFLICT, f"bulletin {bulletin_id} is already {b.approval}")
    b.approval, b.submitted_at = "submitted", now_ms()
    s.add(b)
    s.commit()
    audit(s, user.username, "bulletin_submit", f"bulletin:{bulletin_id}")
    return bulletin_public(s, b)


def _decide(bulletin_id: int, s: SessionDep, user: User, body: Decision, to: str) -> BulletinSpeechPublic:
    """Only a submitted (pending) bulletin is decided; an approval binds to its audio and spoken text."""
    b = bulletin_for(s, user, bulletin_id)
    if b.approval == "draft":
        raise HTTPException(status.HTTP_409_CONFLICT, f"bulletin {bulletin_id} is a draft that was never "
                                                      "submitted; its author must submit it first")
    if b.approval != "submitted":
        raise HTTPException(status.HTTP_409_CONFLICT, f"bulletin {bulletin_id} is already {b.approval}")
    if body.audio_sha256 is not None and body.audio_sha256 != b.audio_sha256:
        raise HTTPException(status.HTTP_409_CONFLICT, f"the audio of bulletin {bulletin_id} has changed "
                                                      "since you listened; listen again before deciding")
    if to == "approved" and b.audio_sha256 is None:
        raise HTTPException(status.HTTP_409_CONFLICT, f"bulletin {bulletin_id} has no audio to approve")
    b.approval, b.decided_by, b.decided_at, b.decision_note = to, user.username, now_ms(), body.note
    if to == "approved":
        bind(s, b)
    s.add(b)
    s.commit()
    audit(s, user.username, f"bulletin_{to}", f"bulletin:{bulletin_id}", body.note)
    return bulletin_public(s, b)


@router.post("/{bulletin_id}/approve", response_model=BulletinSpeechPublic)
def approve(bulletin_id: int, s: SessionDep, user: ApproverDep,
            body: Decision | None = None) -> BulletinSpeechPublic:
    return _decide(bulletin_id, s, user, body or Decision(), "approved")


@router.post("/{bulletin_id}/reject", response_model=BulletinSpeechPublic)
async def reject(bulletin_id: int, sv: ServicesDep, user: ApproverDep,
                 body: Decision | None = None) -> BulletinSpeechPublic:
    """A rejected bulletin never airs: what was set to air it (an emergency bypass) is stopped."""
    with sv.db.session() as s:
        out = _decide(bulletin_id, s, user, body or Decision(), "rejected")
    await withdraw(sv, bulletin_id, "its bulletin was rejected")
    return out
