"""Speech: preview a text before it airs, check its spoken form, and edit the ward's
pronunciation dictionary (names of hamlets, people, local terms)."""

from __future__ import annotations

import asyncio
import base64
import unicodedata
from typing import Any

from fastapi import APIRouter, HTTPException, Response, status
from pydantic import BaseModel, Field, field_validator
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select

import tts
from controller.api.deps import ServicesDep, SessionDep, UserDep
from controller.api.schemas import Priority, Strict, iso
from controller.models import AudioAsset, PronunciationEntry
from controller.service import ServiceError, load_dictionary
from controller.settings import Settings, TtsSettings
from tts.cache import AudioCache

router = APIRouter(prefix="/api/speech", tags=["speech"])

MEDIA_TYPES = {"mp3": "audio/mpeg", "opus": "audio/ogg"}
USER_ERRORS = (tts.EmptyTextError, tts.TextTooLongError, tts.UnknownVoiceError, tts.InvalidOptionError)


def render_options(cfg: TtsSettings, *, priority: str = "normal", voice: str | None = None,
                   engine: str | None = None, speed: float | None = None) -> dict[str, Any]:
    """Keyword arguments for ``tts.render`` / ``render_bulletin`` from the ward's settings.

    Registers the configured gTTS and HTTP engines first. An explicit ``engine`` is tried
    first and the ward's chain follows it.
    """
    cfg.register_engines()
    first = engine or cfg.engine
    return {
        "engine": first,
        "fallback": [e for e in [cfg.engine, *cfg.fallback] if e != first],
        "voice": voice or (cfg.voice if first == cfg.engine else tts.get_engine(first).voices[0]),
        "speed": cfg.speed if speed is None else speed,
        "codec": cfg.codec,
        "bitrate_kbps": cfg.bitrate_kbps,
        "audio": tts.AudioOptions(loudness_dbfs=cfg.loudness_dbfs, chime=cfg.chime,
                                  attention=priority == "emergency" and cfg.attention_tone),
        "cache_max_bytes": cfg.cache_max_mb * 1024 * 1024,
    }


def preview_store(settings: Settings) -> AudioCache:
    return AudioCache(settings.data_dir / "previews", max_bytes=settings.tts.preview_max_mb * 1024 * 1024)


class PreviewRequest(Strict):
    text: str = Field(description="the bulletin as written")
    voice: str | None = Field(None, description="voice of the engine (default: the ward's)")
    engine: str | None = Field(None, description="engine to try first (default: the ward's)")
    speed: float | None = Field(None, ge=0.5, le=2.0, description="1.0 = normal")
    priority: Priority = Field("normal", description="emergency adds the attention tone")
    inline: bool = Field(False, description="also return the audio as base64")


class PreviewPublic(BaseModel):
    text: str = Field(description="the spoken (normalised) form that was synthesised")
    duration_ms: int
    warnings: list[str]
    engine: str
    requested_engine: str
    voice: str
    codec: str
    sha256: str
    size: int
    dictionary_hits: list[str]
    audio_url: str
    audio_base64: str | None = None


class NormalizeRequest(Strict):
    text: str
    voice: str | None = None
    engine: str | None = None


class NormalizePublic(BaseModel):
    text: str
    dialect: str
    warnings: list[str]
    dictionary_hits: list[str]


class EntryCreate(Strict):
    term: str = Field(min_length=1, max_length=100, description="as written, e.g. 'Kẻ Sặt' or 'Đ/c Hùng'")
    spoken: str = Field(min_length=1, max_length=300, description="how it is read aloud")
    note: str = Field("", max_length=200)

    @field_validator("term", "spoken")
    @classmethod
    def _text(cls, v: str) -> str:
        v = " ".join(unicodedata.normalize("NFC", v).split())
        if not any(unicodedata.category(ch)[0] in ("L", "N") for ch in v):
            raise ValueError("must contain at least one letter or digit")
        return v


class EntryPublic(BaseModel):
    id: int
    term: str
    spoken: str
    note: str
    created_by: str
    created_at: str | None


def _entry(e: PronunciationEntry) -> EntryPublic:
    assert e.id is not None
    return EntryPublic(id=e.id, term=e.term, spoken=e.spoken, note=e.note, created_by=e.created_by,
                       created_at=iso(e.created_at))


@router.get("/engines")
def engines(sv: ServicesDep, _: UserDep) -> dict[str, Any]:
    """Engines with their voices and limits, and the ward's chain."""
    cfg = sv.settings.tts
    cfg.register_engines()
    return {"engine": cfg.engine, "fallback": cfg.fallback, "voice": cfg.voice,
            "engines": [tts.get_engine(n).describe() for n in tts.available_engines()]}


