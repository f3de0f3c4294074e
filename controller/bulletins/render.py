"""Bulletin text → audio asset (speech engines; the bytes go to controller/core/audiostore.py)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path

from sqlmodel import Session

import tts
from controller.bulletins.dictionary import load_dictionary
from controller.bulletins.models import AudioAsset, Bulletin, BulletinSpeech
from controller.core.audiostore import AudioMismatch, AudioStore
from controller.core.errors import ServiceError

logger = logging.getLogger(__name__)


# ---------------------------------------------------------------------- bulletins


def store_audio(s: Session, store: AudioStore, *, data: bytes, sha256: str, codec: str, duration_ms: int,
                sample_rate: int, bitrate_kbps: int, engine: str, voice: str) -> None:
    """Put the audio in the audio store (every controller reads it from there) and add its
    AudioAsset row, unless the same audio is already stored: both in ``s``'s transaction, committed
    by the caller. Bytes that do not hash to ``sha256`` are refused (422)."""
    try:
        store.put(data, sha256=sha256, codec=codec, duration_ms=duration_ms, session=s)
    except AudioMismatch as exc:
        raise ServiceError(422, str(exc)) from None
    if s.get(AudioAsset, sha256) is not None:
        return
    rel = Path(sha256[:2]) / f"{sha256}.{codec}"  # where the local cache keeps it (as before the store)
    s.add(AudioAsset(sha256=sha256, size=len(data), duration_ms=duration_ms, codec=codec,
                     sample_rate=sample_rate, bitrate_kbps=bitrate_kbps, engine=engine, voice=voice,
                     path=str(rel)))


def render_bulletin(s: Session, *, title: str, text: str, voice: str, priority: str, engine: str,
                    bitrate_kbps: int, store: AudioStore, cache_dir: Path | None,
                    created_by: str, fallback: Sequence[str] = (), speed: float = 1.0,
                    codec: str = "mp3", audio: tts.AudioOptions | None = None,
                    cache_max_bytes: int | None = None, org_unit_id: str | None = None,
                    prepare: Callable[[Bulletin], None] | None = None) -> Bulletin:
    """Normalise and synthesise the text (falling back to other engines when needed) with the
    dictionary of ``org_unit_id``, and store the bulletin with its audio, its spoken form and its
    warnings (blocking; run in a thread). ``prepare`` sets its approval state before it is first
    written (so an editor's bulletin is never stored as approved, not even for a moment)."""
    extra = {} if cache_max_bytes is None else {"cache_max_bytes": cache_max_bytes}
    try:
        rendered = tts.render(text, voice=voice, engine=engine, bitrate_kbps=bitrate_kbps,
                              cache_dir=cache_dir, fallback=fallback, speed=speed, codec=codec,
                              audio=audio, dictionary=load_dictionary(s, org_unit_id), **extra)
    except (tts.EmptyTextError, tts.TextTooLongError, tts.UnknownVoiceError, tts.InvalidOptionError,
            tts.SilentSpeechError) as exc:
        raise ServiceError(422, str(exc)) from None
    except tts.TTSError as exc:
        logger.error("speech synthesis failed: %s", exc)
        raise ServiceError(503, f"speech synthesis failed: {exc}") from None
    for warning in rendered.warnings:
        logger.warning("bulletin speech: %s", warning)
    store_audio(s, store, data=rendered.data, sha256=rendered.sha256, codec=rendered.codec,
                duration_ms=rendered.duration_ms, sample_rate=rendered.sample_rate,
                bitrate_kbps=rendered.bitrate_kbps, engine=rendered.engine, voice=rendered.voice)
    bulletin = Bulletin(title=title, text=text, voice=voice, priority=priority,
                        audio_sha256=rendered.sha256, created_by=created_by,
                        warnings=list(rendered.warnings), org_unit_id=org_unit_id)
    if prepare is not None:
        prepare(bulletin)
    s.add(bulletin)
    s.flush()
    assert bulletin.id is not None
    s.add(BulletinSpeech(bulletin_id=bulletin.id, spoken_text=rendered.text, engine=rendered.engine,
                         requested_engine=rendered.requested_engine or engine, voice=rendered.voice,
                         dictionary_hits=list(rendered.dictionary_hits), speed=speed))
    s.flush()
    if bulletin.approval == "approved":  # approved by its author: bound to this audio and reading
        bulletin.approved_sha256, bulletin.approved_spoken_text = rendered.sha256, rendered.text
    s.commit()
    s.refresh(bulletin)
    return bulletin
