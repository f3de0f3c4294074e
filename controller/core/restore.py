"""``loaphuong restore``: an archive of controller/core/backup.py into an empty database.

The schema comes from the migrations (up to the archive's revision), never from the archive, so a
SQLite archive restores into PostgreSQL and back; the rows go in parents first in one transaction
(a failure leaves the tables empty), PostgreSQL's id sequences move past the restored ids, and the
audio files are unpacked into the audio directory. See the docstring of controller/core/backup.py.
"""

from __future__ import annotations

import base64
import io
import json
import logging
import os
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any

from alembic import command
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import Connection, Integer, MetaData, Table, func, select, text
from sqlalchemy.engine import Engine
from sqlalchemy.types import JSON, LargeBinary

from controller.core.backup import BATCH_BYTES, BATCH_ROWS, FORMAT, SKIPPED, VERSION, BackupError, Summary
from controller.core.db import alembic_config

logger = logging.getLogger(__name__)


def read_manifest(tar: tarfile.TarFile) -> dict[str, Any]:
    try:
        member = tar.extractfile("manifest.json")
        manifest: dict[str, Any] = json.load(member) if member is not None else {}
    except (KeyError, ValueError) as exc:
        raise BackupError("not_a_backup", "Tệp này không phải bản sao lưu loaphuong",
                          f"this file is not a loaphuong backup ({exc})") from exc
    if manifest.get("format") != FORMAT or not isinstance(manifest.get("tables"), dict):
        raise BackupError("not_a_backup", "Tệp này không phải bản sao lưu loaphuong",
                          "this file is not a loaphuong backup")
    if (version := manifest.get("version")) != VERSION:
        raise BackupError("backup_version", f"Bản sao lưu định dạng {version} không đọc được; "
                          f"phiên bản này đọc định dạng {VERSION}",
                          f"backup format {version} cannot be read; this version reads {VERSION}")
    return manifest


def _url(engine: Engine) -> str:
    return engine.url.render_as_string(hide_password=False)


def _check_revision(engine: Engine, revision: object) -> str:
    try:
        if not isinstance(revision, str):
            raise CommandError("no revision")
        ScriptDirectory.from_config(alembic_config(_url(engine))).get_revision(revision)
    except CommandError as exc:
        raise BackupError("backup_revision", f"Bản sao lưu có lược đồ {revision!r} mà phiên bản này không "
                          "biết (sao lưu từ phiên bản mới hơn?)",
                          f"the backup's schema revision {revision!r} is unknown to this version "
                          "(made by a newer one?)") from exc
    return revision


def _occupied(engine: Engine) -> tuple[MetaData, list[str]]:
    """The database's tables, and those holding rows ("table: n")."""
    meta = MetaData()
    with engine.connect() as conn:
        meta.reflect(bind=conn)
        counts = [(t.name, conn.execute(select(func.count()).select_from(t)).scalar_one())
                  for t in meta.sorted_tables if t.name not in SKIPPED]
    return meta, [f"{name}: {n}" for name, n in counts if n]


def _make_empty(engine: Engine, force: bool) -> None:
    meta, occupied = _occupied(engine)
    if occupied and not force:
        shown = ", ".join(occupied[:5]) + (", …" if len(occupied) > 5 else "")
        raise BackupError("not_empty", f"Cơ sở dữ liệu đích không trống ({shown}); chỉ khôi phục vào cơ sở "
                          "dữ liệu trống, hoặc thêm --force để xóa hết dữ liệu đang có",
                          f"the target database is not empty ({shown}); restore only into an empty "
                          "database, or add --force to delete everything it holds")
    if meta.tables:
        logger.warning("restore: dropping the %d existing tables (%s)", len(meta.tables),
                       "--force" if occupied else "no rows")
        _drop_all(engine)


def _drop_all(engine: Engine) -> None:
    meta = MetaData()
    with engine.begin() as conn:
        meta.reflect(bind=conn)
        meta.drop_all(bind=conn)


def _schema(engine: Engine, revision: str) -> None:
    cfg = alembic_config(_url(engine))
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SET LOCAL statement_timeout = 0"))
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)


def _rows(tar: tarfile.TarFile, name: str, table: Table) -> Iterator[dict[str, Any]]:
    member = tar.extractfile(f"tables/{name}.jsonl")
    if member is None:
        return
    binary = {c.name for c in table.columns if isinstance(c.type, LargeBinary)}
    known = set(table.columns.keys())
    for line in io.TextIOWrapper(member, encoding="utf-8"):
        row: dict[str, Any] = json.loads(line)
        if not row.keys() <= known:
            raise BackupError("backup_columns", f"Bảng {name} trong bản sao lưu có cột lạ: "
                              f"{sorted(row.keys() - known)}",
                              f"table {name} in the backup has unknown columns: {sorted(row.keys() - known)}")
        for k in binary & row.keys():
            if row[k] is not None:
                row[k] = base64.b64decode(row[k])
        yield row