@router.post("/normalize", response_model=NormalizePublic)
def normalize(body: NormalizeRequest, sv: ServicesDep, s: SessionDep, _: UserDep) -> NormalizePublic:
    """The spoken form only (no audio): quick to check a pronunciation."""
    opts = _options(sv.settings.tts, voice=body.voice, engine=body.engine)
    try:
        engine = tts.get_engine(opts["engine"])
        dialect = engine.accent(engine.resolve_voice(opts["voice"]))
    except (tts.UnknownVoiceError, tts.EngineError) as exc:
        raise ServiceError(422, str(exc)) from None
    out = tts.normalize(body.text, dialect=dialect, dictionary=load_dictionary(s))
    return NormalizePublic(text=out.text, dialect=dialect, warnings=list(out.warnings),
                           dictionary_hits=list(out.dictionary_hits))


def _options(cfg: TtsSettings, **kw: Any) -> dict[str, Any]:
    try:
        return render_options(cfg, **kw)
    except tts.EngineError as exc:
        raise ServiceError(422, str(exc)) from None


@router.post("/preview", response_model=PreviewPublic)
async def preview(body: PreviewRequest, sv: ServicesDep, _: UserDep) -> PreviewPublic:
    """Render the text as it would air, without storing a bulletin: listen, fix, repeat."""
    cfg = sv.settings.tts
    opts = _options(cfg, priority=body.priority, voice=body.voice, engine=body.engine, speed=body.speed)

    def work() -> tts.RenderedAudio:
        with sv.db.session() as s:
            dictionary = load_dictionary(s)
        try:
            return tts.render(body.text, cache_dir=sv.settings.cache_dir, dictionary=dictionary,
                              max_chars=cfg.max_chars, **opts)
        except USER_ERRORS as exc:
            raise ServiceError(422, str(exc)) from None
        except tts.TTSError as exc:
            raise ServiceError(503, f"speech synthesis failed: {exc}") from None

    audio = await asyncio.to_thread(work)
    await asyncio.to_thread(preview_store(sv.settings).put, audio.sha256, audio.data, {"codec": audio.codec})
    return PreviewPublic(
        text=audio.text, duration_ms=audio.duration_ms, warnings=list(audio.warnings), engine=audio.engine,
        requested_engine=audio.requested_engine, voice=audio.voice, codec=audio.codec, sha256=audio.sha256,
        size=len(audio.data), dictionary_hits=list(audio.dictionary_hits),
        audio_url=f"/api/speech/audio/{audio.sha256}",
        audio_base64=base64.b64encode(audio.data).decode("ascii") if body.inline else None,
    )


@router.get("/audio/{sha256}", response_class=Response)
def audio(sha256: str, sv: ServicesDep, s: SessionDep, _: UserDep) -> Response:
    """Audio of a preview (kept while the preview store has room) or of any stored bulletin."""
    if len(sha256) != 64 or any(ch not in "0123456789abcdef" for ch in sha256):
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such audio")
    entry = preview_store(sv.settings).get(sha256)
    if entry is not None:
        codec = str(entry.metadata.get("codec", "mp3"))
        return Response(entry.data, media_type=MEDIA_TYPES.get(codec, "application/octet-stream"))
    asset = s.get(AudioAsset, sha256)
    path = sv.settings.audio_dir / asset.path if asset else None
    if asset is None or path is None or not path.is_file():
        raise HTTPException(status.HTTP_404_NOT_FOUND, "this preview has expired; render it again")
    return Response(path.read_bytes(), media_type=MEDIA_TYPES.get(asset.codec, "application/octet-stream"))


@router.get("/dictionary", response_model=list[EntryPublic])
def list_entries(s: SessionDep, _: UserDep) -> list[EntryPublic]:
    rows = s.exec(select(PronunciationEntry).order_by(col(PronunciationEntry.term_key))).all()
    return [_entry(e) for e in rows]


@router.post("/dictionary", status_code=status.HTTP_201_CREATED, response_model=EntryPublic)
def add_entry(body: EntryCreate, s: SessionDep, user: UserDep) -> EntryPublic:
    key = body.term.casefold()
    existing = s.exec(select(PronunciationEntry).where(PronunciationEntry.term_key == key)).first()
    if existing is not None:
        raise ServiceError(409, f"'{existing.term}' is already in the dictionary (entry {existing.id}, read "
                                f"as '{existing.spoken}'); delete it first to change it")
    entry = PronunciationEntry(term=body.term, term_key=key, spoken=body.spoken, note=body.note,
                               created_by=user.username)
    s.add(entry)
    try:
        s.commit()
    except IntegrityError:  # added concurrently
        s.rollback()
        raise ServiceError(409, f"'{body.term}' is already in the dictionary") from None
    s.refresh(entry)
    return _entry(entry)


@router.delete("/dictionary/{entry_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_entry(entry_id: int, s: SessionDep, _: UserDep) -> Response:
    entry = s.get(PronunciationEntry, entry_id)
    if entry is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"dictionary entry {entry_id} does not exist")
    s.delete(entry)
    s.commit()
    return Response(status_code=status.HTTP_204_NO_CONTENT)
