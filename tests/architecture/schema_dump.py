"""A migrated database's schema as sorted text lines, to compare before and after a refactor.

``python -m tests.architecture.schema_dump sqlite|postgresql`` prints it; the snapshots beside
this file were written by the code before the capability folders (issue 12), so the test
proves the migrations still produce the very same schema.
"""

from __future__ import annotations

import sys
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import Engine

PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def dump(engine: Engine) -> list[str]:
    insp = inspect(engine)
    lines: list[str] = []
    for table in sorted(insp.get_table_names()):
        if table == "alembic_version":
            continue
        for c in insp.get_columns(table):
            lines.append(f"{table} column {c['name']} {c['type']!s} nullable={c['nullable']} "
                         f"default={c.get('default')}")
        pk = insp.get_pk_constraint(table)
        lines.append(f"{table} pk {sorted(pk['constrained_columns'])}")
        for fk in insp.get_foreign_keys(table):
            lines.append(f"{table} fk {fk['constrained_columns']} -> {fk['referred_table']}"
                         f"{fk['referred_columns']} ondelete={fk.get('options', {}).get('ondelete')}")
        for ix in insp.get_indexes(table):
            lines.append(f"{table} index {ix['name']} {ix['column_names']} unique={bool(ix['unique'])}")
        for uq in insp.get_unique_constraints(table):
            lines.append(f"{table} unique {sorted(uq['column_names'])}")
    return sorted(lines)


@contextmanager
def migrated(kind: str) -> Iterator[Engine]:
    """A fresh database of ``kind`` brought to the newest migration by the controller's own code."""
    from controller.core.db import Database

    if kind == "sqlite":
        with tempfile.TemporaryDirectory() as d:
            db = Database(f"sqlite:///{Path(d) / 'schema.db'}")
            db.migrate()
            try:
                yield db.engine
            finally:
                db.dispose()
        return
    name = f"lp_schema_{uuid.uuid4().hex[:10]}"
    admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        db = Database(f"postgresql://postgres@127.0.0.1:5432/{name}")
        db.migrate()
        try:
            yield db.engine
        finally:
            db.dispose()
    finally:
        with admin.connect() as c:
            c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


if __name__ == "__main__":
    with migrated(sys.argv[1]) as engine:
        print("\n".join(dump(engine)))
