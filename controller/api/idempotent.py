"""Running a state-changing POST safely (docs/faults.md): its database work in a worker thread (a
slow or black-holed database never blocks the event loop, so the request deadline can answer),
with an optional ``Idempotency-Key`` (controller/core/idempotency.py), and a follow-up (e.g. airing
the broadcast) that runs once the work committed, even if the client was answered 503 meanwhile.

What a request answered 503 by the deadline leaves behind:
* its work had not committed: the commit is refused (:class:`CommitGuard`), nothing is made;
* its commit was already on its way and succeeded: with a key, the effect stands (the follow-up
  runs) and the retry with the same key gets it as its answer; without a key nobody can ever learn
  of it, so it is undone (``undo``: e.g. a broadcast marked failed before it airs).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Header
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlmodel import Session
from starlette.concurrency import run_in_threadpool

from controller.core.db import Database
from controller.core.errors import ServiceError
from controller.core.idempotency import (
    HEADER,
    MAX_KEY,
    Answer,
    CommitGuard,
    answer,
    check_key,
    claim,
    fingerprint,
    stored,
)

logger = logging.getLogger(__name__)

KeyHeader = Annotated[str | None, Header(
    alias=HEADER, max_length=MAX_KEY,
    description="any unique string (a UUID) per intended action: a retry with the same key within 24 h "
                "gets the first answer and makes nothing new; the same key with another body: 422 "
                "(docs/faults.md)")]
REPLAYED = "Idempotent-Replayed"
IN_PROGRESS = "a request with this Idempotency-Key is still in progress; retry shortly"

_RUNNING: set[asyncio.Future[Any]] = set()  # the work outlives a cancelled request: keep it referenced


@dataclass
class Made:
    """What a request's work made: its answer, what to do on the loop once it is committed
    (``after``) and how to undo it if it committed after the client was answered without a key."""

    status: int
    body: BaseModel
    after: Callable[[], None] | None = None
    undo: Callable[[Session], None] | None = None


Rebuild = Callable[[Session, str], tuple[int, BaseModel]]  # the answer again, from what was made (ref)


@dataclass(frozen=True)
class Post:
    """One POST: who sent it, its key (None: none sent), its route and its body as JSON."""

    username: str
    key: str | None
    route: str
    payload: Any


async def run_post(db: Database, post: Post, work: Callable[[Session], Made], *,
                   made: type | None = None, rebuild: Rebuild | None = None) -> BaseModel | JSONResponse:
    """``work(session)`` makes the effect and commits; ``made`` is the table of what it inserts (the
    key's ``ref``), ``rebuild`` the answer from that ref (when the answer itself was not stored)."""
    key = check_key(post.key) if post.key is not None else None
    guard = CommitGuard()
    task = asyncio.ensure_future(_whole(db, post, key, guard, work, made, rebuild))
    _RUNNING.add(task)
    task.add_done_callback(_finished)
    try:
        first, done = await asyncio.shield(task)
    except asyncio.CancelledError:
        guard.abandon()  # the deadline answered 503: the work may not commit any more
        raise
    if first is not None:
        return JSONResponse(first[1].model_dump(mode="json") if isinstance(first[1], BaseModel) else first[1],
                            status_code=first[0], headers={REPLAYED: "true"})
    assert done is not None
    return done.body


async def _whole(db: Database, post: Post, key: str | None, guard: CommitGuard,
                 work: Callable[[Session], Made], made: type | None,
                 rebuild: Rebuild | None) -> tuple[tuple[int, Any] | None, Made | None]:
    first, done = await run_in_threadpool(_in_thread, db, post, key, guard, work, made, rebuild)
    if done is not None:
        if guard.abandoned and key is None and done.undo is not None:
            logger.warning("%s by %s committed after its client was answered 503 and has no %s: undone",
                           post.route, post.username, HEADER)
            await run_in_threadpool(_undo, db, done.undo)
        elif done.after is not None:
            done.after()
    return first, done


def _in_thread(db: Database, post: Post, key: str | None, guard: CommitGuard, work: Callable[[Session], Made],
               made: type | None, rebuild: Rebuild | None) -> tuple[tuple[int, Any] | None, Made | None]:
    fp = fingerprint(post.route, post.payload)
    for attempt in (1, 2):
        with db.session() as s:
            row = None
            if key is not None:
                first = stored(s, post.username, key, post.route, fp)
                if first is not None:
                    return _replay(s, first, rebuild), None
                try:
                    row = claim(s, post.username, key, post.route, fp, made)
                except IntegrityError:  # the same key's first request committed meanwhile
                    if attempt == 2:
                        raise
                    continue
            guard.arm(s)
            done = work(s)
            if row is not None:
                try:
                    answer(s, row, done.status, done.body.model_dump(mode="json"))
                except SQLAlchemyError as exc:  # the work is committed; its ref answers a retry
                    logger.warning("%s: the answer for key %r was not stored (%s)", post.route, key, exc)
            return None, done
    raise AssertionError("unreachable")


def _replay(s: Session, first: Answer, rebuild: Rebuild | None) -> tuple[int, Any]:
    if first.status:
        return first.status, first.body
    if first.ref is not None and rebuild is not None:
        return rebuild(s, first.ref)
    raise ServiceError(409, IN_PROGRESS)


def _undo(db: Database, undo: Callable[[Session], None]) -> None:
    with db.session() as s:
        undo(s)


def _finished(task: asyncio.Future[Any]) -> None:
    _RUNNING.discard(task)
    if not task.cancelled() and (exc := task.exception()) is not None:
        logger.debug("a POST's work ended with %r", exc)
