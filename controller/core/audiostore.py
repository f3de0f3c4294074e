"""The content-addressed audio store: every controller's audio in the database, a local cache in front.

Bulletin audio (speech, recordings, re-reads), live archives and the units' attention tone are
written once, keyed by the SHA-256 of their bytes, into the ``audioblob`` / ``audiochunk`` tables
(controller/core/models.py; chunks of :data:`CHUNK_BYTES`, BLOB on SQLite, bytea on PostgreSQL),
so any controller on the same database can air, preview and download audio another one made —
with an empty data directory. Reads go through a local cache directory (``<data_dir>/audio``:
``<sha[:2]>/<sha>.<codec>``, the layout the controller used before the store, so old files are
warm cache): a hit costs a file read and a hash, a miss one query, after which the file is kept.

Every blob is checked on the way in (bytes that do not hash to the claimed SHA-256 are refused:
:class:`AudioMismatch`) and on the way out (a cache file that no longer matches is dropped and read
again from the database; a database blob that does not match raises :class:`AudioCorrupt`).

The methods block (file and database I/O): call them from a worker thread on hot paths.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from sqlalchemy import insert
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Session, col, delete, select

from controller.core.db import Database
from controller.core.models import AudioBlob, AudioChunk
from devices.protocol import now_ms

logger = logging.getLogger(__name__)

#: bytes per ``audiochunk`` row: small enough for any driver's parameter, few rows per bulletin
CHUNK_BYTES = 512 * 1024
_HEX = frozenset("0123456789abcdef")


class AudioStoreError(ValueError):
    """Audio that cannot be stored or read (a ``ValueError``: callers that refuse bad audio catch it)."""


class AudioMismatch(AudioStoreError):
    """The bytes offered do not hash to the SHA-256 they were offered under: refused, nothing written."""

    def __init__(self, claimed: str, actual: str) -> None:
        super().__init__(f"audio refused: its bytes hash to sha256 {actual}, not the claimed {claimed}")
        self.claimed, self.actual = claimed, actual


class AudioMissing(AudioStoreError, LookupError):
    """No audio with this SHA-256 in the store."""

    def __init__(self, sha256: str) -> None:
        super().__init__(f"audio {sha256} is not in the audio store")
        self.sha256 = sha256


class AudioCorrupt(AudioStoreError):
    """The database holds bytes for this SHA-256 that do not hash to it."""


class LabelTaken(AudioStoreError):
    """Another blob already carries the label (a second controller stored its own first)."""


@dataclass(frozen=True)
class StoredAudio:
    sha256: str
    codec: str
    duration_ms: int
    size: int


class AudioStore(Protocol):
    """Where audio lives for every controller (the port; :class:`DbAudioStore` implements it)."""

    def put(self, data: bytes, *, sha256: str, codec: str, duration_ms: int,
            label: str | None = None, session: Session | None = None) -> StoredAudio: ...

    def get(self, sha256: str) -> bytes: ...

    def has(self, sha256: str) -> bool: ...

    def file(self, sha256: str) -> Path: ...

    def discard(self, sha256: str) -> None: ...


def is_sha256(value: str) -> bool:
    return len(value) == 64 and all(ch in _HEX for ch in value)


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class DbAudioStore:
    """The audio store in the controller's database, read through ``cache_dir``."""

    def __init__(self, db: Database, cache_dir: Path) -> None:
        self.db = db
        self.cache_dir = cache_dir
        self._lock = threading.Lock()
        self._known: dict[str, str] = {}  # sha256 → codec: in the database (write-once)
        self._verified: dict[Path, tuple[int, int]] = {}  # cache file → (size, mtime_ns) checked
        self.stats = {"cache_hits": 0, "db_reads": 0, "puts": 0}

    # ------------------------------------------------------------------ writing

    def put(self, data: bytes, *, sha256: str, codec: str, duration_ms: int,
            label: str | None = None, session: Session | None = None) -> StoredAudio:
        """Store ``data`` under ``sha256`` once (idempotent; several controllers may race: one row
        wins, the others find it). Refuses bytes that do not hash to ``sha256``. With ``session``
        the rows join that transaction (committed by the caller with the rows that name the audio:
        on SQLite a second connection would wait for the caller's write lock); else committed now."""
        actual = digest(data)
        if actual != sha256:
            raise AudioMismatch(sha256, actual)
        out = StoredAudio(sha256, codec, duration_ms, len(data))
        if session is not None:
            self._insert(session, data, out, label)
        elif sha256 not in self._known:
            with self.db.session() as s:
                self._insert(s, data, out, label)
                s.commit()
            self._remember(sha256, codec)
        self._keep(sha256, codec, data)
        return out

    def _insert(self, s: Session, data: bytes, a: StoredAudio, label: str | None) -> None:
        """Insert the blob row, then its chunks, unless the blob is there already. ``INSERT … ON
        CONFLICT DO NOTHING``: a writer racing another one for the same audio waits for it and
        finds its row, without failing (and so without spoiling) the caller's transaction."""
        if s.get(AudioBlob, a.sha256) is not None:
            return
        pieces = [data[i:i + CHUNK_BYTES] for i in range(0, len(data), CHUNK_BYTES)] or [b""]
        dialect = s.get_bind().dialect.name
        ins = pg_insert(AudioBlob) if dialect == "postgresql" else sqlite_insert(AudioBlob)
        row = ins.values(sha256=a.sha256, codec=a.codec, duration_ms=a.duration_ms, size=a.size,
                         chunks=len(pieces), label=label, created_at=now_ms()).on_conflict_do_nothing()
        if s.execute(row.returning(col(AudioBlob.sha256))).first() is None:  # a conflict: not inserted
            if s.get(AudioBlob, a.sha256) is None:
                raise LabelTaken(f"label {label!r} already names other audio")
            return
        s.execute(insert(AudioChunk), [{"sha256": a.sha256, "seq": i, "data": piece}
                                       for i, piece in enumerate(pieces)])
        self.stats["puts"] += 1
        logger.info("audio %s stored (%s, %d bytes, %d ms)", a.sha256[:12], a.codec, a.size, a.duration_ms)

    def discard(self, sha256: str) -> None:
        """Remove a blob (the live archive's retention; bulletin audio is never removed)."""
        with self.db.session() as s:
            s.exec(delete(AudioChunk).where(col(AudioChunk.sha256) == sha256))  # type: ignore[call-overload]
            s.exec(delete(AudioBlob).where(col(AudioBlob.sha256) == sha256))  # type: ignore[call-overload]
            s.commit()
        with self._lock:
            self._known.pop(sha256, None)
        for f in self._cached(sha256):
            f.unlink(missing_ok=True)
            self._verified.pop(f, None)

    # ------------------------------------------------------------------ reading

    def has(self, sha256: str) -> bool:
        return sha256 in self._known or self._exists(sha256)

    def info(self, sha256: str) -> StoredAudio | None:
        with self.db.session() as s:
            row = s.get(AudioBlob, sha256)
        return None if row is None else StoredAudio(row.sha256, row.codec, row.duration_ms, row.size)

    def labelled(self, label: str) -> StoredAudio | None:
        """The blob that carries ``label``, if one does."""
        with self.db.session() as s:
            row = s.exec(select(AudioBlob).where(col(AudioBlob.label) == label)).first()
        return None if row is None else StoredAudio(row.sha256, row.codec, row.duration_ms, row.size)

    def get(self, sha256: str) -> bytes:
        """The bytes of ``sha256``: from the cache when it holds them intact, else from the database
        (then kept in the cache). :class:`AudioMissing` if the store has no such audio."""
        for f in self._cached(sha256):
            data = self._read_cached(f, sha256)
            if data is not None:
                self.stats["cache_hits"] += 1
                return data
        codec, data = self._read_db(sha256)
        self._keep(sha256, codec, data)
        return data

    def file(self, sha256: str) -> Path:
        """A local file with the bytes of ``sha256`` (for streaming responses), fetched if needed."""
        for f in self._cached(sha256):
            if self._checked(f, sha256):
                return f
        codec, data = self._read_db(sha256)
        path = self._keep(sha256, codec, data)
        if path is None:
            raise AudioStoreError(f"audio {sha256} cannot be written to the cache {self.cache_dir}")
        return path

    def _read_db(self, sha256: str) -> tuple[str, bytes]:
        with self.db.session() as s:
            blob = s.get(AudioBlob, sha256)
            if blob is None:
                raise AudioMissing(sha256)
            pieces = s.exec(select(AudioChunk.data).where(col(AudioChunk.sha256) == sha256)
                            .order_by(col(AudioChunk.seq))).all()
        data = b"".join(pieces)
        if len(pieces) != blob.chunks or digest(data) != sha256:
            raise AudioCorrupt(f"audio {sha256} in the database does not match its checksum "
                               f"({len(pieces)}/{blob.chunks} chunks, {len(data)}/{blob.size} bytes)")
        self.stats["db_reads"] += 1
        self._remember(sha256, blob.codec)
        return blob.codec, data

    def _exists(self, sha256: str) -> bool:
        with self.db.session() as s:
            row = s.get(AudioBlob, sha256)
        if row is not None:
            self._remember(sha256, row.codec)
        return row is not None

    def _remember(self, sha256: str, codec: str) -> None:
        with self._lock:
            self._known[sha256] = codec

    # ------------------------------------------------------------------ the cache

    def cache_path(self, sha256: str, codec: str) -> Path:
        return self.cache_dir / sha256[:2] / f"{sha256}.{codec}"

    def _cached(self, sha256: str) -> list[Path]:
        if not is_sha256(sha256):
            return []
        known = self._known.get(sha256)
        if known is not None:
            f = self.cache_path(sha256, known)
            return [f] if f.is_file() else []
        d = self.cache_dir / sha256[:2]
        return [f for f in d.glob(f"{sha256}.*") if f.suffix not in (".tmp", ".part")] if d.is_dir() else []

    def _checked(self, f: Path, sha256: str) -> bool:
        """The cache file still holds ``sha256`` (hashed once per size and mtime)."""
        try:
            st = f.stat()
        except OSError:
            return False
        if self._verified.get(f) == (st.st_size, st.st_mtime_ns):
            return True
        return self._read_cached(f, sha256) is not None

    def _read_cached(self, f: Path, sha256: str) -> bytes | None:
        try:
            st = f.stat()
            data = f.read_bytes()
        except OSError:
            return None
        if self._verified.get(f) == (st.st_size, st.st_mtime_ns) and len(data) == st.st_size:
            return data  # hashed already, untouched since
        if digest(data) != sha256:
            logger.warning("cached audio %s does not match its checksum; reading it from the database", f)
            f.unlink(missing_ok=True)
            self._verified.pop(f, None)
            return None
        self._verified[f] = (st.st_size, st.st_mtime_ns)
        return data

    def _keep(self, sha256: str, codec: str, data: bytes) -> Path | None:
        """Write the cache file (atomically); a full or read-only disk only costs the cache."""
        dest = self.cache_path(sha256, codec)
        if dest.is_file() and dest.stat().st_size == len(data):
            return dest
        tmp = dest.with_name(f"{dest.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        try:
            dest.parent.mkdir(parents=True, exist_ok=True)
            tmp.write_bytes(data)
            tmp.replace(dest)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            logger.warning("audio %s not cached in %s: %s", sha256[:12], self.cache_dir, exc)
            return None
        return dest
