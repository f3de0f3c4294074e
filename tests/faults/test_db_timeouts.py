"""The database timeouts reach PostgreSQL (controller/core/db.py DbTimeouts, the ``database``
settings section): the session runs with the statement and lock timeouts asked for, and a statement
running longer is cancelled by the server (an error the request deadline answers 503), not waited for."""

from __future__ import annotations

import pytest
from sqlalchemy import event, text
from sqlalchemy.exc import OperationalError

from controller.core.db import Database
from controller.core.db_settings import DatabaseSettings

pytestmark = [pytest.mark.postgres]


def test_postgres_runs_with_the_timeouts_of_the_settings(pg_url: str) -> None:
    cfg = DatabaseSettings(statement_timeout_ms=700, connect_timeout_s=2, pool_timeout_s=1)  # type: ignore[call-arg]
    db = Database(pg_url, timeouts=cfg.timeouts())
    try:
        with db.engine.connect() as conn:
            assert conn.execute(text("SHOW statement_timeout")).scalar() == "700ms"
            assert conn.execute(text("SHOW lock_timeout")).scalar() == "700ms"
        with db.engine.connect() as conn, pytest.raises(OperationalError) as cancelled:
            conn.execute(text("SELECT pg_sleep(30)"))
        assert "statement timeout" in str(cancelled.value)
        assert db.engine.pool.timeout() == 1  # type: ignore[attr-defined]
    finally:
        db.dispose()


def test_migrations_run_without_the_statement_timeout(pg_url: str) -> None:
    """A migration may rewrite a big table: the short statement timeout does not apply to it."""
    db = Database(pg_url, timeouts=DatabaseSettings(statement_timeout_ms=100).timeouts())  # type: ignore[call-arg]
    seen: list[str] = []
    event.listen(db.engine, "before_cursor_execute",
                 lambda _c, _cur, stmt, *_a: seen.append(stmt.strip().split("\n")[0]))
    try:
        db.migrate()
        assert seen[0] == "SET LOCAL statement_timeout = 0"  # before the first migration statement
        assert len(seen) > 50  # the whole schema was built under it
        with db.engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM alembic_version")).scalar() == 1
            assert conn.execute(text("SHOW statement_timeout")).scalar() == "100ms"  # back after it
    finally:
        db.dispose()
