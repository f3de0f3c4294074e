"""The audio library (issue 14): MP3/WAV/M4A/OGG/WebM files uploaded or recorded on a phone,
prepared in the node format once, listed, previewed and reused as the audio of bulletins."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, File, Form, HTTPException, Request, UploadFile, status
from fastapi.responses import FileResponse
from sqlmodel import Session, col, select

from controller.accounts.audit import audit
from controller.accounts.models import User
from controller.accounts.scope import can_see_org
from controller.api.bulletins import bulletin_public
from controller.api.deps import EditorDep, ServicesDep, SessionDep, UserDep
from controller.api.recordings import read_recording
from controller.api.responses import AudioItemPublic, BulletinSpeechPublic, iso
from controller.api.schemas import LibraryUse
from controller.api.speech import MEDIA_TYPES
from controller.bulletins.approval import initial_approval
from controller.bulletins.models import AudioItem, Bulletin
from controller.bulletins.recordings import RECORDING_VOICE
from controller.bulletins.render import store_audio
from controller.core.audiostore import AudioStoreError

router = APIRouter(prefix="/api/library", tags=["bulletins"])
LIBRARY_PATH = router.prefix  # a larger body limit, no request deadline (controller/app.py)


def item_public(a: AudioItem) -> AudioItemPublic:
    assert a.id is not None
    return AudioItemPublic(id=a.id, title=a.title, duration_ms=a.duration_ms, source_format=a.source_format,
                           created_by=a.created_by, created_at=iso(a.created_at))


def visible_items(s: Session, user: User, limit: int = 200) -> list[AudioItem]:
    rows = s.exec(select(AudioItem).order_by(col(AudioItem.id).desc()).limit(limit * 4)).all()
    return [a for a in rows if can_see_org(s, user, a.org_unit_id)][:limit]


def _item(s: Session, user: User, item_id: int) -> AudioItem:
    a = s.get(AudioItem, item_id)
    if a is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"unknown audio item {item_id}")
    if not can_see_org(s, user, a.org_unit_id):
        raise HTTPException(status.HTTP_403_FORBIDDEN, f"audio item {item_id} belongs to another ward")
    return a


@router.get("", response_model=list[AudioItemPublic])
def list_items(s: SessionDep, user: UserDep) -> list[AudioItemPublic]:
    return [item_public(a) for a in visible_items(s, user)]


@router.post("", status_code=status.HTTP_201_CREATED, response_model=AudioItemPublic)
async def upload_item(request: Request, sv: ServicesDep, user: EditorDep,
                      file: Annotated[UploadFile, File(description="MP3, WAV, M4A, OGG or WebM")],
                      title: Annotated[str, Form(max_length=200)] = "") -> AudioItemPublic:
    """Decode, loudness-normalise and encode the file in the node format; anything that is not
    such audio is refused (422) with the reason."""
    name, rec = await read_recording(request, file, sv.settings.tts)

    def store() -> AudioItemPublic:
        with sv.db.session() as s:
            store_audio(s, sv.audio, data=rec.data, sha256=rec.sha256, codec=rec.codec,
                        duration_ms=rec.duration_ms, sample_rate=rec.sample_rate,
                        bitrate_kbps=rec.bitrate_kbps, engine=RECORDING_VOICE, voice=rec.source_format)
            a = AudioItem(title=(title.strip() or name.rsplit(".", 1)[0] or "Âm thanh")[:200],
                          audio_sha256=rec.sha256, duration_ms=rec.duration_ms,
                          source_format=rec.source_format,
                          org_unit_id=user.org_unit_id, created_by=user.username)
            s.add(a)
            s.commit()
            s.refresh(a)
            audit(s, user.username, "library_add", f"audio:{a.id}",
                  f"{rec.source_format} {rec.duration_ms} ms")
            return item_public(a)

    return await asyncio.to_thread(store)


@router.get("/{item_id}/audio", response_class=FileResponse)
def item_audio(item_id: int, sv: ServicesDep, s: SessionDep, user: UserDep) -> FileResponse:
    """The prepared audio (what the units would play), for the preview player."""
    a = _item(s, user, item_id)
    try:
        path = sv.audio.file(a.audio_sha256)
    except AudioStoreError as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"audio item {item_id} has no audio: {exc}") from None
    return FileResponse(path, media_type=MEDIA_TYPES.get(path.suffix.lstrip("."), "application/octet-stream"))


@router.post("/{item_id}/bulletin", status_code=status.HTTP_201_CREATED, response_model=BulletinSpeechPublic)
def use_item(item_id: int, s: SessionDep, user: EditorDep,
             body: LibraryUse | None = None) -> BulletinSpeechPublic:
    """A new bulletin whose audio is this item's (it goes through approval like any other)."""
    a = _item(s, user, item_id)
    body = body or LibraryUse()
    b = Bulletin(title=(body.title.strip() or a.title)[:200], text=body.text, voice=RECORDING_VOICE,
                 priority=body.priority,
                 audio_sha256=a.audio_sha256, created_by=user.username, warnings=[])
    initial_approval(b, user)
    s.add(b)
    s.commit()
    s.refresh(b)
    audit(s, user.username, "library_use", f"bulletin:{b.id}", f"audio:{item_id}")
    return bulletin_public(s, b)


@router.delete("/{item_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_item(item_id: int, s: SessionDep, user: EditorDep) -> None:
    """Remove an item from the library (bulletins made from it keep their audio). Its author, or
    an approver or admin of its ward."""
    a = _item(s, user, item_id)
    if user.role == "editor" and a.created_by != user.username:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "only its author or an approver may delete it")
    s.delete(a)
    s.commit()
    audit(s, user.username, "library_delete", f"audio:{item_id}", a.title)
