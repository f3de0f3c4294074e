"""``loaphuong backup`` / ``restore``: the whole database and the audio in one portable archive.

No ``pg_dump`` and nothing of one database's own format: the archive is a gzip'd tar with

* ``manifest.json``: format name and version, the Alembic revision of the schema, when and from
  which kind of database it was made, the tables with their columns and row counts;
* ``tables/<table>.jsonl``: every row of every table (read from the database itself, so a table
  added later is included without a change here), one JSON object per line; binary columns
  base64, JSON columns as JSON, the rest as numbers and strings;
* ``audio/...``: the files of the audio directory, unless the database holds the audio itself
  (tables :data:`AUDIO_TABLES`: then the directory is only a cache and the rows carry the audio).

The rows are read in one transaction (a consistent snapshot, also while a controller runs), the
audio files after them: every file a row names was written before its row.

:func:`restore` goes into an EMPTY database only (``force`` replaces a non-empty one): it builds the
schema with the migrations up to the archive's revision, inserts the rows parents first, moves
PostgreSQL's id sequences past the restored ids, and unpacks the audio. A SQLite archive restores
into PostgreSQL and back. A controller started on it migrates on to the newest schema as usual.
"""

from __future__ import annotations

import base64
import io
import json
import logging
import shutil
import tarfile
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from sqlalchemy import Connection, MetaData, Table, select, text
from sqlalchemy.engine import Engine
from sqlalchemy.types import LargeBinary

logger = logging.getLogger(__name__)

FORMAT = "loaphuong-backup"
VERSION = 1
#: Tables that hold the audio itself; when the database has them the audio directory is a cache.
AUDIO_TABLES = frozenset({"audioblob", "audiochunk"})
SKIPPED = frozenset({"alembic_version"})  # the revision is in the manifest; the migrations write it
BATCH_ROWS, BATCH_BYTES = 1000, 8 * 1024 * 1024


class BackupError(Exception):
    """A refusal or a failure, said in Vietnamese then in English."""

    def __init__(self, code: str, vi: str, en: str) -> None:
        super().__init__(f"{vi} / {en}")
        self.code, self.vi, self.en = code, vi, en


@dataclass
class Summary:
    revision: str | None
    tables: dict[str, int] = field(default_factory=dict)
    audio_files: int = 0
    seconds: float = 0.0


def _snapshot(conn: Connection) -> None:
    """The reads below see one moment of the database, and none of them is timed out."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY"))
        conn.execute(text("SET LOCAL statement_timeout = 0"))


def _revision(conn: Connection, meta: MetaData) -> str | None:
    if "alembic_version" not in meta.tables:
        return None
    heads = [str(r[0]) for r in conn.execute(select(meta.tables["alembic_version"].c.version_num))]
    return heads[0] if len(heads) == 1 else None


def _encode(table: Table) -> dict[str, Any]:
    """How each column's values are written: binary as base64 text, everything else as it is."""
    return {c.name: isinstance(c.type, LargeBinary) for c in table.columns}


def _dump_table(conn: Connection, table: Table, out: IO[str]) -> int:
    binary = _encode(table)
    per = 20 if any(binary.values()) else BATCH_ROWS  # audio chunks: a few MB at a time, not a GB
    query = select(table).order_by(*table.primary_key.columns) if table.primary_key else select(table)
    n = 0
    for row in conn.execution_options(stream_results=True, yield_per=per).execute(query).mappings():
        values = {k: (base64.b64encode(bytes(v)).decode() if binary[k] and v is not None else v)
                  for k, v in row.items()}
        out.write(json.dumps(values, ensure_ascii=False, default=str, separators=(",", ":")) + "\n")
        n += 1
    return n


def _audio_files(audio_dir: Path | None) -> Iterator[Path]:
    if audio_dir is None or not audio_dir.is_dir():
        return
    for path in sorted(audio_dir.rglob("*")):
        if path.is_file() and not path.is_symlink() and path.suffix != ".tmp":
            yield path


def backup(engine: Engine, audio_dir: Path | None, out: Path) -> Summary:
    """Write the archive ``out`` (atomically: a partial archive never has its final name)."""
    started = time.monotonic()
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".backup-", dir=out.parent) as tmp:
        spool = Path(tmp)
        manifest = _dump_rows(engine, spool)
        summary = Summary(manifest["alembic_revision"], {t: v["rows"] for t, v in manifest["tables"].items()})
        files = [] if AUDIO_TABLES & set(manifest["tables"]) else list(_audio_files(audio_dir))
        manifest["audio_files"] = len(files)
        partial = spool / "archive.tar.gz"
        with tarfile.open(partial, "w:gz", compresslevel=6) as tar:
            _add_bytes(tar, "manifest.json", json.dumps(manifest, ensure_ascii=False, indent=1).encode())
            for name in manifest["tables"]:
                tar.add(spool / f"{name}.jsonl", arcname=f"tables/{name}.jsonl")
            for path in files:
                assert audio_dir is not None
                tar.add(path, arcname=f"audio/{path.relative_to(audio_dir).as_posix()}")
        shutil.move(partial, out)
    summary.audio_files, summary.seconds = len(files), time.monotonic() - started
    logger.info("backup %s: revision %s, %d tables, %d rows, %d audio files, %.1f s", out, summary.revision,
                len(summary.tables), sum(summary.tables.values()), summary.audio_files, summary.seconds)
    return summary


def _dump_rows(engine: Engine, spool: Path) -> dict[str, Any]:
    with engine.connect() as conn, conn.begin():
        _snapshot(conn)
        meta = MetaData()
        meta.reflect(bind=conn)
        tables: dict[str, Any] = {}
        for table in meta.sorted_tables:
            if table.name in SKIPPED:
                continue
            with (spool / f"{table.name}.jsonl").open("w", encoding="utf-8") as f:
                rows = _dump_table(conn, table, f)
            tables[table.name] = {"rows": rows, "columns": [c.name for c in table.columns]}
        return {"format": FORMAT, "version": VERSION, "created_at_ms": int(time.time() * 1000),
                "source": engine.dialect.name, "alembic_revision": _revision(conn, meta), "tables": tables}


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = len(data), int(time.time()), 0o644
    tar.addfile(info, fileobj=io.BytesIO(data))
