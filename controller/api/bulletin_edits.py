"""A bulletin duplicated or deleted from the bulletin editor (issue 14). Editing and resubmitting
are ``PATCH /api/bulletins/{id}`` and ``POST /api/bulletins/{id}/submit``."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, status
from sqlmodel import Session, col, delete, select

from controller.accounts.audit import audit
from controller.accounts.models import User
from controller.airing.models import Broadcast
from controller.api.bulletins import bulletin_public
from controller.api.deps import EditorDep, SessionDep
from controller.api.responses import BulletinSpeechPublic
from controller.api.scope import bulletin_for
from controller.bulletins.approval import initial_approval
from controller.bulletins.models import Bulletin, BulletinSpeech
from scheduler.models import Schedule

router = APIRouter(prefix="/api/bulletins", tags=["bulletins"])


def _mine(s: Session, user: User, bulletin_id: int, verb: str) -> Bulletin:
    b = bulletin_for(s, user, bulletin_id)
    if user.role == "editor" and b.created_by != user.username:
        raise HTTPException(status.HTTP_403_FORBIDDEN, f"only its author or an approver may {verb} it")
    return b


@router.post("/{bulletin_id:int}/duplicate", status_code=status.HTTP_201_CREATED,
             response_model=BulletinSpeechPublic)
def duplicate(bulletin_id: int, s: SessionDep, user: EditorDep) -> BulletinSpeechPublic:
    """A copy (same text, voice, class and audio) that starts its own approval as a new bulletin."""
    b = bulletin_for(s, user, bulletin_id)
    copy = Bulletin(title=b.title[:190] + " (bản sao)", text=b.text, voice=b.voice, priority=b.priority,
                    audio_sha256=b.audio_sha256, created_by=user.username, warnings=list(b.warnings))
    initial_approval(copy, user)
    s.add(copy)
    s.commit()
    s.refresh(copy)
    assert copy.id is not None
    speech = s.get(BulletinSpeech, bulletin_id)
    if speech is not None:
        s.add(BulletinSpeech(bulletin_id=copy.id, spoken_text=speech.spoken_text,
                             requested_engine=speech.requested_engine, engine=speech.engine,
                             voice=speech.voice,
                             dictionary_hits=list(speech.dictionary_hits), speed=speech.speed))
        s.commit()
    audit(s, user.username, "bulletin_duplicate", f"bulletin:{copy.id}", f"from bulletin:{bulletin_id}")
    return bulletin_public(s, copy)


@router.delete("/{bulletin_id:int}", status_code=status.HTTP_204_NO_CONTENT)
def delete_bulletin(bulletin_id: int, s: SessionDep, user: EditorDep) -> None:
    """Delete a bulletin that never aired and no schedule uses (its author, or an approver or
    admin of its ward); an aired one stays for the history (409)."""
    b = _mine(s, user, bulletin_id, "delete")
    if s.exec(select(Broadcast.id).where(Broadcast.bulletin_id == bulletin_id)).first() is not None:
        raise HTTPException(status.HTTP_409_CONFLICT,
                            f"bulletin {bulletin_id} has been aired: it stays in the history")
    used = s.exec(select(Schedule.id).where(Schedule.bulletin_id == bulletin_id)).first()
    if used is not None:
        raise HTTPException(status.HTTP_409_CONFLICT,
                            f"bulletin {bulletin_id} is used by schedule {used}: delete the schedule first")
    s.exec(delete(BulletinSpeech).where(col(BulletinSpeech.bulletin_id) == bulletin_id))  # type: ignore[call-overload]
    s.delete(b)
    s.commit()
    audit(s, user.username, "bulletin_delete", f"bulletin:{bulletin_id}", b.title)
