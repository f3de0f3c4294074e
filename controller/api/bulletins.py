"""Bulletins: text in, rendered audio out."""

from __future__ import annotations

import asyncio
import logging

from fastapi import APIRouter, HTTPException, status
from fastapi.responses import FileResponse, JSONResponse
from sqlmodel import Session

import tts
from controller.accounts.models import User
from controller.accounts.roles import CAN_EMERGENCY, CAN_WRITE_BULLETINS
from controller.api.broadcasts import withdraw
from controller.api.deps import EditorDep, ServicesDep, SessionDep, UserDep
from controller.api.idempotent import KeyHeader, Made, Post, run_post
from controller.api.responses import BulletinSpeechPublic, iso
from controller.api.schemas import BulletinEdit, BulletinSpeechCreate
from controller.api.scope import bulletin_for
from controller.api.speech import MEDIA_TYPES, render_options
from controller.bulletins.approval import initial_approval
from controller.bulletins.binding import reopen
from controller.bulletins.dictionary import load_dictionary
from controller.bulletins.models import AudioAsset, Bulletin, BulletinSpeech
from controller.bulletins.render import render_bulletin
from controller.bulletins.reread import RECORDING_VOICE, use_audio
from controller.core.audiostore import AudioStoreError
from controller.core.errors import ServiceError

logger = logging.getLogger(__name__)

router = APIRouter(prefix="/api/bulletins", tags=["bulletins"])


def default_title(text: str, limit: int = 60) -> str:
    """The first line of the text, cut at a word boundary."""
    first = " ".join(text.strip().splitlines()[0].split()) if text.strip() else ""
    if len(first) <= limit:
        return first
    cut = first[:limit].rsplit(" ", 1)[0]
    return cut + "…"


def bulletin_public(s: Session, b: Bulletin) -> BulletinSpeechPublic:
    """A bulletin as the API shows it: its text, audio, speech warnings and approval state."""
    asset = s.get(AudioAsset, b.audio_sha256) if b.audio_sha256 else None
    audio = None if asset is None else {
        "sha256": asset.sha256, "size": asset.size, "duration_ms": asset.duration_ms,
        "codec": asset.codec, "bitrate_kbps": asset.bitrate_kbps, "engine": asset.engine,
        "voice": asset.voice, "url": f"/api/bulletins/{b.id}/audio",
    }
    assert b.id is not None
    speech = s.get(BulletinSpeech, b.id)
    return BulletinSpeechPublic(
        id=b.id, title=b.title, text=b.text, voice=b.voice, priority=b.priority,
        created_at=iso(b.created_at), created_by=b.created_by, audio=audio, warnings=list(b.warnings or []),
        spoken_text=speech.spoken_text if speech else None,
        requested_engine=speech.requested_engine if speech else None,
        dictionary_hits=list(speech.dictionary_hits) if speech else [],
        approval=b.approval, org_unit_id=b.org_unit_id, submitted_at=iso(b.submitted_at),
        decided_by=b.decided_by, decided_at=iso(b.decided_at), decision_note=b.decision_note,
        approved_sha256=b.approved_sha256, approved_spoken_text=b.approved_spoken_text,
        pending_reason=b.pending_reason,
    )


@router.post("", status_code=status.HTTP_201_CREATED, response_model=BulletinSpeechPublic)
async def create_bulletin(body: BulletinSpeechCreate, sv: ServicesDep, user: UserDep,
                          key: KeyHeader = None) -> BulletinSpeechPublic | JSONResponse:
    """Normalise and render the text through the ward's engine chain; warnings say what happened.

    An editor's bulletin starts as a draft that an approver must approve before it can air; one
    written by an approver or an admin is approved by its author (recorded as such). With an
    ``Idempotency-Key`` a retry gets the first answer and makes no second bulletin (docs/faults.md)."""
    emergency_ok = body.priority == "emergency" and user.role in CAN_EMERGENCY
    if user.role not in CAN_WRITE_BULLETINS and not emergency_ok:
        raise HTTPException(status.HTTP_403_FORBIDDEN, f"your role ({user.role}) may not write bulletins")
    cfg = sv.settings.tts
    if len(body.text) > cfg.max_chars:
        raise ServiceError(422, f"the text has {len(body.text)} characters; the limit is {cfg.max_chars}")
    try:
        opts = render_options(cfg, priority=body.priority, voice=body.voice, speed=body.speed)
    except tts.EngineError as exc:
        raise ServiceError(422, str(exc)) from None

    def work(s: Session) -> Made:
        b = render_bulletin(
            s, title=body.title or default_title(body.text), text=body.text, priority=body.priority,
            store=sv.audio, cache_dir=sv.settings.cache_dir, created_by=user.username,
            org_unit_id=user.org_unit_id, prepare=lambda b: initial_approval(b, user), **opts,
        )  # read with the dictionary of the author's org unit, approval state set before storing
        return Made(201, bulletin_public(s, b))

    def rebuild(s: Session, ref: str) -> tuple[int, BulletinSpeechPublic]:
        b = s.get(Bulletin, int(ref))
        assert b is not None
        return 201, bulletin_public(s, b)

    post = Post(user.username, key, "POST /api/bulletins", body.model_dump(mode="json"))
    return await run_post(sv.db, post, work, made=Bulletin, rebuild=rebuild)  # type: ignore[return-value]


