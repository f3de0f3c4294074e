"""A stable code beside the English ``detail`` of the refusals the web app shows (issue 14).

The pages show a sentence in the user's language for each code (``err_<code>`` in
controller/ui/i18n.py), whatever the English wording; a refusal without a code here is shown by
its status alone. ``detail`` stays as it was for scripts and tests."""

from __future__ import annotations

import re

from fastapi import Request
from fastapi.exception_handlers import http_exception_handler, request_validation_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException

#: (pattern of the English detail, code); first match wins. Codes never change once given.
CODES: tuple[tuple[re.Pattern[str], str], ...] = tuple((re.compile(p, re.I), c) for p, c in (
    (r"^wrong user name or password", "login_wrong"),
    (r"^too many failed", "too_many_attempts"),
    (r"^the current password is wrong", "password_wrong_current"),
    (r"^the new password must differ", "password_same"),
    (r"^(the|this) password", "password_weak"),
    (r"nothing to read aloud", "nothing_to_read"),
    (r"too long", "text_too_long"),
    (r"^an emergency is on air", "emergency_on_air"),
    (r"^user .* already exists", "user_exists"),
    (r"^(zone|unit|org unit) .* already exists", "already_exists"),
    (r"^you may not change your own", "self_change"),
    (r"^your role", "role_forbidden"),
    (r"belongs to another ward|^(zone|unit|user|bulletin|broadcast|schedule) \S+$", "other_ward"),
    (r"cross-site", "cross_site"),
    (r"is already (approved|rejected|done|cancelled|failed|expired)|already decided", "already_decided"),
    (r"never submitted", "not_submitted"),
    (r"^the air time is in the past", "time_past"),
    (r"^the target has no units|^(your|the) ward has no (loudspeaker )?units"
     r"|^the chosen zones have no (loudspeaker )?units", "no_units"),
    (r"the upstream stream cannot be fetched|station could not be reached", "stream_unreachable"),
    (r"^audio refused: its bytes hash", "audio_mismatch"),
    (r"is not in the audio store|has no audio", "audio_missing"),
    (r"database unavailable", "database_unavailable"),
    (r"^the file is larger than the limit", "file_too_big"),
    (r"not an audio file we accept|damaged or not audio|the file is empty", "audio_bad"),
    (r"recording is silent", "audio_silent"),
    (r"recording is too short", "audio_short"),
    (r"recording is longer than", "audio_long"),
    (r"has been aired: it stays", "bulletin_aired"),
    (r"is used by schedule", "bulletin_scheduled"),
    (r"is a recording: its audio cannot be edited", "recording_fixed"),
    (r"^only its author", "author_only"),
    (r"^the agenda", "agenda_range"),
    (r"is already in the dictionary", "dictionary_dup"),
    (r"^(unknown|no) |does not exist", "not_found"),
    (r"has changed", "audio_changed"),
))


def code_for(detail: object) -> str | None:
    if not isinstance(detail, str):
        return None
    return next((c for p, c in CODES if p.search(detail)), None)


def _with_code(resp: Response, code: str | None) -> Response:
    if code is None or not isinstance(resp, JSONResponse):
        return resp
    import json

    body = json.loads(bytes(resp.body))
    body["code"] = code
    headers = {k: v for k, v in resp.headers.items() if k.lower() not in ("content-length", "content-type")}
    return JSONResponse(body, status_code=resp.status_code, headers=headers)


async def http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return _with_code(await http_exception_handler(request, exc), code_for(exc.detail))


async def invalid_request(request: Request, exc: Exception) -> Response:
    """422 of a body or query that does not match the schema: code ``invalid`` (the fields named)."""
    assert isinstance(exc, RequestValidationError)
    return _with_code(await request_validation_exception_handler(request, exc), "invalid")
