"""The migrations produce the very schema they produced before the capability folders (issue 12).

The snapshots (schema_sqlite.txt, schema_postgresql.txt) were written by the code before the
tables moved into each capability's models file; a table that lost a column, an index or a
foreign key, or changed its name, shows here as a diff. The tables as the models declare them
must also match what the migrations built (nothing declared that no migration creates).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlmodel import SQLModel

import controller.accounts.models
import controller.airing.models
import controller.bulletins.models
import controller.core.models
import controller.fleet.models
import controller.live.models
import controller.relays.models
import scheduler.models
from tests.architecture.schema_dump import dump, migrated

HERE = Path(__file__).parent
MODELS = (controller.accounts.models, controller.airing.models, controller.bulletins.models,
          controller.core.models, controller.fleet.models, controller.live.models, controller.relays.models,
          scheduler.models)


def _model_drift(engine: object) -> list[object]:
    with engine.connect() as conn:  # type: ignore[attr-defined]
        ctx = MigrationContext.configure(conn, opts={"compare_type": False})
        diffs = compare_metadata(ctx, SQLModel.metadata)
    # apscheduler's job store creates its own table; it is no model of ours
    return [d for d in diffs if "apscheduler_jobs" not in repr(d)]


@pytest.mark.parametrize("kind", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def test_migrations_build_the_same_schema(kind: str) -> None:
    assert all(m.__name__ for m in MODELS)  # every capability's tables are registered
    want = (HERE / f"schema_{kind}.txt").read_text().splitlines()
    with migrated(kind) as engine:
        got = dump(engine)
        assert got == want, "\n".join(sorted(set(got) ^ set(want)))
        assert _model_drift(engine) == []
