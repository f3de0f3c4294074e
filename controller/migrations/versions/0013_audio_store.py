"""the audio store: audio in the database (audioblob, audiochunk), existing files imported (issue 16)

Before this, bulletin audio, live archives and the attention tone lived only in the data
directory of the controller that made them. The upgrade creates the tables and imports what the
migrating controller has on disk (``config.attributes["data_dir"]``, handed in by
controller/core/db.py): each ``audioasset`` file, each live archive (its ``livelog.archive``
then names the blob's SHA-256 instead of a path) and the attention tone. Idempotent: a blob
already there is skipped; a missing or damaged file is logged and skipped, never fatal (another
controller's start imports the files it has: controller/bulletins/audio_import.py).

Self-contained on purpose (no import of the controller's code, which may change after it).

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-03 08:00:00
"""
from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import sqlalchemy as sa
import sqlmodel
from alembic import context, op

revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None

logger = logging.getLogger("alembic.runtime.migration")

_S = sqlmodel.sql.sqltypes.AutoString
CHUNK_BYTES = 512 * 1024
TONE_FILE, TONE_LABEL, TONE_MS = "attention-tone.mp3", "attention-tone", 1000

_blob = sa.table('audioblob', sa.column('sha256'), sa.column('codec'), sa.column('duration_ms'),
                 sa.column('size'), sa.column('chunks'), sa.column('label'), sa.column('created_at'))
_chunk = sa.table('audiochunk', sa.column('sha256'), sa.column('seq'), sa.column('data'))


def _tables() -> None:
    op.create_table('audioblob',
    sa.Column('sha256', _S(length=64), nullable=False),
    sa.Column('codec', _S(length=16), nullable=False),
    sa.Column('duration_ms', sa.BigInteger(), nullable=False),
    sa.Column('size', sa.BigInteger(), nullable=False),
    sa.Column('chunks', sa.Integer(), nullable=False),
    sa.Column('label', _S(length=64), nullable=True),
    sa.Column('created_at', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('sha256')
    )
    op.create_index('ix_audioblob_label', 'audioblob', ['label'], unique=True)
    op.create_table('audiochunk',
    sa.Column('sha256', _S(length=64), nullable=False),
    sa.Column('seq', sa.Integer(), nullable=False),
    sa.Column('data', sa.LargeBinary(), nullable=False),
    sa.ForeignKeyConstraint(['sha256'], ['audioblob.sha256'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('sha256', 'seq')
    )


def _put(conn: sa.Connection, path: Path, *, sha256: str | None, codec: str, duration_ms: int,
         label: str | None = None) -> str | None:
    """Import one file; its SHA-256, or None when it is missing or does not match ``sha256``."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        logger.warning("audio store import: %s not imported (%s)", path, exc)
        return None
    actual = hashlib.sha256(data).hexdigest()
    if sha256 is not None and actual != sha256:
        logger.error("audio store import: %s hashes to %s, not %s; not imported", path, actual, sha256)
        return None
    if conn.execute(sa.select(_blob.c.sha256).where(_blob.c.sha256 == actual)).first() is None:
        pieces = [data[i:i + CHUNK_BYTES] for i in range(0, len(data), CHUNK_BYTES)] or [b""]
        conn.execute(_blob.insert().values(sha256=actual, codec=codec, duration_ms=duration_ms,
                                           size=len(data), chunks=len(pieces), label=label,
                                           created_at=int(path.stat().st_mtime * 1000)))
        conn.execute(_chunk.insert(), [{"sha256": actual, "seq": i, "data": p} for i, p in enumerate(pieces)])
    return actual


def import_files(conn: sa.Connection, data_dir: Path) -> int:
    """Every audio file the database names that ``data_dir`` holds; returns how many were imported."""
    audio_dir, n = data_dir / "audio", 0
    assets = conn.execute(sa.text("SELECT a.sha256, a.codec, a.duration_ms, a.path FROM audioasset a "
                                  "LEFT JOIN audioblob b ON b.sha256 = a.sha256 WHERE b.sha256 IS NULL"))
    for sha256, codec, duration_ms, rel in assets.all():
        n += _put(conn, audio_dir / rel, sha256=sha256, codec=codec, duration_ms=duration_ms) is not None
    archives = conn.execute(sa.text("SELECT id, archive, archive_duration_ms FROM livelog "
                                    "WHERE archive IS NOT NULL"))
    for sid, rel, duration_ms in archives.all():
        if len(rel) == 64 and "/" not in rel:
            continue  # already a blob
        sha256 = _put(conn, audio_dir / rel, sha256=None, codec="mp3", duration_ms=duration_ms or 0)
        if sha256 is not None:
            conn.execute(sa.text("UPDATE livelog SET archive = :sha WHERE id = :id"), {"sha": sha256, "id": sid})
            n += 1
    tone = data_dir / TONE_FILE
    labelled = conn.execute(sa.select(_blob.c.sha256).where(_blob.c.label == TONE_LABEL)).first()
    if tone.is_file() and labelled is None:
        n += _put(conn, tone, sha256=None, codec="mp3", duration_ms=TONE_MS, label=TONE_LABEL) is not None
    return n


def upgrade() -> None:
    _tables()
    data_dir = context.config.attributes.get("data_dir")
    if data_dir is None:
        logger.info("audio store: no data directory given; no audio files imported")
        return
    n = import_files(op.get_bind(), Path(data_dir))
    logger.info("audio store: %d audio file(s) imported from %s", n, data_dir)


def downgrade() -> None:
    op.drop_table('audiochunk')
    op.drop_index('ix_audioblob_label', 'audioblob')
    op.drop_table('audioblob')
