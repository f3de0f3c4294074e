"""Speech: preview a text before it airs, check its spoken form, and edit the pronunciation
dictionary of one's org unit (names of hamlets, people, local terms; controller/bulletins/dictionary.py).

Audio by hash (``/audio/{sha256}``) is served only to those who may hear it: the makers of a
preview (and users who can see their org unit), and users who can see a bulletin or broadcast
with that audio. Everything else is 404, whether it exists or not."""

from __future__ import annotations

import asyncio
import base64
import logging
from typing import Any

from fastapi import APIRouter, HTTPException, Query, Response, status
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

import tts
from controller.accounts.audit import audit
from controller.accounts.models import OrgUnit, User
from controller.accounts.scope import can_see_org
from controller.airing.models import Broadcast
from controller.api.broadcasts import withdraw
from controller.api.deps import ServicesDep, SessionDep, UserDep
from controller.api.responses import EntryPublic, NormalizePublic, PreviewPublic, iso
from controller.api.schemas import EntryCreate, EntryUpdate, NormalizeRequest, PreviewRequest
from controller.bulletins.dictionary import edit_refusal, effective_entries, load_dictionary, may_view
from controller.bulletins.models import AudioAsset, Bulletin, BulletinSpeech, PronunciationEntry
from controller.bulletins.reread import Reread, recheck_after_dictionary_change
from controller.bulletins.speech_settings import TtsSettings, render_options
from controller.core.audiostore import AudioStoreError
from controller.core.errors import ServiceError
from controller.settings import Settings
from tts.cache import AudioCache, CacheEntry

logger = logging.getLogger(__name__)

router = APIRouter(prefix="/api/speech", tags=["speech"])

MEDIA_TYPES = {"mp3": "audio/mpeg", "opus": "audio/ogg"}
NO_AUDIO = "no such audio (a preview is kept for a while only; render it again)"
MAX_MAKERS = 50  # users remembered per preview (the same text previewed by many)
USER_ERRORS = (tts.EmptyTextError, tts.TextTooLongError, tts.UnknownVoiceError, tts.InvalidOptionError,
               tts.SilentSpeechError)  # the text's or the request's problem: 422


def preview_store(settings: Settings) -> AudioCache:
    return AudioCache(settings.data_dir / "previews", max_bytes=settings.tts.preview_max_mb * 1024 * 1024)


def _entry(e: PronunciationEntry, overridden: bool = False,
           rerendered: list[int] | None = None) -> EntryPublic:
    assert e.id is not None
    return EntryPublic(id=e.id, org_unit_id=e.org_unit_id, term=e.term, spoken=e.spoken, note=e.note,
                       created_by=e.created_by, created_at=iso(e.created_at), overridden=overridden,
                       rerendered=rerendered or [])


@router.get("/engines")
def engines(sv: ServicesDep, _: UserDep) -> dict[str, Any]:
    """Engines with their voices and limits, and the ward's chain."""
    cfg = sv.settings.tts
    cfg.register_engines()
    return {"engine": cfg.engine, "fallback": cfg.fallback, "voice": cfg.voice,
            "engines": [tts.get_engine(n).describe() for n in tts.available_engines()]}


@router.post("/normalize", response_model=NormalizePublic)
def normalize(body: NormalizeRequest, sv: ServicesDep, s: SessionDep, user: UserDep) -> NormalizePublic:
    """The spoken form only (no audio): quick to check a pronunciation."""
    opts = _options(sv.settings.tts, voice=body.voice, engine=body.engine)
    try:
        engine = tts.get_engine(opts["engine"])
        dialect = engine.accent(engine.resolve_voice(opts["voice"]))
    except (tts.UnknownVoiceError, tts.EngineError) as exc:
        raise ServiceError(422, str(exc)) from None
    out = tts.normalize(body.text, dialect=dialect, dictionary=load_dictionary(s, user.org_unit_id))
    return NormalizePublic(text=out.text, dialect=dialect, warnings=list(out.warnings),
                           dictionary_hits=list(out.dictionary_hits))


def _options(cfg: TtsSettings, **kw: Any) -> dict[str, Any]:
    try:
        return render_options(cfg, **kw)
    except tts.EngineError as exc:
        raise ServiceError(422, str(exc)) from None


