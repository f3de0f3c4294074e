"""Idempotency keys, broker-free on SQLite (controller/core/idempotency.py, controller/api/idempotent.py):
a retry with the same key gets the first answer and makes nothing new, also after a restart; another
body with the same key is refused 422; a request abandoned by its client commits nothing, or, if its
commit was already on its way, keeps its effect for the retry with its key and is undone without one."""

from __future__ import annotations

import asyncio
import json
import threading
from pathlib import Path

import pytest
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlmodel import Session, select

from controller.api.idempotent import _RUNNING, REPLAYED, Made, Post, run_post
from controller.core.db import Database
from controller.core.errors import ServiceError
from controller.core.idempotency import KEEP_MS, forget_expired
from controller.core.models import IdempotencyKey
from controller.live.models import LiveLog
from tests.fakes import until

ROUTE = "POST /api/test"


class Out(BaseModel):
    id: str
    n: int


class Ward:
    """A database and a POST whose work inserts one LiveLog row and counts its follow-ups."""

    def __init__(self, path: Path) -> None:
        self.db = Database(f"sqlite:///{path}")
        self.db.migrate()
        self.after: list[str] = []
        self.undone: list[str] = []
        self.made = len(self.rows())
        self.entered = threading.Event()

    def work(self, s: Session, *, hold: threading.Event | None = None,
             hold_after_commit: threading.Event | None = None) -> Made:
        self.entered.set()
        if hold is not None:
            assert hold.wait(30)
        self.made += 1
        row = LiveLog(id=f"made-{self.made}")
        s.add(row)
        s.commit()
        if hold_after_commit is not None:
            assert hold_after_commit.wait(30)
        return Made(201, Out(id=row.id, n=self.made), after=lambda: self.after.append(row.id),
                    undo=lambda s2: self.undone.append(row.id))

    def rows(self) -> list[str]:
        with self.db.session() as s:
            return [r.id for r in s.exec(select(LiveLog)).all()]

    def keys(self) -> list[IdempotencyKey]:
        with self.db.session() as s:
            return list(s.exec(select(IdempotencyKey)).all())


def body_of(answer: BaseModel | JSONResponse) -> tuple[int, dict[str, object], bool]:
    if isinstance(answer, JSONResponse):
        return answer.status_code, json.loads(bytes(answer.body)), answer.headers.get(REPLAYED) == "true"
    return 201, answer.model_dump(mode="json"), False


async def post(ward: Ward, key: str | None, payload: object,
               user: str = "op1") -> tuple[int, dict[str, object], bool]:
    def rebuild(s: Session, ref: str) -> tuple[int, BaseModel]:
        return 201, Out(id=ref, n=0)

    return body_of(await run_post(ward.db, Post(user, key, ROUTE, payload), ward.work, made=LiveLog,
                                  rebuild=rebuild))


async def test_same_key_same_answer_nothing_new_also_after_a_restart(tmp_path: Path) -> None:
    ward = Ward(tmp_path / "w.db")
    first = await post(ward, "k-1", {"bulletin_id": 1, "target": {"zones": ["a", "b"]}})
    assert first == (201, {"id": "made-1", "n": 1}, False)
    again = await post(ward, "k-1", {"target": {"zones": ["a", "b"]}, "bulletin_id": 1})  # key order
    assert again == (201, {"id": "made-1", "n": 1}, True)
    assert ward.rows() == ["made-1"] and ward.after == ["made-1"]  # made and aired once

    ward.db.dispose()
    restarted = Ward(tmp_path / "w.db")  # the controller restarted: the key is in the database
    assert await post(restarted, "k-1", {"bulletin_id": 1, "target": {"zones": ["a", "b"]}}) == again
    assert restarted.rows() == ["made-1"] and restarted.after == []

    # another body with the same key: refused, nothing made
    with pytest.raises(ServiceError) as refused:
        await post(restarted, "k-1", {"bulletin_id": 2, "target": {"zones": ["a"]}})
    assert refused.value.status == 422 and "different request" in refused.value.message
    # another account's same key, or no key: a new request each
    other = await post(restarted, "k-1", {"bulletin_id": 1}, user="op2")
    assert other == (201, {"id": "made-2", "n": 2}, False)
    assert await post(restarted, None, {"bulletin_id": 1}) == (201, {"id": "made-3", "n": 3}, False)
    assert await post(restarted, None, {"bulletin_id": 1}) == (201, {"id": "made-4", "n": 4}, False)
    assert restarted.rows() == ["made-1", "made-2", "made-3", "made-4"]
    assert restarted.after == ["made-2", "made-3", "made-4"]


