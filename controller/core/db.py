"""Database engine, migrations and sessions.

SQLite (WAL, foreign keys, busy timeout) by default; PostgreSQL through DATABASE_URL.
The schema is owned by Alembic migrations in controller/migrations, applied at start-up.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import event, text
from sqlalchemy.engine import Engine
from sqlmodel import Session, create_engine

logger = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).parent.parent / "migrations"


@dataclass(frozen=True)
class DbTimeouts:
    """How long the database may keep a caller waiting (PostgreSQL; SQLite has its busy timeout)."""

    connect_s: float = 3.0
    statement_ms: int = 5_000
    pool_s: float = 3.0


def make_engine(url: str, *, busy_timeout_ms: int = 30_000, timeouts: DbTimeouts | None = None) -> Engine:
    timeouts = timeouts or DbTimeouts()
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False,
                                                  "timeout": busy_timeout_ms / 1000})

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
            cur.close()

        return engine
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    # nothing waits for ever: a connect gives up after connect_timeout_s, a statement after
    # statement_timeout_ms (server side), a request for a pooled connection after pool_timeout_s;
    # TCP keepalives notice a dead peer. A black-holed link is bounded by the request deadline
    # (controller/api/deadlines.py). See docs/faults.md.
    args = {"connect_timeout": max(1, int(timeouts.connect_s)),
            "options": f"-c statement_timeout={int(timeouts.statement_ms)}"
                       f" -c lock_timeout={int(timeouts.statement_ms)}",
            "keepalives": 1, "keepalives_idle": 5, "keepalives_interval": 2, "keepalives_count": 3,
            "tcp_user_timeout": int(timeouts.statement_ms)}
    return create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=10,
                         pool_timeout=timeouts.pool_s, connect_args=args)


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(engine: Engine, data_dir: Path | None = None) -> None:
    """Bring the schema to the newest migration (idempotent). ``data_dir``: the controller's data
    directory, whose audio files a migration may import (0013, the audio store)."""
    cfg = alembic_config(engine.url.render_as_string(hide_password=False))
    if data_dir is not None:
        cfg.attributes["data_dir"] = data_dir
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":  # a migration may rewrite a big table: no statement timeout
            conn.execute(text("SET LOCAL statement_timeout = 0"))
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")
    logger.info("database schema at head (%s)", engine.url.render_as_string(hide_password=True))


class Database:
    """The engine plus a session factory; one per process."""

    def __init__(self, url: str, *, busy_timeout_ms: int = 30_000,
                 timeouts: DbTimeouts | None = None) -> None:
        self.url = url
        self.engine = make_engine(url, busy_timeout_ms=busy_timeout_ms, timeouts=timeouts)

    def migrate(self, data_dir: Path | None = None) -> None:
        upgrade(self.engine, data_dir)

    @contextmanager
    def session(self) -> Iterator[Session]:
        with Session(self.engine, expire_on_commit=False) as s:
            yield s

    def dispose(self) -> None:
        self.engine.dispose()
