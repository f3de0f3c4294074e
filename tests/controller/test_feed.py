"""The change feed without a broker (controller/core/feed.py, issue 16): two or more feeds on one
database, as several controllers have.

After: a change committed through one feed reaches the others' handlers (not its own), once,
only after commit (a rollback tells nobody); SQLite uses the in-process bus, PostgreSQL
NOTIFY; a change whose notification never came is applied by the log poll, also one whose
``seq`` was taken before one already seen (a transaction that committed late); a poll gap
longer than the log keeps reloads everything; a killed LISTEN connection reconnects and what
was written meanwhile is applied."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import psycopg
import pytest
from sqlmodel import Session, select

from controller.core.db import Database
from controller.core.feed import ChangeFeed
from controller.core.models import ChangeLog
from controller.core.writer import DbWriter
from tests.fakes import until

Seen = list[frozenset[str] | None]


def _db(url: str) -> Database:
    db = Database(url)
    db.migrate()
    return db


@asynccontextmanager
async def feeds(url: str, n: int, **kw: float) -> AsyncIterator[list[tuple[ChangeFeed, Seen]]]:
    """``n`` started feeds on ``url`` (each with its own engine and writer), each recording what
    its ``unit`` handler was handed."""
    out: list[tuple[ChangeFeed, Seen]] = []
    dbs = [_db(url) for _ in range(n)]
    for i, db in enumerate(dbs):
        feed = ChangeFeed(db, DbWriter(db, interval=0.05), f"ctl-{i}", **kw)
        seen: Seen = []
        feed.on("unit", seen.append)
        feed.mark()
        await feed.start()
        feed.writer.start()
        out.append((feed, seen))
    try:
        yield out
    finally:
        for feed, _ in out:
            await feed.writer.stop()
            await feed.stop()
        for db in dbs:
            db.dispose()


def keys(seen: Seen) -> set[str]:
    return {k for batch in seen if batch is not None for k in batch}


def emit(feed: ChangeFeed, key: str, *, commit: bool = True) -> None:
    with feed.db.session() as s:
        feed.emit(s, "unit", key)
        if commit:
            s.commit()
        else:
            s.rollback()


def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'shared.db'}"


async def test_sqlite_a_committed_change_reaches_the_other_feeds_not_the_writer(tmp_path: Path) -> None:
    async with feeds(sqlite_url(tmp_path), 3, poll_s=60) as fs:
        (a, seen_a), (_, seen_b), (_, seen_c) = fs
        emit(a, "u-rolled-back", commit=False)
        emit(a, "u1")
        await until(lambda: keys(seen_b) == {"u1"} and keys(seen_c) == {"u1"}, "u1 at b and c", 10)
        assert seen_a == [] and "u-rolled-back" not in keys(seen_b) | keys(seen_c)
        assert a.status()["mode"] == "local" and a.stats["emitted"] == 2


async def test_later_goes_with_the_writers_batch_and_repeats_make_one_change(tmp_path: Path) -> None:
    async with feeds(sqlite_url(tmp_path), 2, poll_s=60) as ((a, _), (b, seen_b)):
        for _ in range(5):
            a.later("unit", "u7")
        await until(lambda: keys(seen_b) == {"u7"}, "u7 at b", 10)
        assert a.stats["emitted"] == 1 and b.stats["notified"] == 1


def _insert(db: Database, seq: int | None, key: str, origin: str = "elsewhere") -> None:
    """A log row as a peer's transaction leaves it, without any notification."""
    with Session(db.engine) as s:
        s.add(ChangeLog(seq=seq, kind="unit", key=key, origin=origin))
        s.commit()


