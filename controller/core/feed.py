"""The change feed: controllers sharing one database tell each other which cached data changed.

Each controller keeps some of the database in memory (the unit registry of presence, the unit
list, the desired volumes, ...). When one of them changes it, the writer calls
:meth:`ChangeFeed.emit` inside the same transaction: a :class:`ChangeLog` row (for a durable
kind) and, on PostgreSQL, ``pg_notify('loaphuong_changes', payload)``, which the server
delivers to every listening controller at commit, never before and never for a rollback. The
payload is JSON: kind, key (what changed, e.g. a unit id), origin (the writing instance) and
the log row's ``seq``. Every controller LISTENs on a dedicated connection with reconnect
(controller/core/feed_listen.py) and hands the keys to the handlers registered for that kind
(:meth:`ChangeFeed.on`), which reload just those entries. On SQLite (one process, but tests
run several controllers in it) the same changes go through an in-process bus after commit.

A poll every ``poll_s`` (and at once after the listener reconnects) reads the log rows past
those already seen: a notification missed while the listener was down is applied then. Rows
are read again for one more poll (a transaction that took its ``seq`` earlier may commit
later) and pruned after ``keep_s``; a controller that could not poll for longer than the log
keeps hands its handlers ``None`` (reload everything). Ephemeral kinds (the delivery view's
wake-ups, many a second) are notified only, without a log row.

A controller's own changes are not handed back to it: the code that wrote them updated its own
caches already (read-your-writes in the same request).
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import secrets
import time
import weakref
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy import event, func, text
from sqlmodel import Session, col, delete, select

from controller.core.db import Database
from controller.core.feed_listen import PgListener
from controller.core.models import ChangeLog
from controller.core.writer import DbWriter
from devices.protocol import now_ms

logger = logging.getLogger(__name__)

CHANNEL = "loaphuong_changes"
POLL_LIMIT = 10_000  # more rows past the last poll than this: reload everything instead
Handler = Callable[[frozenset[str] | None], Awaitable[None] | None]
"""``fn(keys)``: these keys of the kind changed elsewhere; ``None``: anything may have changed."""


@dataclass(frozen=True)
class Change:
    kind: str
    key: str
    origin: str
    seq: int | None = None  # the log row; None for an ephemeral change

    def payload(self) -> str:
        return json.dumps({"k": self.kind, "id": self.key, "o": self.origin, "s": self.seq},
                          separators=(",", ":"))

    @classmethod
    def parse(cls, payload: str) -> Change:
        d = json.loads(payload)
        seq = d.get("s")
        return cls(str(d["k"]), str(d["id"]), str(d["o"]), int(seq) if seq is not None else None)


class Changes(Protocol):
    """What a writer of cached data needs: tell the peers (in its transaction, or soon after)."""

    def emit(self, s: Session, kind: str, key: str, *, durable: bool = True) -> None: ...

    def later(self, kind: str, key: str, *, durable: bool = True) -> None: ...


class NoChanges:
    """Tells nobody (tests of one service alone)."""

    def emit(self, s: Session, kind: str, key: str, *, durable: bool = True) -> None:
        return None

    def later(self, kind: str, key: str, *, durable: bool = True) -> None:
        return None


#: SQLite: the feeds of each database file in this process (an in-process bus, told after commit)
_LOCAL: dict[str, weakref.WeakSet[ChangeFeed]] = {}


def _publish_local(url: str, changes: list[Change]) -> None:
    for feed in list(_LOCAL.get(url, ())):
        feed.deliver_threadsafe(changes)


def _on_loop(loop: asyncio.AbstractEventLoop) -> bool:
    try:
        return asyncio.get_running_loop() is loop
    except RuntimeError:  # no loop in this thread
        return False


def _after_commit(s: Session) -> None:
    url, changes = s.info.pop("lp_feed_url", ""), s.info.pop("lp_feed", [])
    if changes:
        _publish_local(url, changes)


def _after_rollback(s: Session) -> None:
    s.info.pop("lp_feed", None)


class ChangeFeed:
    def __init__(self, db: Database, writer: DbWriter, origin: str, *, poll_s: float = 10.0,
                 keep_s: float = 3600.0, retry_s: float = 0.5) -> None:
        self.db = db
        self.writer = writer
        self.origin = f"{origin}/{secrets.token_hex(3)}"[-120:]  # one per start, even on one client id
        self.poll_s = poll_s
        self.keep_s = keep_s
        self.pg = db.engine.dialect.name == "postgresql"
        self._handlers: dict[str, list[Handler]] = {}
        self._pending: dict[str, set[str] | None] = {}
        self._wake = asyncio.Event()
        self._seen: set[int] = set()
        self._floor = self._prev_top = 0  # poll rows past _floor; _floor lags one poll behind
        self._last_poll_ok = time.monotonic()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._emit_rows_fn = self._emit_rows  # one function object: the writer groups its rows by it
        self.stats: Counter[str] = Counter()
        self.last_error = ""
        url = db.engine.url.set(drivername="postgresql")
        self.listener = PgListener(url.render_as_string(hide_password=False), CHANNEL, self._on_payload,
                                   self.poll_soon, retry_s=retry_s, check_s=poll_s)

    # ------------------------------------------------------------------ writing

    def emit(self, s: Session, kind: str, key: str, *, durable: bool = True) -> None:
        """In ``s``'s transaction: the log row (``durable``) and the notification, sent at commit."""
        seq = None
        if durable:
            row = ChangeLog(kind=kind, key=key[:200], origin=self.origin)
            s.add(row)
            s.flush()
            seq = row.seq
        change = Change(kind, key[:200], self.origin, seq)
        self.stats["emitted"] += 1
        if self.pg:
            s.connection().execute(text("SELECT pg_notify(:channel, :payload)"),
                                   {"channel": CHANNEL, "payload": change.payload()})
            return
        if "lp_feed" not in s.info:
            s.info["lp_feed"], s.info["lp_feed_url"] = [], self.db.url
            event.listen(s, "after_commit", _after_commit, once=True)
            event.listen(s, "after_rollback", _after_rollback, once=True)
        s.info["lp_feed"].append(change)

    def later(self, kind: str, key: str, *, durable: bool = True) -> None:
        """Emit with the writer's next batch (the change itself is committed already, or is in
        that batch too); many of one kind and key in a batch make one notification. Callable
        from a worker thread (a sync route): the row is queued on the event loop then."""
        loop = self._loop
        if loop is not None and not loop.is_closed() and not _on_loop(loop):
            loop.call_soon_threadsafe(self.writer.submit_row, self._emit_rows_fn, (kind, key, durable))
            return
        self.writer.submit_row(self._emit_rows_fn, (kind, key, durable))

    def _emit_rows(self, s: Session, rows: list[tuple[str, str, bool]]) -> None:
        for kind, key, durable in dict.fromkeys(rows):
            self.emit(s, kind, key, durable=durable)

    # ------------------------------------------------------------------ reading

    def on(self, kind: str, fn: Handler) -> None:
        """``fn(keys)`` for each batch of changes of ``kind`` made by other controllers."""
        self._handlers.setdefault(kind, []).append(fn)

    def deliver_threadsafe(self, changes: Iterable[Change]) -> None:
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self.deliver, list(changes))

    def deliver(self, changes: Iterable[Change], *, polled: bool = False) -> None:
        """Changes heard of (on the event loop): new ones of others are queued for the handlers."""
        for c in changes:
            if c.seq is not None:
                if c.seq in self._seen:
                    continue
                self._seen.add(c.seq)
            if c.origin == self.origin:
                continue
            self.stats["from_poll" if polled else "notified"] += 1
            keys = self._pending.get(c.kind, set())
            if keys is not None:
                keys.add(c.key)
                self._pending[c.kind] = keys
        if self._pending:
            self._wake.set()

    def _on_payload(self, payload: str) -> None:
        try:
            change = Change.parse(payload)
        except (ValueError, KeyError, TypeError):
            self.stats["bad_payload"] += 1
            logger.warning("change feed: payload %.200r ignored", payload)
            return
        self.deliver([change])

    def reload_all(self) -> None:
        """Every handler reloads everything (a gap longer than the log keeps)."""
        self.stats["reload_all"] += 1
        for kind in self._handlers:
            self._pending[kind] = None
        self._wake.set()

    async def _dispatch(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            pending, self._pending = self._pending, {}
            for kind, keys in pending.items():
                for fn in self._handlers.get(kind, []):
                    try:
                        result = fn(None if keys is None else frozenset(keys))
                        if inspect.isawaitable(result):
                            await result
                    except Exception:
                        logger.exception("change feed: the %s handler failed", kind)
                        self.stats["handler_errors"] += 1

    # ------------------------------------------------------------------ the fallback poll

    def mark(self) -> None:
        """Start from the log as it is now (before the caches are loaded: later rows are applied)."""
        with self.db.session() as s:
            top = s.exec(select(func.max(ChangeLog.seq))).one() or 0
        self._floor = self._prev_top = int(top)
        self._last_poll_ok = time.monotonic()

    def poll_soon(self) -> None:
        """Poll now (the listener is up again: catch up what was notified meanwhile)."""
        if self._loop is not None:
            self._tasks.append(self._loop.create_task(self.poll()))
            self._tasks = [t for t in self._tasks if not t.done()]

    async def poll(self) -> None:
        """Apply the log rows not heard of; prune old rows now and then."""
        try:
            rows = await asyncio.to_thread(self._read, self._floor)
        except Exception as exc:  # noqa: BLE001 - the database is down: the next poll tries again
            self.last_error = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else repr(exc)
            self.stats["poll_errors"] += 1
            return
        gap = time.monotonic() - self._last_poll_ok > self.keep_s / 2
        self._last_poll_ok = time.monotonic()
        if gap or len(rows) >= POLL_LIMIT:
            self.reload_all()
            self._seen.update(c.seq for c in rows if c.seq is not None)
        else:
            self.deliver(rows, polled=True)
        top = max((c.seq for c in rows if c.seq is not None), default=self._prev_top)
        self._floor, self._prev_top = self._prev_top, max(top, self._prev_top)
        self._seen = {q for q in self._seen if q > self._floor}
        self.stats["polls"] += 1

    def _read(self, floor: int) -> list[Change]:
        with self.db.session() as s:
            rows = s.exec(select(ChangeLog).where(col(ChangeLog.seq) > floor)
                          .order_by(col(ChangeLog.seq)).limit(POLL_LIMIT)).all()
            if self.stats["polls"] % 30 == 0:
                s.exec(delete(ChangeLog).where(  # type: ignore[call-overload]
                    col(ChangeLog.at) < now_ms() - int(self.keep_s * 1000)))
                s.commit()
        return [Change(r.kind, r.key, r.origin, r.seq) for r in rows]

    # ------------------------------------------------------------------ running

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._tasks = [asyncio.create_task(self._dispatch(), name="feed-dispatch"),
                       asyncio.create_task(self._poll_loop(), name="feed-poll")]
        if self.pg:
            self._tasks.append(asyncio.create_task(self.listener.run(), name="feed-listen"))
        else:
            _LOCAL.setdefault(self.db.url, weakref.WeakSet()).add(self)

    async def _poll_loop(self) -> None:
        while True:
            await self.poll()
            await asyncio.sleep(self.poll_s)

    async def stop(self) -> None:
        _LOCAL.get(self.db.url, weakref.WeakSet()).discard(self)
        tasks, self._tasks, self._loop = self._tasks, [], None
        for t in tasks:
            t.cancel()
        for t in tasks:
            try:
                await t
            except (asyncio.CancelledError, Exception):  # noqa: BLE001 - stopping
                pass

    def live(self) -> bool:
        """Peers' changes reach this controller as they commit (SQLite: always; PostgreSQL: while
        listening). When not, only the poll brings them: things that follow them look again."""
        return not self.pg or self.listener.listening

    def status(self) -> dict[str, Any]:
        """For /api/health: how peers' changes reach this controller."""
        return {"mode": "listen" if self.pg else "local", "listening": self.live(),
                "connects": self.listener.connects, "losses": self.listener.losses,
                "last_error": self.listener.last_error or self.last_error, "poll_s": self.poll_s,
                **{k: self.stats[k] for k in ("emitted", "notified", "from_poll", "reload_all", "polls")}}
