"""Batched database writes.

Per-node acknowledgements arrive in bursts (a thousand nodes acking one broadcast); SQLite
manages tens of commits per second but tens of thousands of inserts per transaction. So
services submit small write operations here and one task applies them together every
``interval`` seconds in a worker thread.

If the database is unavailable the batch is kept and retried (nothing is lost while the
backlog stays under ``max_backlog``); an operation that fails on its own (bad data) is
logged and dropped without taking the rest of the batch with it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from sqlalchemy.exc import DBAPIError, OperationalError
from sqlmodel import Session

from controller.core.background import Periodic
from controller.core.db import Database

logger = logging.getLogger(__name__)

WriteOp = Callable[[Session], None]


class DbWriter:
    def __init__(self, db: Database, *, interval: float = 0.2, max_backlog: int = 500_000) -> None:
        self.db = db
        self.interval = interval
        self.max_backlog = max_backlog
        self._ops: list[WriteOp] = []
        self._flusher = Periodic("db-writer", interval, self.flush)
        self._lock = asyncio.Lock()
        self.failed_ops = 0
        self.dropped_ops = 0
        self.db_errors = 0
        self.last_error = ""

    def submit(self, op: WriteOp) -> None:
        if len(self._ops) >= self.max_backlog:
            self.dropped_ops += 1
            logger.error("database write backlog full (%d); dropping a write", self.max_backlog)
            return
        self._ops.append(op)

    @property
    def backlog(self) -> int:
        return len(self._ops)

    def start(self) -> None:
        self._flusher.start()

    async def stop(self) -> None:
        await self._flusher.stop()
        await self.flush()

    async def flush(self) -> bool:
        """Apply everything submitted so far. False if the database was unavailable."""
        async with self._lock:
            if not self._ops:
                return True
            ops, self._ops = self._ops, []
            left = await asyncio.to_thread(self._apply, ops)
            if left:
                self._ops = left + self._ops  # keep order; retry next round
            return not left

    def _apply(self, ops: list[WriteOp]) -> list[WriteOp]:
        """Apply ops; return those not applied because the database is unavailable."""
        try:
            with self.db.session() as s:
                for op in ops:
                    op(s)
                s.commit()
            if self.last_error:
                logger.info("database writes recovered")
                self.last_error = ""
            return []
        except OperationalError as exc:
            self.db_errors += 1
            if not self.last_error:
                logger.error("database unavailable, keeping %d writes for retry: %s", len(ops), exc)
            self.last_error = str(exc.orig)
            return ops
        except DBAPIError as exc:
            logger.warning("batch write failed (%s); applying one by one", exc.orig)
        except Exception:
            logger.exception("batch write failed; applying one by one")
        for i, op in enumerate(ops):
            try:
                with self.db.session() as s:
                    op(s)
                    s.commit()
            except OperationalError:
                return ops[i:]
            except Exception:
                self.failed_ops += 1
                logger.exception("dropping a database write that fails on its own")
        return []
