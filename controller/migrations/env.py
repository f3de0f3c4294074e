"""Alembic environment: uses the connection handed over by controller.core.db.upgrade, or the URL."""

from __future__ import annotations

from alembic import context
from sqlalchemy import engine_from_config, pool
from sqlmodel import SQLModel

import controller.accounts.models
import controller.airing.models
import controller.bulletins.models
import controller.core.models
import controller.fleet.models
import controller.live.models
import controller.relays.models  # noqa: F401
import scheduler.models  # noqa: F401  (the schedule tables)

config = context.config
target_metadata = SQLModel.metadata


def run() -> None:
    conn = config.attributes.get("connection")
    if conn is not None:
        context.configure(connection=conn, target_metadata=target_metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = engine_from_config(config.get_section(config.config_ini_section) or {},
                                prefix="sqlalchemy.", poolclass=pool.NullPool)
    with engine.connect() as connection:
        context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()


run()
