"""Accounts for the API: Argon2 password hashes, HTTP Basic for now (sessions come with the UI).

There is no default password: the first start creates ``admin`` with a random one-time
password that is printed once (or the one given in settings).
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import time

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlmodel import Session, select

from controller.models import User

logger = logging.getLogger(__name__)

_hasher = PasswordHasher()
_VERIFIED_TTL_S = 300.0


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def ensure_admin(s: Session, password: str | None = None) -> str | None:
    """Create the first admin if there is no user; return the password when one was created."""
    if s.exec(select(User)).first() is not None:
        return None
    password = password or secrets.token_urlsafe(12)
    s.add(User(username="admin", password_hash=hash_password(password), role="admin"))
    s.commit()
    logger.info("created the first admin account")
    return password


class Verifier:
    """Checks credentials; remembers a successful check briefly so Basic auth stays cheap."""

    def __init__(self) -> None:
        self._ok: dict[tuple[str, str], tuple[float, str]] = {}

    def check(self, s: Session, username: str, password: str) -> User | None:
        key = (username, hashlib.sha256(password.encode()).hexdigest())
        hit = self._ok.get(key)
        user = s.exec(select(User).where(User.username == username)).first()
        if user is None or not user.active:
            return None
        if hit and hit[0] > time.monotonic() and hit[1] == user.password_hash:
            return user
        try:
            _hasher.verify(user.password_hash, password)
        except (VerificationError, InvalidHashError):
            return None
        self._ok[key] = (time.monotonic() + _VERIFIED_TTL_S, user.password_hash)
        return user
