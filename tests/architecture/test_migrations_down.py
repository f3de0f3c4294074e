"""Every migration goes down as well as up, on SQLite and PostgreSQL (issue 16).

From an empty database to head (the snapshot test beside this one checks what head is), then the
stairway: each revision downgraded and upgraded again, from head down to base, and finally head
once more from base: it must build the very schema of the snapshot. A downgrade that leaves a
table, an index or a column behind, or cannot run on one of the two, fails here."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic import command
from alembic.script import ScriptDirectory
from sqlalchemy import inspect
from sqlalchemy.engine import Engine

from controller.core.db import alembic_config
from tests.architecture.schema_dump import dump, migrated

HERE = Path(__file__).parent


def _alembic(engine: Engine, verb: str, target: str) -> None:
    cfg = alembic_config(engine.url.render_as_string(hide_password=False))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        getattr(command, verb)(cfg, target)


def _revisions(engine: Engine) -> list[str]:
    script = ScriptDirectory.from_config(alembic_config(engine.url.render_as_string(hide_password=False)))
    return [r.revision for r in script.walk_revisions()]  # head first


@pytest.mark.parametrize("kind", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def test_every_migration_goes_down_and_up_again(kind: str) -> None:
    want = (HERE / f"schema_{kind}.txt").read_text().splitlines()
    with migrated(kind) as engine:
        revisions = _revisions(engine)
        assert len(revisions) >= 13
        for rev in revisions:  # head → base: one step down, up again, then down for good
            _alembic(engine, "downgrade", "-1")
            _alembic(engine, "upgrade", rev)
            _alembic(engine, "downgrade", "-1")
        left = set(inspect(engine).get_table_names()) - {"alembic_version"}
        assert left == set(), f"tables left at base: {sorted(left)}"
        _alembic(engine, "upgrade", "head")
        got = dump(engine)
        assert got == want, "\n".join(sorted(set(got) ^ set(want)))
