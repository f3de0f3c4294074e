"""Staff's commands to a broadcast that another controller delivers: written here, carried out by its owner.

Only a broadcast's owner (controller/airing/ownership.py) holds its units' state in memory, so a
cancel or an end-waiting sent through any other controller is written as an ``airing_request``
row, in the same transaction as a change-feed entry (kind ``airing_request``, durable: a
notification now, the log poll if it was missed). The owner carries it out
(:meth:`AiringRequests.serve`), waits for its writes to be in the database and marks the row done
with the outcome; the controller that wrote it waits for that (:meth:`AiringRequests.ask`) and
answers with the broadcast as the database has it, so the reply is the same through any
controller (the delivery view follows the rows through the feed as ever). A request whose owner
died is carried out by the controller that takes the broadcast over (its custody sweep).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session, col, select

from controller.airing.models import AiringRequest
from controller.core.background import Periodic
from controller.core.db import Database
from controller.core.feed import Changes
from devices.protocol import now_ms

logger = logging.getLogger(__name__)

REQUEST = "airing_request"  # the change feed's kind: key = the request's id
CANCEL, END_WAITING = "cancel", "end_waiting"
POLL_S = 0.1  # how often the asking controller looks for the outcome
KEEP_MS = 3600_000  # a request nobody carried out in an hour is no longer looked for
SWEEP_S = 2.0  # how often the owner looks for requests it has not carried out (a missed notification)

Action = Callable[[str, str], Any]  # (broadcast id, reason) → the outcome of delivery's cancel / end_waiting


class AiringRequests:
    def __init__(self, db: Database, feed: Changes, origin: str, *, owned: Callable[[str], bool],
                 actions: dict[str, Action], flush: Callable[[], Awaitable[object]]) -> None:
        self.db = db
        self.feed = feed
        self.origin = origin
        self._owned = owned
        self._actions = actions
        self._flush = flush
        self.stats = {"asked": 0, "served": 0, "unanswered": 0}
        self._bg: set[asyncio.Task[None]] = set()
        self._sweeper = Periodic("airing-requests", SWEEP_S, self.sweep)

    async def start(self) -> None:
        self._sweeper.start()

    async def stop(self) -> None:
        await self._sweeper.stop()

    # ------------------------------------------------------------------ the asking side

    async def ask(self, broadcast_id: str, action: str, reason: str,
                  timeout_s: float = 8.0) -> dict[str, Any] | None:
        """Have the owner carry ``action`` out; its outcome, or None if no answer came in
        ``timeout_s`` (the request stays: the owner, or whoever takes the broadcast over, does it)."""
        self.stats["asked"] += 1
        rid = await asyncio.to_thread(self._insert, broadcast_id, action, reason)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while loop.time() < deadline:
            await asyncio.sleep(POLL_S)
            done = await asyncio.to_thread(self._outcome, rid)
            if done is not None:
                return done
        self.stats["unanswered"] += 1
        logger.warning("%s of broadcast %s: no answer from its owner in %.0f s (request %d kept)",
                       action, broadcast_id, timeout_s, rid)
        return None

    def _insert(self, broadcast_id: str, action: str, reason: str) -> int:
        with self.db.session() as s:
            row = AiringRequest(broadcast_id=broadcast_id, action=action, reason=reason[:200],
                                origin=self.origin)
            s.add(row)
            s.flush()
            assert row.id is not None
            self.feed.emit(s, REQUEST, str(row.id))
            s.commit()
            return row.id

    def _outcome(self, rid: int) -> dict[str, Any] | None:
        with self.db.session() as s:
            row = s.get(AiringRequest, rid)
            return dict(row.outcome or {}) if row is not None and row.done_at is not None else None

    # ------------------------------------------------------------------ the owner's side

    def changed(self, keys: frozenset[str] | None) -> None:
        """The change feed: requests written elsewhere (None: any may be pending)."""
        ids = None if keys is None else [int(k) for k in keys if k.isdigit()]
        task = asyncio.get_running_loop().create_task(self.serve(ids))
        self._bg.add(task)
        task.add_done_callback(self._bg.discard)

    async def sweep(self) -> None:
        await self.serve(None)

    async def serve(self, ids: list[int] | None) -> None:
        """Carry out the pending requests (of ``ids``, or all) for broadcasts this controller owns."""
        try:
            rows = await asyncio.to_thread(self._pending, ids)
        except SQLAlchemyError as exc:
            logger.warning("cannot read the airing requests (%s)", exc)
            return
        for row in rows:
            if row.id is None or not self._owned(row.broadcast_id) or row.action not in self._actions:
                continue
            result = self._actions[row.action](row.broadcast_id, row.reason)
            outcome = {"ok": bool(result), "on_air": result is not None and result is not False,
                       "ended": result if isinstance(result, list) else [], "by": self.origin}
            await self._flush()  # the owner's writes first: the asker answers from the rows
            await asyncio.to_thread(self._done, row.id, outcome)
            self.stats["served"] += 1
            logger.info("%s of broadcast %s asked through %s: %s", row.action, row.broadcast_id, row.origin,
                        outcome)

    def _pending(self, ids: list[int] | None) -> list[AiringRequest]:
        with self.db.session() as s:
            q = select(AiringRequest).where(col(AiringRequest.done_at).is_(None),
                                            col(AiringRequest.created_at) >= now_ms() - KEEP_MS)
            if ids is not None:
                q = q.where(col(AiringRequest.id).in_(ids))
            return list(s.exec(q.order_by(col(AiringRequest.id))).all())

    def _done(self, rid: int, outcome: dict[str, Any]) -> None:
        with Session(self.db.engine) as s:
            row = s.get(AiringRequest, rid)
            if row is not None and row.done_at is None:
                row.done_at, row.outcome = now_ms(), outcome
                s.add(row)
                s.commit()