async def test_the_poll_applies_rows_never_notified_also_one_that_committed_late(tmp_path: Path) -> None:
    async with feeds(sqlite_url(tmp_path), 1, poll_s=0.1) as [(b, seen_b)]:
        _insert(b.db, 10, "n10")
        _insert(b.db, 12, "n12")
        await until(lambda: keys(seen_b) == {"n10", "n12"}, "rows 10 and 12 polled", 10)
        polls = b.stats["polls"]
        _insert(b.db, 11, "n11")  # took its seq before 12 and committed after 12 was read
        await until(lambda: "n11" in keys(seen_b), "row 11 polled", 10)
        await until(lambda: b.stats["polls"] >= polls + 3, "three more polls", 10)
        assert b.stats["from_poll"] == 3 and sorted(k for batch in seen_b if batch for k in batch) == [
            "n10", "n11", "n12"]  # each once


async def test_a_gap_longer_than_the_log_keeps_reloads_everything(tmp_path: Path) -> None:
    async with feeds(sqlite_url(tmp_path), 1, poll_s=0.3, keep_s=0.2) as [(b, seen_b)]:
        await until(lambda: None in seen_b, "a reload of everything", 10)
        assert b.stats["reload_all"] >= 1


async def test_a_bad_payload_is_counted_and_ignored(tmp_path: Path) -> None:
    async with feeds(sqlite_url(tmp_path), 1, poll_s=60) as [(b, seen_b)]:
        b._on_payload("{not json")
        b._on_payload('{"k": "unit"}')
        assert b.stats["bad_payload"] == 2 and seen_b == []


# --------------------------------------------------------------------------- PostgreSQL


def _terminate(pg_url: str, pid: int) -> None:
    with psycopg.connect(pg_url, autocommit=True) as conn:
        assert conn.execute("SELECT pg_terminate_backend(%s)", (pid,)).fetchone() == (True,)


@pytest.mark.postgres
async def test_postgres_notifies_at_commit(pg_url: str) -> None:
    async with feeds(pg_url, 2, poll_s=60) as ((a, seen_a), (b, seen_b)):
        await until(lambda: a.listener.listening and b.listener.listening, "both listening", 10)
        emit(a, "u-rolled-back", commit=False)
        emit(a, "p1")
        await until(lambda: keys(seen_b) == {"p1"}, "p1 notified to b", 10)
        assert seen_a == [] and b.stats["notified"] == 1 and b.stats["from_poll"] == 0
        assert b.status()["mode"] == "listen" and b.status()["listening"]


@pytest.mark.postgres
async def test_postgres_a_killed_listener_reconnects_and_catches_up(pg_url: str) -> None:
    async with feeds(pg_url, 2, poll_s=60, retry_s=4.0) as ((a, _), (b, seen_b)):
        await until(lambda: b.listener.listening and b.listener.pid, "b listening", 10)
        pid = b.listener.pid
        assert pid is not None
        _terminate(pg_url, pid)
        await until(lambda: not b.listener.listening, "b's listener noticing", 10)
        emit(a, "while-down")  # nobody at b hears this notification
        await until(lambda: "while-down" in keys(seen_b), "the change applied after reconnecting", 15)
        assert b.listener.connects == 2 and b.listener.listening and b.listener.pid != pid
        assert b.stats["from_poll"] == 1 and b.stats["notified"] == 0
        emit(a, "after")
        await until(lambda: "after" in keys(seen_b), "notified again", 10)
        assert b.stats["notified"] == 1


async def test_rows_older_than_the_log_keeps_are_pruned(tmp_path: Path) -> None:
    db = _db(sqlite_url(tmp_path))
    with Session(db.engine) as s:
        s.add(ChangeLog(kind="unit", key="old", origin="x", at=1))  # 1970: long past keep_s
        s.add(ChangeLog(kind="unit", key="new", origin="x"))
        s.commit()
    db.dispose()
    async with feeds(sqlite_url(tmp_path), 1, poll_s=60) as [(b, _)]:
        await until(lambda: b.stats["polls"] >= 1, "the first poll (which prunes)", 10)
        with Session(b.db.engine) as s:
            assert [r.key for r in s.exec(select(ChangeLog)).all()] == ["new"]
