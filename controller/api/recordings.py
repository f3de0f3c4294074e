"""Recorded bulletins: upload an MP3/WAV/M4A/OGG/WebM file (or a phone recording)."""

from __future__ import annotations

import asyncio
from typing import Annotated, get_args

from fastapi import APIRouter, File, Form, Request, UploadFile, status

from controller.api.bulletins import bulletin_public
from controller.api.deps import EditorDep, ServicesDep
from controller.api.responses import BulletinSpeechPublic
from controller.api.schemas import Priority
from controller.bulletins.approval import initial_approval
from controller.bulletins.recordings import store_recording
from controller.bulletins.speech_settings import TtsSettings
from controller.core.errors import ServiceError
from tts.errors import EngineError
from tts.recording import ACCEPTED_FORMATS, PreparedRecording, RecordingError, prepare_recording

router = APIRouter(prefix="/api/bulletins", tags=["bulletins"])

_FORMATS = ", ".join(f.upper() for f in ACCEPTED_FORMATS)


UPLOAD_PATH = f"{router.prefix}/recordings"  # the route below
_FORM_OVERHEAD = 64 * 1024  # multipart boundaries and the other fields


def upload_body_limit(cfg: TtsSettings) -> int:
    """The largest request body of the upload route (checked before it is read: api/limits.py)."""
    return cfg.upload_max_mb * 1024 * 1024 + _FORM_OVERHEAD


def _too_big(limit_mb: int) -> ServiceError:
    return ServiceError(413, f"the file is larger than the limit of {limit_mb} MB")


async def read_recording(request: Request, file: UploadFile,
                         cfg: TtsSettings) -> tuple[str, PreparedRecording]:
    """The uploaded file's base name and its audio in the node format, or the refusal: 413 over
    the size limit (declared or read), 422 audio that cannot be used, 503 no audio engine."""
    limit = cfg.upload_max_mb * 1024 * 1024
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > upload_body_limit(cfg):
        raise _too_big(cfg.upload_max_mb)
    data = await file.read(limit + 1)
    if len(data) > limit:
        raise _too_big(cfg.upload_max_mb)
    name = (file.filename or "").rsplit("/", 1)[-1]
    try:
        rec = await asyncio.to_thread(
            prepare_recording, data, codec=cfg.codec, bitrate_kbps=cfg.bitrate_kbps,
            loudness_target_dbfs=cfg.loudness_dbfs, max_duration_s=cfg.upload_max_minutes * 60.0)
    except RecordingError as exc:
        raise ServiceError(422, f"{name or 'the upload'}: {exc}") from None
    except EngineError as exc:
        raise ServiceError(503, f"audio processing is unavailable: {exc}") from None
    return name, rec


@router.post("/recordings", status_code=status.HTTP_201_CREATED, response_model=BulletinSpeechPublic)
async def upload_recording(
    request: Request, sv: ServicesDep, user: EditorDep,
    file: Annotated[UploadFile, File(description=f"the recording ({_FORMATS})")],
    title: Annotated[str, Form(max_length=200)] = "",
    text: Annotated[str, Form(max_length=5000, description="what the recording says (optional)")] = "",
    priority: Annotated[str, Form(description="normal | priority | emergency")] = "normal",
) -> BulletinSpeechPublic:
    """Decode, loudness-normalise and encode the recording in the node format; store it as a
    bulletin that airs like a text bulletin (preview it at ``/api/bulletins/{id}/audio``)."""
    if priority not in get_args(Priority):
        raise ServiceError(422, f"priority must be one of {', '.join(get_args(Priority))}")
    name, rec = await read_recording(request, file, sv.settings.tts)

    def store() -> BulletinSpeechPublic:
        with sv.db.session() as s:
            b = store_recording(s, rec, title=(title.strip() or name or "Bản tin ghi âm")[:200],
                                text=text, priority=priority, store=sv.audio,
                                created_by=user.username, prepare=lambda b: initial_approval(b, user))
            return bulletin_public(s, b)  # an editor's recording waits for approval too

    return await asyncio.to_thread(store)
