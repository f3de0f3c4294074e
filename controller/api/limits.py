"""Request limits that must hold before a body is read (a pure ASGI middleware).

FastAPI reads and parses (JSON) or spools to a temporary file (multipart) the whole body
before it runs any dependency, authentication included. So, in front of the app:

* a declared ``Content-Length`` above the route's limit is answered 413 at once, unread;
* a body sent without a length (chunked) is counted as it is read and cut at the limit (413);
* a request with a body to an ``/api/`` route other than the login is authenticated first,
  with the same check as the routes (:func:`controller.api.deps.authenticate`: Basic with the
  failed-login backoff, or session cookie + CSRF token): 401/403/429 before a byte is read.

The limit is ``http.max_body_kb``, larger for routes that take files (the recorded-audio
upload: ``tts.upload_max_mb``) and 16 KB for the login, whose body anyone may send.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from fastapi import HTTPException
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from controller.api.deps import authenticate, basic_auth, get_services

logger = logging.getLogger(__name__)

PUBLIC_WITH_BODY = frozenset({"/api/login"})
PUBLIC_BODY_LIMIT = 16 * 1024  # what a stranger may make the controller read: a login form


class _BodyTooLarge(Exception):
    pass


def _too_large(limit: int) -> JSONResponse:
    size = f"{limit // (1024 * 1024)} MB" if limit >= 1024 * 1024 else f"{max(1, limit // 1024)} KB"
    return JSONResponse({"detail": f"the request body is larger than the limit of {size}",
                         "code": "file_too_big"}, status_code=413)  # the code: controller/api/error_codes.py


class RequestLimits:
    def __init__(self, app: ASGIApp, *, max_body: int, larger: Mapping[str, int] | None = None) -> None:
        self.app, self.max_body, self.larger = app, max_body, dict(larger or {})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        limit = self.larger.get(path, self.max_body)
        if path in PUBLIC_WITH_BODY:
            limit = min(limit, PUBLIC_BODY_LIMIT)
        headers = Headers(scope=scope)
        declared = headers.get("content-length")
        chunked = "chunked" in headers.get("transfer-encoding", "").lower()
        if declared is not None and not declared.strip().isdigit():
            await JSONResponse({"detail": "invalid Content-Length"}, status_code=400)(scope, receive, send)
            return
        if declared is not None and int(declared) > limit:
            await _too_large(limit)(scope, receive, send)
            return
        has_body = chunked or (declared is not None and int(declared) > 0)
        if has_body and path.startswith("/api/") and path not in PUBLIC_WITH_BODY:
            refusal = await self._refusal(scope)
            if refusal is not None:
                await refusal(scope, receive, send)
                return
        await self._capped(scope, receive, send, limit)

    async def _refusal(self, scope: Scope) -> JSONResponse | None:
        """The authentication's answer when it fails (the same as the route would give)."""
        request = Request(scope)
        try:
            cred = await basic_auth(request)
            sv = get_services(request)

            def check() -> None:
                with sv.db.session() as s:
                    authenticate(request, sv, s, cred)

            await run_in_threadpool(check)
        except HTTPException as exc:
            return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers)
        return None

    async def _capped(self, scope: Scope, receive: Receive, send: Send, limit: int) -> None:
        received = 0
        exceeded = started = False

        async def counted() -> Message:
            nonlocal received, exceeded
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    exceeded = True
                    raise _BodyTooLarge
            return message

        async def guarded(message: Message) -> None:
            nonlocal started
            if exceeded:  # whatever the app answers to its broken read, the answer is 413
                if message["type"] == "http.response.start" and not started:
                    started = True
                    await _too_large(limit)(scope, receive, send)
                return
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counted, guarded)
        except _BodyTooLarge:
            if not started:
                await _too_large(limit)(scope, receive, send)
        if exceeded:
            logger.info("refused a %s %s body over %d bytes", scope.get("method"), scope["path"], limit)
