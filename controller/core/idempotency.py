"""Idempotency keys for state-changing POSTs (docs/faults.md): a retry with the same key, by the same
account, within 24 h gets the first answer and makes nothing new; the same key with another request
is refused 422.

The key's row is written in the *same transaction* as what the request makes (:func:`claim` before
the work, the work's commit carries both), so "made" and "remembered" cannot come apart: a request
that never committed left no key (its retry does the work), one that committed left its key and the
id of what it made (``ref``, caught as that row is inserted), even if the answer itself was never
written (:func:`answer`, a second commit). A request the client gave up on is stopped before its
commit by a :class:`CommitGuard`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, event, inspect, update
from sqlalchemy.orm.attributes import set_committed_value
from sqlmodel import Session, col

from controller.core.errors import ServiceError
from controller.core.models import IdempotencyKey
from devices.protocol import now_ms

logger = logging.getLogger(__name__)

HEADER = "Idempotency-Key"
KEEP_MS = 24 * 3600 * 1000
MAX_KEY = 255
REUSED = ("Idempotency-Key {key!r} was already used for a different request (another body or "
          "route) in the last 24 h; use a new key for a new request")


@dataclass(frozen=True)
class Answer:
    """A stored first answer (``status`` 0: not written; ``ref`` is what the request made)."""

    status: int
    body: Any
    ref: str | None


def check_key(key: str) -> str:
    if not 0 < len(key) <= MAX_KEY or not key.isascii() or not key.isprintable():
        raise ServiceError(422, f"{HEADER} must be 1 to {MAX_KEY} printable ASCII characters")
    return key


def fingerprint(route: str, body: Any) -> str:
    """The request as the key remembers it: its route and its body, key order ignored."""
    raw = json.dumps([route, body], sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(raw.encode()).hexdigest()


def stored(s: Session, username: str, key: str, route: str, fp: str) -> Answer | None:
    """The first answer for this key, None when the key is new (or older than 24 h: then forgotten).
    The same key with another request: ServiceError 422."""
    row = s.get(IdempotencyKey, (username, key))
    if row is None:
        return None
    if row.created_at < now_ms() - KEEP_MS:
        s.delete(row)
        s.flush()
        return None
    if row.route != route or row.fingerprint != fp:
        raise ServiceError(422, REUSED.format(key=key))
    return Answer(row.status, row.body, row.ref)


def claim(s: Session, username: str, key: str, route: str, fp: str,
          made: type | None = None) -> IdempotencyKey:
    """Add the key's row to the session's transaction (committed with the work, or not at all).
    ``made``: the table of what the request creates; the first such row inserted in this session
    becomes the key's ``ref`` (written in the same flush)."""
    s.execute(delete(IdempotencyKey).where(col(IdempotencyKey.username) == username)
              .where(col(IdempotencyKey.created_at) < now_ms() - KEEP_MS))  # this account's old keys go
    row = IdempotencyKey(username=username, key=key, route=route, fingerprint=fp)
    s.add(row)
    s.flush()  # a concurrent first request with the same key waits here, then fails (IntegrityError)
    if made is not None:
        keys: list[str] = [str(c.key) for c in inspect(made).primary_key]  # type: ignore[var-annotated]

        def caught(session: Session, _ctx: Any) -> None:
            if row.ref is not None:
                return
            obj = next((o for o in session.new if isinstance(o, made)), None)
            if obj is None:
                return
            ref = ":".join(str(getattr(obj, k)) for k in keys)  # known now, autoincrement ids too
            session.connection().execute(update(IdempotencyKey)  # in the flush's own transaction
                                         .where(col(IdempotencyKey.username) == username)
                                         .where(col(IdempotencyKey.key) == key).values(ref=ref))
            set_committed_value(row, "ref", ref)

        event.listen(s, "after_flush", caught)
    return row


def answer(s: Session, row: IdempotencyKey, status: int, body: Any) -> None:
    """Store the first answer (its own commit, after the work's)."""
    row.status, row.body = status, body
    s.add(row)
    s.commit()


def forget_expired(s: Session) -> int:
    """Delete the keys older than 24 h; returns how many."""
    gone = s.execute(delete(IdempotencyKey).where(col(IdempotencyKey.created_at) < now_ms() - KEEP_MS))
    s.commit()
    return int(gone.rowcount)  # type: ignore[attr-defined]


class Abandoned(Exception):
    """The client was answered (503 by the request deadline) before this work committed."""


class CommitGuard:
    """Stops a request's first commit once the client has been answered without it: the request
    task calls :meth:`abandon` (from any thread) when it is cancelled; the work, running in a worker
    thread, :meth:`arm`\\ s its session. A commit already on its way when the client was answered
    cannot be taken back: :attr:`committed` tells the request's follow-up (see the broadcasts route)."""

    def __init__(self) -> None:
        self._abandoned = threading.Event()
        self.committed = False

    @property
    def abandoned(self) -> bool:
        return self._abandoned.is_set()

    def abandon(self) -> None:
        self._abandoned.set()

    def arm(self, s: Session) -> None:
        def check(_s: Any) -> None:
            if self._abandoned.is_set():
                raise Abandoned("the client was answered before this commit; nothing committed")

        def done(_s: Any) -> None:
            self.committed = True

        event.listen(s, "before_commit", check, once=True)
        event.listen(s, "after_commit", done, once=True)
