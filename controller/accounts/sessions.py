"""Browser sessions: HttpOnly cookie + CSRF token; only the cookie's SHA-256 is stored."""

from __future__ import annotations

import hashlib
import secrets

from sqlmodel import Session, col, delete

from controller.accounts.models import User, UserSession
from devices.protocol import now_ms

COOKIE = "lp_session"
CSRF_HEADER = "x-csrf-token"
SESSION_TTL_MS = 12 * 3600 * 1000


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


# --------------------------------------------------------------------------- sessions


def open_session(s: Session, user: User) -> tuple[str, str]:
    """A new session (never reuse one across logins); returns (cookie value, CSRF token)."""
    assert user.id is not None
    token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(24)
    s.exec(delete(UserSession).where(col(UserSession.expires_at) < now_ms()))  # type: ignore[call-overload]
    s.add(UserSession(token_hash=_digest(token), user_id=user.id, csrf=csrf,
                      expires_at=now_ms() + SESSION_TTL_MS))
    s.commit()
    return token, csrf


def find_session(s: Session, token: str) -> tuple[User, UserSession] | None:
    row = s.get(UserSession, _digest(token))
    if row is None or row.expires_at < now_ms():
        return None
    user = s.get(User, row.user_id)
    if user is None or not user.active:
        return None
    return user, row


def close_session(s: Session, token: str) -> None:
    s.exec(delete(UserSession).where(col(UserSession.token_hash) == _digest(token)))  # type: ignore[call-overload]
    s.commit()


def end_sessions(s: Session, user_id: int) -> None:
    """Log a user out everywhere (on disabling the account or a password change)."""
    s.exec(delete(UserSession).where(col(UserSession.user_id) == user_id))  # type: ignore[call-overload]
    s.commit()
