"""The ``database`` settings section: how long PostgreSQL may keep a caller waiting (docs/faults.md),
and how the change feed between controllers on one database runs (controller/core/feed.py)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from controller.core.db import DbTimeouts


class DatabaseSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    connect_timeout_s: float = Field(3.0, ge=1, le=120,
                                     description="PostgreSQL: give up a connection attempt after this long")
    statement_timeout_ms: int = Field(5_000, ge=100, le=600_000,
                                      description="PostgreSQL: the server cancels a statement (and a "
                                                  "lock wait) running longer; also the TCP time for "
                                                  "unacknowledged data (a dead route)")
    pool_timeout_s: float = Field(3.0, gt=0, le=120,
                                  description="wait at most this long for a free pooled connection")

    feed_poll_s: float = Field(10.0, gt=0, le=300,
                               description="the change feed's fallback: read the change log this often "
                                           "(a notification missed while not listening heals then)")
    feed_keep_s: float = Field(3600.0, ge=60, le=7 * 86400,
                               description="keep change-log rows this long; a controller cut off longer "
                                           "reloads its caches")
    feed_retry_s: float = Field(0.5, gt=0, le=60,
                                description="PostgreSQL: reconnect the LISTEN connection after this "
                                            "long (doubling up to 5 s while it keeps failing)")

    def timeouts(self) -> DbTimeouts:
        return DbTimeouts(connect_s=self.connect_timeout_s, statement_ms=self.statement_timeout_ms,
                          pool_s=self.pool_timeout_s)
