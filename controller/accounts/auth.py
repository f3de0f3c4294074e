"""Accounts for the API: Argon2 password hashes and the credential check.

There is no default password: the first start creates ``admin`` with a random one-time
password that is printed once (or the one given in settings, which must pass the password
policy of :mod:`controller.accounts.passwords`).
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import threading
import time
from collections import OrderedDict

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlmodel import Session, select

from controller.accounts.models import User
from controller.accounts.passwords import password_problem

logger = logging.getLogger(__name__)

_hasher = PasswordHasher()
_VERIFIED_TTL_S = 300.0
_VERIFIED_MAX = 1000  # remembered successful checks (one per user and password in use)
_PARALLEL_HASHES = 4  # Argon2 takes 64 MiB and a core for a while: never 40 at once


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def ensure_admin(s: Session, password: str | None = None) -> str | None:
    """Create the first admin if there is no user; return the password when one was created."""
    if s.exec(select(User)).first() is not None:
        return None
    if password is not None and (problem := password_problem(password, "admin")):
        raise ValueError(f"admin_password: {problem}")
    password = password or secrets.token_urlsafe(12)
    s.add(User(username="admin", password_hash=hash_password(password), role="admin"))
    s.commit()
    logger.info("created the first admin account")
    return password


class Verifier:
    """Checks credentials; remembers a successful check briefly so Basic auth stays cheap.

    An unknown or disabled user costs the same Argon2 verification as a known one (against a
    dummy hash), so the answer's timing does not tell which user names exist."""

    def __init__(self, hasher: PasswordHasher = _hasher) -> None:
        self._hasher = hasher
        self._ok: OrderedDict[tuple[str, str], tuple[float, str]] = OrderedDict()
        self._lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(_PARALLEL_HASHES)
        self._dummy: str | None = None

    def _dummy_hash(self) -> str:
        with self._lock:
            if self._dummy is None:
                self._dummy = self._hasher.hash(secrets.token_urlsafe(16))
            return self._dummy

    def _verify(self, password_hash: str, password: str) -> bool:
        with self._slots:
            try:
                return bool(self._hasher.verify(password_hash, password))
            except (VerificationError, InvalidHashError):
                return False

    def check(self, s: Session, username: str, password: str) -> User | None:
        key = (username, hashlib.sha256(password.encode()).hexdigest())
        user = s.exec(select(User).where(User.username == username)).first()
        if user is None or not user.active:
            self._verify(user.password_hash if user is not None else self._dummy_hash(), password)
            return None
        now = time.monotonic()
        with self._lock:
            hit = self._ok.get(key)
        if hit and hit[0] > now and hit[1] == user.password_hash:
            return user
        if not self._verify(user.password_hash, password):
            return None
        with self._lock:
            self._ok[key] = (now + _VERIFIED_TTL_S, user.password_hash)
            self._ok.move_to_end(key)
            while self._ok and (len(self._ok) > _VERIFIED_MAX or next(iter(self._ok.values()))[0] <= now):
                self._ok.popitem(last=False)
        return user
