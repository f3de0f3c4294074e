"""Bulletins: text in, rendered audio out."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, HTTPException, status
from fastapi.responses import FileResponse
from sqlmodel import Session

from controller.api.deps import ServicesDep, SessionDep, UserDep
from controller.api.schemas import BulletinCreate, BulletinPublic, iso
from controller.models import AudioAsset, Bulletin
from controller.service import ServiceError, render_bulletin

router = APIRouter(prefix="/api/bulletins", tags=["bulletins"])


def default_title(text: str, limit: int = 60) -> str:
    """The first line of the text, cut at a word boundary."""
    first = " ".join(text.strip().splitlines()[0].split()) if text.strip() else ""
    if len(first) <= limit:
        return first
    cut = first[:limit].rsplit(" ", 1)[0]
    return cut + "…"


def _public(s: Session, b: Bulletin) -> BulletinPublic:
    asset = s.get(AudioAsset, b.audio_sha256) if b.audio_sha256 else None
    audio = None if asset is None else {
        "sha256": asset.sha256, "size": asset.size, "duration_ms": asset.duration_ms,
        "codec": asset.codec, "bitrate_kbps": asset.bitrate_kbps, "engine": asset.engine,
        "voice": asset.voice, "url": f"/api/bulletins/{b.id}/audio",
    }
    assert b.id is not None
    return BulletinPublic(id=b.id, title=b.title, text=b.text, voice=b.voice, priority=b.priority,
                          created_at=iso(b.created_at), created_by=b.created_by, audio=audio)


@router.post("", status_code=status.HTTP_201_CREATED, response_model=BulletinPublic)
async def create_bulletin(body: BulletinCreate, sv: ServicesDep, user: UserDep) -> BulletinPublic:
    cfg = sv.settings.tts
    if len(body.text) > cfg.max_chars:
        raise ServiceError(422, f"the text has {len(body.text)} characters; the limit is {cfg.max_chars}")

    def work() -> BulletinPublic:
        with sv.db.session() as s:
            b = render_bulletin(
                s, title=body.title or default_title(body.text), text=body.text,
                voice=body.voice or cfg.voice,
                priority=body.priority, engine=cfg.engine, bitrate_kbps=cfg.bitrate_kbps,
                audio_dir=sv.settings.audio_dir, cache_dir=sv.settings.cache_dir, created_by=user.username,
            )
            return _public(s, b)

    return await asyncio.to_thread(work)


@router.get("/{bulletin_id}", response_model=BulletinPublic)
def get_bulletin(bulletin_id: int, s: SessionDep, _: UserDep) -> BulletinPublic:
    b = s.get(Bulletin, bulletin_id)
    if b is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"bulletin {bulletin_id} does not exist")
    return _public(s, b)


@router.get("/{bulletin_id}/audio", response_class=FileResponse)
def get_audio(bulletin_id: int, sv: ServicesDep, s: SessionDep, _: UserDep) -> FileResponse:
    b = s.get(Bulletin, bulletin_id)
    asset = s.get(AudioAsset, b.audio_sha256) if b and b.audio_sha256 else None
    if asset is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"bulletin {bulletin_id} has no audio")
    return FileResponse(sv.settings.audio_dir / asset.path, media_type="audio/mpeg")