@router.get("/{bulletin_id:int}", response_model=BulletinSpeechPublic)  # :int — not /recordings (POST)
def get_bulletin(bulletin_id: int, s: SessionDep, user: UserDep) -> BulletinSpeechPublic:
    return bulletin_public(s, bulletin_for(s, user, bulletin_id))


def _edit(sv: ServicesDep, user: User, bulletin_id: int,
          body: BulletinEdit) -> tuple[BulletinSpeechPublic, bool]:
    """Apply the edit (blocking: synthesis); returns the bulletin and whether it was approved before."""
    changes = body.model_dump(exclude_none=True)
    with sv.db.session() as s:
        b = bulletin_for(s, user, bulletin_id)
        if user.role == "editor" and b.created_by != user.username:
            raise HTTPException(status.HTTP_403_FORBIDDEN, "only its author or an approver may edit it")
        speech = s.get(BulletinSpeech, bulletin_id)
        changes = {k: v for k, v in changes.items()
                   if v != (speech.speed if k == "speed" and speech else getattr(b, k, None))}
        if not changes:
            return bulletin_public(s, b), False
        if set(changes) & {"text", "voice", "speed"} and (b.voice == RECORDING_VOICE or speech is None):
            raise ServiceError(409, f"bulletin {bulletin_id} is a recording: its audio cannot be edited; "
                                    "upload a new recording")
        cfg = sv.settings.tts
        text = changes.get("text", b.text)
        if len(text) > cfg.max_chars:
            raise ServiceError(422, f"the text has {len(text)} characters; the limit is {cfg.max_chars}")
        if speech is not None and set(changes) & {"text", "voice", "speed", "priority"}:
            speed = changes.get("speed", speech.speed)
            try:
                opts = render_options(cfg, priority=changes.get("priority", b.priority),
                                      voice=changes.get("voice", b.voice), engine=speech.requested_engine,
                                      speed=speed)
                audio = tts.render(text, dictionary=load_dictionary(s, b.org_unit_id),
                                   cache_dir=sv.settings.cache_dir, max_chars=cfg.max_chars, **opts)
            except (tts.EmptyTextError, tts.TextTooLongError, tts.UnknownVoiceError, tts.InvalidOptionError,
                    tts.EngineError) as exc:
                raise ServiceError(422, str(exc)) from None
            except tts.TTSError as exc:
                raise ServiceError(503, f"speech synthesis failed: {exc}") from None
            use_audio(s, b, speech, audio, sv.audio)
            speech.speed = speed
        for k in ("title", "text", "voice", "priority"):
            if k in changes:
                setattr(b, k, changes[k])
        was = b.approval
        if was == "rejected":
            b.approval = "draft"  # edited after a rejection: its author submits it again
        s.add(b)
        s.commit()
        if was == "approved":
            reopen(s, b, by=user.username,
                   reason=f"edited by {user.username} ({', '.join(sorted(changes))}) after approval")
        return bulletin_public(s, b), was == "approved"


@router.patch("/{bulletin_id:int}", response_model=BulletinSpeechPublic)
async def edit_bulletin(bulletin_id: int, body: BulletinEdit, sv: ServicesDep,
                        user: EditorDep) -> BulletinSpeechPublic:
    """Edit a bulletin (its author, or an approver or admin of its ward). Its text, voice, speed or
    priority make it read again; an approved bulletin that is edited needs approval again (what was
    set to air it is withdrawn), a rejected one becomes a draft to submit again."""
    out, reopened = await asyncio.to_thread(_edit, sv, user, bulletin_id, body)
    if reopened:
        await withdraw(sv, bulletin_id, "it was edited after approval; it needs approval again")
    return out


@router.get("/{bulletin_id}/audio", response_class=FileResponse)
def get_audio(bulletin_id: int, sv: ServicesDep, s: SessionDep, user: UserDep) -> FileResponse:
    b = bulletin_for(s, user, bulletin_id)
    asset = s.get(AudioAsset, b.audio_sha256) if b.audio_sha256 else None
    if asset is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"bulletin {bulletin_id} has no audio")
    try:  # from the audio store, whichever controller made it (kept in this one's cache)
        path = sv.audio.file(asset.sha256)
    except AudioStoreError as exc:
        logger.error("bulletin %s: %s", bulletin_id, exc)
        raise HTTPException(status.HTTP_404_NOT_FOUND,
                            f"bulletin {bulletin_id} has no audio: {exc}") from None
    return FileResponse(path, media_type=MEDIA_TYPES.get(asset.codec, "application/octet-stream"))