def _parents_first(table: Table, rows: Iterator[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """A table referring to itself (an org unit's parent): each row after the one it names."""
    own = [(fk.parent.name, fk.column.name) for fk in table.foreign_keys if fk.column.table is table]
    if not own:
        yield from rows
        return
    left, done = list(rows), set[tuple[str, Any]]()
    while left:
        ready = [r for r in left if all(r.get(c) is None or (ref, r[c]) in done for c, ref in own)]
        if not ready:  # a cycle, or a parent missing: inserted as they are (the database says which)
            ready = left
        for r in ready:
            done.update((ref, r.get(ref)) for _, ref in own)
        keep = {id(r) for r in ready}
        left = [r for r in left if id(r) not in keep]
        yield from ready


def _insert(conn: Connection, table: Table, rows: Iterator[dict[str, Any]]) -> int:
    batch: list[dict[str, Any]] = []
    size = n = 0
    for row in rows:
        batch.append(row)
        size += sum(len(v) for v in row.values() if isinstance(v, bytes | str))
        if len(batch) >= BATCH_ROWS or size >= BATCH_BYTES:
            conn.execute(table.insert(), batch)
            n, batch, size = n + len(batch), [], 0
    if batch:
        conn.execute(table.insert(), batch)
        n += len(batch)
    return n


def _sequences(conn: Connection) -> None:
    """PostgreSQL: each serial id's sequence continues after the largest restored id."""
    if conn.dialect.name != "postgresql":
        return  # SQLite takes max(rowid) + 1 by itself
    meta = MetaData()
    meta.reflect(bind=conn)
    quote = conn.dialect.identifier_preparer
    for table in meta.sorted_tables:
        pk = list(table.primary_key.columns)
        if len(pk) != 1 or not isinstance(pk[0].type, Integer):
            continue
        seq = conn.execute(text("SELECT pg_get_serial_sequence(:t, :c)"),
                           {"t": quote.format_table(table), "c": pk[0].name}).scalar()
        if seq:
            top = conn.execute(select(func.max(pk[0]))).scalar()
            conn.execute(text("SELECT setval(:s, :v, false)"), {"s": seq, "v": int(top or 0) + 1})


def _load_rows(engine: Engine, tar: tarfile.TarFile, manifest: dict[str, Any]) -> dict[str, int]:
    counts: dict[str, int] = {}
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SET LOCAL statement_timeout = 0"))
        meta = MetaData()
        meta.reflect(bind=conn)
        unknown = sorted(set(manifest["tables"]) - set(meta.tables))
        if unknown:
            raise BackupError("backup_tables", f"Bản sao lưu có bảng mà lược đồ không có: {unknown}",
                              f"the backup has tables the schema lacks: {unknown}")
        for table in reversed(meta.sorted_tables):  # rows a migration may have written
            if table.name not in SKIPPED:
                conn.execute(table.delete())
        for table in meta.sorted_tables:
            if table.name in manifest["tables"]:
                for col in table.columns:  # a JSON None back to SQL NULL, as it was read
                    if isinstance(col.type, JSON):
                        col.type.none_as_null = True
                rows = _parents_first(table, _rows(tar, table.name, table))
                counts[table.name] = _insert(conn, table, rows)
                if counts[table.name] != manifest["tables"][table.name].get("rows"):
                    raise BackupError("backup_truncated", f"Bảng {table.name} trong bản sao lưu thiếu dòng",
                                      f"table {table.name} in the backup is missing rows (truncated file?)")
        _sequences(conn)
    return counts


def _unpack_audio(tar: tarfile.TarFile, audio_dir: Path) -> int:
    n = 0
    for member in tar:
        name = PurePosixPath(member.name)
        if not member.isfile() or name.parts[:1] != ("audio",):
            continue
        rel = PurePosixPath(*name.parts[1:])
        if not rel.parts or rel.is_absolute() or ".." in rel.parts:
            raise BackupError("backup_path", f"Đường dẫn không hợp lệ trong bản sao lưu: {member.name}",
                              f"unsafe path in the backup: {member.name}")
        dest = audio_dir.joinpath(*rel.parts)
        dest.parent.mkdir(parents=True, exist_ok=True)
        src = tar.extractfile(member)
        tmp = dest.with_name(dest.name + ".restoring")
        with tmp.open("wb") as f:
            while src is not None and (chunk := src.read(1 << 20)):
                f.write(chunk)
        os.replace(tmp, dest)
        n += 1
    return n


def restore(engine: Engine, archive: Path, audio_dir: Path, *, force: bool = False) -> Summary:
    """Restore ``archive`` into the (empty, unless ``force``) database of ``engine``."""
    started = time.monotonic()
    try:
        tar = tarfile.open(archive, "r:gz")
    except (OSError, tarfile.TarError) as exc:
        raise BackupError("not_a_backup", f"Không đọc được tệp sao lưu {archive}",
                          f"cannot read the backup file {archive}: {exc}") from exc
    with tar:
        manifest = read_manifest(tar)
        revision = _check_revision(engine, manifest.get("alembic_revision"))
        _make_empty(engine, force)
        try:
            _schema(engine, revision)
            counts = _load_rows(engine, tar, manifest)
        except BaseException:  # the database was empty: it is left empty (no tables), not half-made
            _drop_all(engine)
            raise
        files = _unpack_audio(tar, audio_dir)
    summary = Summary(revision, counts, files, time.monotonic() - started)
    logger.info("restored %s: revision %s, %d rows in %d tables, %d audio files, %.1f s", archive, revision,
                sum(counts.values()), len(counts), files, summary.seconds)
    return summary
