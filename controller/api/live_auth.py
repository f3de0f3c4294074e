"""Who may open the live WebSocket (``/api/live/ws``).

A browser sends ``Origin`` on every WebSocket handshake and attaches what it holds for the
controller even when a page of another site opens the socket: Basic credentials it cached
after someone answered its login prompt, and (same site only: SameSite=Strict) the session
cookie. WebSockets are not covered by CORS, so the controller itself must judge:

* a handshake whose ``Origin`` is neither the controller's own (the ``Host`` it was asked
  under) nor listed in ``live.allowed_origins`` is refused before it is accepted (HTTP 403);
* a browser (any ``Origin``) logs in only with the session cookie, and the page proves it is
  ours with the session's CSRF token in its start message (``GET /api/live/token``);
* HTTP Basic is taken only from clients that send no ``Origin`` (scripts, bench, curl), through
  the same password check as the API (login backoff, failed logins audited).
"""

from __future__ import annotations

import base64
import binascii
import hmac
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from starlette.requests import HTTPConnection

from controller.accounts.models import User
from controller.accounts.sessions import COOKIE, find_session
from controller.api.deps import check_password
from controller.services import Services

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class WsLogin:
    user: User
    csrf: str | None  # the token the start message must carry (cookie login); None for Basic


def _norm(origin: str) -> str:
    return origin.strip().lower().rstrip("/")


def origin_allowed(headers: Mapping[str, str], allowed: Iterable[str] = ()) -> bool:
    """No ``Origin`` (not a browser), the controller's own origin, or one configured."""
    origin = headers.get("origin")
    if origin is None:
        return True
    o = _norm(origin)
    if o in {_norm(a) for a in allowed}:
        return True
    parts = urlsplit(o)
    return parts.scheme in ("http", "https") and bool(parts.netloc) and parts.netloc == headers.get(
        "host", "").lower()


def _basic(header: str) -> tuple[str, str] | None:
    if not header.lower().startswith("basic "):
        return None
    try:
        name, _, password = base64.b64decode(header[6:], validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return name, password


def authenticate(conn: HTTPConnection, sv: Services) -> WsLogin | None:
    """The user of a handshake: Basic from a non-browser client, else the session cookie.
    Raises the API's 429 ``HTTPException`` while the login backoff holds for that Basic user."""
    with sv.db.session() as s:
        if "origin" not in conn.headers and (cred := _basic(conn.headers.get("authorization", ""))):
            user = check_password(sv, s, conn, *cred, how="live socket")
            return WsLogin(user, None) if user is not None else None
        token = conn.cookies.get(COOKIE)
        found = find_session(s, token) if token else None
        return WsLogin(found[0], found[1].csrf) if found else None


def token_ok(login: WsLogin, sent: str | None) -> bool:
    """A cookie login must echo its session's CSRF token (compared in constant time)."""
    if login.csrf is None:
        return True
    return sent is not None and hmac.compare_digest(sent.encode(), login.csrf.encode())


def session_csrf(conn: HTTPConnection, sv: Services) -> str | None:
    """The CSRF token of the request's session cookie (None without a session: Basic clients)."""
    token = conn.cookies.get(COOKIE)
    if not token:
        return None
    with sv.db.session() as s:
        found = find_session(s, token)
    return found[1].csrf if found else None
