"""Every HTTP request has a deadline, and a database that is down answers 503, never a traceback.

Outermost ASGI middleware (controller/app.py). A request whose response has not *started* within
``http.request_deadline_s`` (``http.long_deadline_s`` for the writes that render speech or wait) is
answered 503 (a started response, e.g. an audio download, runs on). A database error or timeout
raised anywhere below (the authentication in controller/api/limits.py, a route, the audit
middleware) is answered the same way, logged as one line. The JSON body: a stable ``code``
(``database_unavailable``, ``deadline_exceeded``), ``message`` in Vietnamese, ``message_en``, and
the short English ``error`` scripts have read since issue 13.
UI pages (not ``/api/``, the browser asks for HTML) get a short page in Vietnamese (English with the
``lang=en`` cookie). WebSockets are not touched. See docs/faults.md.
"""

from __future__ import annotations

import asyncio
import html
import json
import logging
import re
from collections.abc import Mapping
from typing import Any

from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.types import ASGIApp, Message, Receive, Scope, Send

logger = logging.getLogger(__name__)

DB_ERRORS: tuple[type[BaseException], ...] = (DBAPIError, PoolTimeout)


def database_away(exc: BaseException) -> bool:
    """The database is unreachable, slow or restarting (connection refused or lost, a statement or
    lock timeout, no pooled connection): 503. A bug that reaches the database (an integrity or a
    programming error) is no outage: it stays a 500, with its traceback in the log."""
    if isinstance(exc, (OperationalError, InterfaceError, PoolTimeout)):
        return True
    return isinstance(exc, DBAPIError) and bool(exc.connection_invalidated)
DB_DOWN = "database unavailable; try again shortly"
TOO_SLOW = "request deadline exceeded; try again shortly"
#: the stable code of each 503 (``err_<code>`` in controller/ui/i18n_phone.py); never changed once given
CODES = {"db_down": "database_unavailable", "too_slow": "deadline_exceeded"}
_WRITES = frozenset({"POST", "PUT", "PATCH"})


class Deadlines:
    """``messages``: {lang: {"db_down": ..., "too_slow": ..., "title": ...}} for UI pages."""

    def __init__(self, app: ASGIApp, *, deadline_s: float,
                 messages: Mapping[str, Mapping[str, str]] | None = None,
                 exempt: tuple[str, ...] = (), long: str = "", long_deadline_s: float = 0) -> None:
        self.app = app
        self.exempt = exempt  # paths whose body may take long to arrive (the audio upload)
        # writes whose path matches ``long`` (a regex) render speech or wait for units' replies
        self.long = re.compile(long) if long else None
        self.deadline_s = deadline_s
        self.long_deadline_s = max(deadline_s, long_deadline_s)
        self.messages = messages or {}

    def deadline_of(self, method: str, path: str) -> float:
        """A write matching ``long`` gets the long deadline; a read never does."""
        if self.long is not None and method in _WRITES and self.long.match(path):
            return self.long_deadline_s
        return self.deadline_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or str(scope["path"]).startswith(self.exempt or ("\0",)):
            await self.app(scope, receive, send)
            return
        started = asyncio.Event()

        async def tracked(message: Message) -> None:
            if message["type"] == "http.response.start":
                started.set()
            await send(message)

        deadline_s = self.deadline_of(str(scope["method"]), str(scope["path"]))
        task = asyncio.ensure_future(self.app(scope, receive, tracked))
        waiter = asyncio.ensure_future(started.wait())
        try:
            await asyncio.wait({task, waiter}, timeout=deadline_s, return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiter.cancel()
        if not task.done() and not started.is_set():
            task.cancel()
            task.add_done_callback(_consume)
            logger.warning("%s %s: no response within %.1f s, answered 503", scope["method"],
                           scope["path"], deadline_s)
            await self._unavailable(scope, send, "too_slow")
            return
        try:
            await task
        except DB_ERRORS as exc:
            if not database_away(exc):
                raise
            logger.warning("%s %s: database error, answered 503: %s", scope["method"], scope["path"],
                           str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
            if not started.is_set():
                await self._unavailable(scope, send, "db_down")

    async def _unavailable(self, scope: Scope, send: Send, why: str) -> None:
        english = DB_DOWN if why == "db_down" else TOO_SLOW
        headers: list[tuple[bytes, bytes]] = [(b"retry-after", b"5")]
        if _wants_page(scope):
            texts = self.messages.get(_lang(scope)) or self.messages.get("vi") or {}
            title = html.escape(texts.get("title", "503"))
            text = html.escape(texts.get(why, english))
            body = (f'<!doctype html><html lang="{_lang(scope)}"><meta charset="utf-8"><title>{title}</title>'
                    f"<h1>{title}</h1><p>{text}</p></html>").encode()
            headers.append((b"content-type", b"text/html; charset=utf-8"))
        else:  # the code, the sentence in Vietnamese then English, the short English kept for scripts
            body = json.dumps({"code": CODES[why], "message": self._text("vi", why, english),
                               "message_en": self._text("en", why, english), "error": english},
                              ensure_ascii=False).encode()
            headers.append((b"content-type", b"application/json; charset=utf-8"))
        headers.append((b"content-length", str(len(body)).encode()))
        await send({"type": "http.response.start", "status": 503, "headers": headers})
        await send({"type": "http.response.body", "body": body})


    def _text(self, lang: str, why: str, english: str) -> str:
        return self.messages.get(lang, {}).get(why, english)


def _consume(task: asyncio.Future[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        logger.debug("a request past its deadline ended with %r", task.exception())


def _header(scope: Scope, name: bytes) -> str:
    for key, value in scope.get("headers", []):
        if key == name:
            return bytes(value).decode("latin-1")
    return ""


def _wants_page(scope: Scope) -> bool:
    return not str(scope["path"]).startswith("/api/") and "text/html" in _header(scope, b"accept")


def _lang(scope: Scope) -> str:
    cookie: Any = _header(scope, b"cookie")
    for part in cookie.split(";"):
        key, _, value = part.strip().partition("=")
        if key == "lang" and value == "en":
            return "en"
    return "vi"