async def test_a_key_older_than_a_day_is_forgotten_and_a_bad_key_refused(tmp_path: Path) -> None:
    ward = Ward(tmp_path / "w.db")
    await post(ward, "old", {"x": 1})
    with ward.db.session() as s:
        row = s.get(IdempotencyKey, ("op1", "old"))
        assert row is not None
        row.created_at -= KEEP_MS + 1000
        s.add(row)
        s.commit()
    assert (await post(ward, "old", {"x": 2}))[2] is False  # a new request, not a 422
    assert ward.rows() == ["made-1", "made-2"]
    await post(ward, "other", {"x": 3}, user="op2")
    with ward.db.session() as s:  # age every key: the account's next keyed POST drops its old ones
        for row in s.exec(select(IdempotencyKey)).all():
            row.created_at -= KEEP_MS + 1000
            s.add(row)
        s.commit()
    await post(ward, "new", {"x": 4})
    assert sorted((k.username, k.key) for k in ward.keys()) == [("op1", "new"), ("op2", "other")]
    with ward.db.session() as s:
        assert forget_expired(s) == 1  # what the purge of every account drops
    assert [k.key for k in ward.keys()] == ["new"]
    for bad in ("", "ké", "a\nb", "x" * 256):
        with pytest.raises(ServiceError) as refused:
            await post(ward, bad, {"x": 1})
        assert refused.value.status == 422
    assert len(ward.rows()) == 4


async def test_an_answer_never_stored_is_rebuilt_from_what_was_made(tmp_path: Path) -> None:
    ward = Ward(tmp_path / "w.db")
    await post(ward, "k", {"x": 1})
    with ward.db.session() as s:  # as if the database went away between the work's commit and the answer's
        row = s.get(IdempotencyKey, ("op1", "k"))
        assert row is not None and row.ref == "made-1"
        row.status, row.body = 0, None
        s.add(row)
        s.commit()
    assert await post(ward, "k", {"x": 1}) == (201, {"id": "made-1", "n": 0}, True)
    assert ward.rows() == ["made-1"]


@pytest.mark.parametrize("key", ["k", None])
async def test_abandoned_before_its_commit_makes_nothing(tmp_path: Path, key: str | None) -> None:
    ward = Ward(tmp_path / "w.db")
    hold = threading.Event()
    task = asyncio.ensure_future(run_post(ward.db, Post("op1", key, ROUTE, {"x": 1}),
                                          lambda s: ward.work(s, hold=hold)))
    await until(ward.entered.is_set, "the work to start in its thread", 30)
    task.cancel()  # the request deadline answered 503 while the database hung
    with pytest.raises(asyncio.CancelledError):
        await task
    hold.set()  # the database answers again: the work's commit is refused
    await until(lambda: not _RUNNING, "the abandoned work to end", 30)
    assert ward.made == 1  # it ran, and
    assert ward.rows() == [] and ward.keys() == [] and ward.after == [] and ward.undone == []  # left nothing
    assert await post(ward, key, {"x": 1}) == (201, {"id": "made-2", "n": 2}, False)  # the retry makes it


@pytest.mark.parametrize("key", ["k", None])
async def test_committed_after_it_was_abandoned(tmp_path: Path, key: str | None) -> None:
    ward = Ward(tmp_path / "w.db")
    hold = threading.Event()
    task = asyncio.ensure_future(run_post(ward.db, Post("op1", key, ROUTE, {"x": 1}),
                                          lambda s: ward.work(s, hold_after_commit=hold)))
    await until(lambda: ward.made == 1, "the work to commit", 30)
    task.cancel()  # answered 503 while the commit was already made
    with pytest.raises(asyncio.CancelledError):
        await task
    hold.set()
    await until(lambda: ward.after or ward.undone, "the follow-up", 30)
    assert ward.rows() == ["made-1"]
    if key is None:  # nobody can learn of it: undone, never aired
        assert ward.undone == ["made-1"] and ward.after == []
    else:  # kept, aired, and the retry with the key gets it
        assert ward.after == ["made-1"] and ward.undone == []
        assert await post(ward, "k", {"x": 1}) == (201, {"id": "made-1", "n": 1}, True)
        assert ward.rows() == ["made-1"]


async def test_two_requests_with_one_key_at_once_make_one(tmp_path: Path) -> None:
    ward = Ward(tmp_path / "w.db")
    hold = threading.Event()
    first = asyncio.ensure_future(run_post(ward.db, Post("op1", "same", ROUTE, {"x": 1}),
                                           lambda s: ward.work(s, hold=hold), made=LiveLog,
                                           rebuild=lambda s, ref: (201, Out(id=ref, n=0))))
    await until(ward.entered.is_set, "the first request's work to start (its key claimed)", 30)
    second = asyncio.ensure_future(post(ward, "same", {"x": 1}))  # the double tap, while the first works
    hold.set()
    one, two = body_of(await first), await second
    assert one == (201, {"id": "made-1", "n": 1}, False)
    assert two == (201, {"id": "made-1", "n": 1}, True) or two == (201, {"id": "made-1", "n": 0}, True)
    assert ward.rows() == ["made-1"] and ward.after == ["made-1"]
