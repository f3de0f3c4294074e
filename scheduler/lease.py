"""Which controller fires the schedules: a lease row in the shared database.

One atomic ``UPDATE scheduler_lease SET holder = me ... WHERE holder = me OR expires_at < now``
takes or renews the lease on SQLite and PostgreSQL alike. ``now`` is the *database's* clock,
so controllers with skewed clocks still agree on when a lease expired. Locally the holder
trusts its lease only until ``(monotonic time the UPDATE was sent) + ttl − margin``: when
renewals fail (database unreachable, a call hanging) it stops firing before anyone else
could have taken over. Even a wrong belief cannot air a slot twice: the UNIQUE slot row
(``ScheduleRun``) is the last line of defence. The engine is handed in: the controller builds
it with short timeouts (controller/schedules/engine.py).
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
import time

from sqlalchemy import text
from sqlalchemy.engine import Engine

logger = logging.getLogger(__name__)

LEASE_NAME = "schedules"


def default_holder() -> str:
    return f"{socket.gethostname()[:60]}:{os.getpid()}:{secrets.token_hex(3)}"


def db_now_sql(engine: Engine) -> str:
    """SQL for the database's current time in epoch milliseconds."""
    if engine.dialect.name == "sqlite":
        return "CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)"
    return "CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000 AS BIGINT)"


class Lease:
    def __init__(self, engine: Engine, holder: str, ttl_s: float, name: str = LEASE_NAME) -> None:
        self.engine = engine
        self.holder = holder
        self.ttl_ms = int(ttl_s * 1000)
        self.name = name
        self.margin_s = min(1.0, ttl_s * 0.1)
        self._valid_until = 0.0  # monotonic
        self._lock = threading.Lock()
        now = db_now_sql(engine)
        self._sql_take = text(
            f"UPDATE scheduler_lease SET holder = :me, expires_at = {now} + :ttl, "
            f"acquired_at = CASE WHEN holder = :me THEN acquired_at ELSE {now} END, "
            f"epoch = CASE WHEN holder = :me THEN epoch ELSE epoch + 1 END "
            f"WHERE name = :name AND (holder = :me OR expires_at < {now})")
        self._sql_seed = text(
            "INSERT INTO scheduler_lease (name, holder, expires_at, acquired_at, epoch) "
            "VALUES (:name, '', 0, 0, 0)")

    def valid(self) -> bool:
        """Do we hold the lease for sure right now (no other controller can have it)?"""
        return time.monotonic() < self._valid_until

    def remaining_s(self) -> float:
        return max(0.0, self._valid_until - time.monotonic())

    def try_acquire(self) -> bool:
        """Take or renew the lease (blocking; the caller runs it in a thread). Raises on DB errors."""
        with self._lock:
            sent = time.monotonic()
            with self.engine.begin() as c:
                got = c.execute(self._sql_take, {"me": self.holder, "ttl": self.ttl_ms,
                                                 "name": self.name}).rowcount == 1
                if not got and c.execute(text("SELECT 1 FROM scheduler_lease WHERE name = :n"),
                                         {"n": self.name}).first() is None:
                    c.execute(self._sql_seed, {"name": self.name})  # migration seeds it; belt and braces
                    got = c.execute(self._sql_take, {"me": self.holder, "ttl": self.ttl_ms,
                                                     "name": self.name}).rowcount == 1
            self._valid_until = sent + self.ttl_ms / 1000 - self.margin_s if got else 0.0
            return got

    def drop(self) -> None:
        """Forget the lease locally (stop firing now) without touching the database."""
        self._valid_until = 0.0

    def release(self) -> None:
        """Give the lease up so a standby takes over at once (clean shutdown)."""
        self.drop()
        with self.engine.begin() as c:
            c.execute(text("UPDATE scheduler_lease SET expires_at = 0 WHERE name = :n AND holder = :me"),
                      {"n": self.name, "me": self.holder})

    def current(self) -> dict[str, object]:
        """The lease row as the database has it."""
        with self.engine.connect() as c:
            row = c.execute(text(f"SELECT holder, expires_at, acquired_at, epoch, {db_now_sql(self.engine)} "
                                 "FROM scheduler_lease WHERE name = :n"), {"n": self.name}).first()
        if row is None:
            return {"holder": None, "expires_at": None, "acquired_at": None, "epoch": 0, "db_now": None}
        return {"holder": row[0] or None, "expires_at": row[1], "acquired_at": row[2], "epoch": row[3],
                "db_now": row[4]}