@router.post("/preview", response_model=PreviewPublic)
async def preview(body: PreviewRequest, sv: ServicesDep, user: UserDep) -> PreviewPublic:
    """Render the text as it would air, without storing a bulletin: listen, fix, repeat."""
    cfg = sv.settings.tts
    opts = _options(cfg, priority=body.priority, voice=body.voice, engine=body.engine, speed=body.speed)

    def work() -> tts.RenderedAudio:
        with sv.db.session() as s:
            dictionary = load_dictionary(s, user.org_unit_id)
        try:
            return tts.render(body.text, cache_dir=sv.settings.cache_dir, dictionary=dictionary,
                              max_chars=cfg.max_chars, **opts)
        except USER_ERRORS as exc:
            raise ServiceError(422, str(exc)) from None
        except tts.TTSError as exc:
            raise ServiceError(503, f"speech synthesis failed: {exc}") from None

    audio = await asyncio.to_thread(work)
    await asyncio.to_thread(_keep_preview, sv.settings, audio, user.username)
    return PreviewPublic(
        text=audio.text, duration_ms=audio.duration_ms, warnings=list(audio.warnings), engine=audio.engine,
        requested_engine=audio.requested_engine, voice=audio.voice, codec=audio.codec, sha256=audio.sha256,
        size=len(audio.data), dictionary_hits=list(audio.dictionary_hits),
        audio_url=f"/api/speech/audio/{audio.sha256}",
        audio_base64=base64.b64encode(audio.data).decode("ascii") if body.inline else None,
    )


def _keep_preview(settings: Settings, audio: tts.RenderedAudio, username: str) -> None:
    """Store the preview for its makers (the same text previewed again adds its new maker)."""
    store = preview_store(settings)
    old = store.get(audio.sha256)
    makers = list(old.metadata.get("makers") or []) if old is not None else []
    makers = [*[m for m in makers if isinstance(m, str) and m != username][-(MAX_MAKERS - 1):], username]
    store.put(audio.sha256, audio.data, {"codec": audio.codec, "makers": makers})


def _may_hear_preview(s: Session, user: User, entry: CacheEntry) -> bool:
    makers = [m for m in entry.metadata.get("makers") or [] if isinstance(m, str)]
    if user.username in makers:
        return True
    rows = s.exec(select(User.org_unit_id).where(col(User.username).in_(makers))).all() if makers else []
    return any(can_see_org(s, user, org) for org in rows)


def _may_hear_stored(s: Session, user: User, sha256: str) -> bool:
    """Some bulletin or broadcast with this audio belongs to the user's subtree."""
    orgs = list(s.exec(select(Bulletin.org_unit_id).where(
        (col(Bulletin.audio_sha256) == sha256) | (col(Bulletin.approved_sha256) == sha256))).all())
    aired = select(Bulletin.org_unit_id).join(Broadcast, col(Broadcast.bulletin_id) == col(Bulletin.id))
    orgs += s.exec(aired.where(col(Broadcast.audio_sha256) == sha256)).all()
    return any(can_see_org(s, user, org) for org in set(orgs))


@router.get("/audio/{sha256}", response_class=Response)
def audio(sha256: str, sv: ServicesDep, s: SessionDep, user: UserDep) -> Response:
    """Audio of a preview you (or someone of your ward) made, or of a bulletin of your ward; else 404."""
    if len(sha256) != 64 or any(ch not in "0123456789abcdef" for ch in sha256):
        raise HTTPException(status.HTTP_404_NOT_FOUND, NO_AUDIO)
    entry = preview_store(sv.settings).get(sha256)
    if entry is not None and _may_hear_preview(s, user, entry):
        codec = str(entry.metadata.get("codec", "mp3"))
        return Response(entry.data, media_type=MEDIA_TYPES.get(codec, "application/octet-stream"))
    asset = s.get(AudioAsset, sha256)
    if asset is None or not _may_hear_stored(s, user, sha256):
        raise HTTPException(status.HTTP_404_NOT_FOUND, NO_AUDIO)
    try:  # from the audio store, whichever controller rendered it
        data = sv.audio.get(sha256)
    except AudioStoreError as exc:
        logger.error("stored audio %s: %s", sha256[:12], exc)
        raise HTTPException(status.HTTP_404_NOT_FOUND, NO_AUDIO) from None
    return Response(data, media_type=MEDIA_TYPES.get(asset.codec, "application/octet-stream"))


@router.get("/dictionary", response_model=list[EntryPublic])
def list_entries(s: SessionDep, user: UserDep, org_unit_id: str | None = Query(
        None, max_length=63, description="whose dictionary (default: yours): the entries that apply "
                                         "there, from the top down")) -> list[EntryPublic]:
    org = org_unit_id if org_unit_id is not None else user.org_unit_id
    if not may_view(s, user, org):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"org unit {org} has no dictionary you can see")
    return [_entry(x.entry, x.overridden) for x in effective_entries(s, org)]


