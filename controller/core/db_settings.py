"""The ``database`` settings section: how long PostgreSQL may keep a caller waiting (docs/faults.md)."""

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

    def timeouts(self) -> DbTimeouts:
        return DbTimeouts(connect_s=self.connect_timeout_s, statement_ms=self.statement_timeout_ms,
                          pool_s=self.pool_timeout_s)