async def _recheck(sv: ServicesDep, org: str | None, by: str, change: str) -> list[int]:
    """Bulletins the change reaches are read again; broadcasts still to come of those that need
    approval again are withdrawn (their audio is no longer the approved one)."""
    cfg = sv.settings.tts

    def options_for(b: Bulletin, speech: BulletinSpeech) -> dict[str, Any]:
        opts = render_options(cfg, priority=b.priority, voice=b.voice, engine=speech.requested_engine,
                              speed=speech.speed)
        return {**opts, "cache_dir": sv.settings.cache_dir, "max_chars": cfg.max_chars}

    def work() -> Reread:
        with sv.db.session() as s:
            return recheck_after_dictionary_change(s, org_unit_id=org, options_for=options_for,
                                                   store=sv.audio, by=by, change=change)

    done = await asyncio.to_thread(work)
    for bid in done.reopened:
        await withdraw(sv, bid, "its audio changed after approval; it needs approval again")
    return done.changed


def _refuse_edit(s: Session, user: User, org: str | None) -> None:
    why = edit_refusal(s, user, org)
    if why is not None:
        raise HTTPException(why[0], why[1])
    if org is not None and s.get(OrgUnit, org) is None:
        raise ServiceError(422, f"unknown org unit {org}")


@router.post("/dictionary", status_code=status.HTTP_201_CREATED, response_model=EntryPublic)
async def add_entry(body: EntryCreate, sv: ServicesDep, user: UserDep) -> EntryPublic:
    """An entry of your org unit's dictionary (an admin: of any unit of their subtree). Bulletins it
    reaches whose spoken text it changes are read again; approved ones need approval again."""
    org = body.org_unit_id if body.org_unit_id is not None else user.org_unit_id
    with sv.db.session() as s:
        entry = _add(s, body, user, org)
    changed = await _recheck(sv, org, user.username,
                             f"the pronunciation entry '{body.term}' → '{body.spoken}' of {org or 'the top'} "
                             f"(by {user.username})")
    return _entry(entry, rerendered=changed)


def _add(s: Session, body: EntryCreate, user: User, org: str | None) -> PronunciationEntry:
    _refuse_edit(s, user, org)
    key = body.term.casefold()
    existing = s.exec(select(PronunciationEntry).where(PronunciationEntry.term_key == key,
                                                       PronunciationEntry.org_unit_id == org)).first()
    if existing is not None:
        raise ServiceError(409, f"'{existing.term}' is already in the dictionary (entry {existing.id}, read "
                                f"as '{existing.spoken}'); delete it first to change it")
    entry = PronunciationEntry(org_unit_id=org, term=body.term, term_key=key, spoken=body.spoken,
                               note=body.note, created_by=user.username)
    s.add(entry)
    try:
        s.commit()
    except IntegrityError:  # added concurrently
        s.rollback()
        raise ServiceError(409, f"'{body.term}' is already in the dictionary") from None
    s.refresh(entry)
    audit(s, user.username, "dictionary_add", f"dictionary:{org or 'top'}", f"{body.term} → {body.spoken}")
    return entry


@router.patch("/dictionary/{entry_id}", response_model=EntryPublic)
async def update_entry(entry_id: int, body: EntryUpdate, sv: ServicesDep, user: UserDep) -> EntryPublic:
    """A new spoken form or note for an entry (the term stays; to change it, delete the entry and add
    one). Bulletins it reaches whose spoken text changes are read again, as for a new entry."""
    with sv.db.session() as s:
        entry = _editable(s, user, entry_id)
        org, was = entry.org_unit_id, entry.spoken
        entry.spoken = body.spoken if body.spoken is not None else entry.spoken
        entry.note = body.note if body.note is not None else entry.note
        s.add(entry)
        s.commit()
        s.refresh(entry)
        audit(s, user.username, "dictionary_update", f"dictionary:{org or 'top'}",
              f"{entry.term}: {was} → {entry.spoken}")
    changed: list[int] = []
    if entry.spoken != was:
        why = (f"the pronunciation entry '{entry.term}' now read '{entry.spoken}' (was '{was}', "
               f"by {user.username})")
        changed = await _recheck(sv, org, user.username, why)
    return _entry(entry, rerendered=changed)


def _editable(s: Session, user: User, entry_id: int) -> PronunciationEntry:
    entry = s.get(PronunciationEntry, entry_id)
    if entry is None or not may_view(s, user, entry.org_unit_id):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"dictionary entry {entry_id} does not exist")
    _refuse_edit(s, user, entry.org_unit_id)
    return entry


@router.delete("/dictionary/{entry_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_entry(entry_id: int, sv: ServicesDep, user: UserDep) -> Response:
    with sv.db.session() as s:
        entry = _editable(s, user, entry_id)
        org, term = entry.org_unit_id, entry.term
        s.delete(entry)
        s.commit()
        audit(s, user.username, "dictionary_delete", f"dictionary:{org or 'top'}", term)
    await _recheck(sv, org, user.username,
                   f"removing the pronunciation entry '{term}' of {org or 'the top'} (by {user.username})")
    return Response(status_code=status.HTTP_204_NO_CONTENT)
