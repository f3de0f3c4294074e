"""Content-addressed on-disk cache of rendered audio.

Each entry is ``<key>.bin`` (encoded audio) plus ``<key>.json`` (metadata).
Keys are sha256 hex digests of everything that affects the audio (see
:func:`cache_key`). Writes are atomic (temporary file + ``os.replace``) so
several processes may share a directory. The total size is bounded: the least
recently used entries (data-file mtime, refreshed on every hit) are evicted.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["DEFAULT_MAX_BYTES", "AudioCache", "CacheEntry", "cache_key"]

logger = logging.getLogger(__name__)

DEFAULT_MAX_BYTES = 256 * 1024 * 1024
CACHE_FORMAT = 2
_STALE_TMP_S = 3600.0
_KEY_RE = re.compile(r"^[0-9a-f]{64}$")


def cache_key(*, text: str, engine: str, voice: str, speed: float, codec: str, bitrate_kbps: int,
              extra: Mapping[str, Any] | None = None) -> str:
    """sha256 hex of the normalised text and every rendering option (``extra``: the audio pipeline's)."""
    payload: dict[str, Any] = {
        "format": CACHE_FORMAT,
        "text": text,
        "engine": engine,
        "voice": voice,
        "speed": f"{speed:.4f}",
        "codec": codec,
        "bitrate_kbps": int(bitrate_kbps),
        "extra": dict(extra or {}),
    }
    blob = json.dumps(payload, sort_keys=True, ensure_ascii=False).encode("utf-8")
    return hashlib.sha256(blob).hexdigest()


@dataclass(frozen=True)
class CacheEntry:
    """Audio bytes and the metadata stored next to them."""

    data: bytes
    metadata: dict[str, Any]


class AudioCache:
    """File cache bounded to ``max_bytes`` with least-recently-used eviction."""

    def __init__(self, directory: Path, *, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        if max_bytes <= 0:
            raise ValueError("max_bytes must be positive")
        self.directory = Path(directory)
        self.max_bytes = max_bytes

    def _paths(self, key: str) -> tuple[Path, Path]:
        if not _KEY_RE.match(key):
            raise ValueError(f"invalid cache key {key!r}: expected 64 lower-case hex digits")
        return self.directory / f"{key}.bin", self.directory / f"{key}.json"

    def get(self, key: str) -> CacheEntry | None:
        """Return the entry for ``key`` and mark it recently used, or None on a miss."""
        data_path, meta_path = self._paths(key)
        try:
            metadata = json.loads(meta_path.read_text(encoding="utf-8"))
            data = data_path.read_bytes()
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            logger.warning("unreadable cache entry %s, ignoring it: %s", key, exc)
            return None
        if not isinstance(metadata, dict) or metadata.get("sha256") != hashlib.sha256(data).hexdigest():
            # corrupt, or caught mid-write by another process: a miss; put() overwrites it
            logger.warning("cache entry %s fails its checksum, ignoring it", key)
            return None
        now = time.time_ns()
        try:
            os.utime(data_path, ns=(now, now))
        except OSError as exc:  # entry evicted concurrently; the bytes we hold are fine
            logger.debug("could not touch cache entry %s: %s", key, exc)
        return CacheEntry(data=data, metadata=metadata)

    def put(self, key: str, data: bytes, metadata: Mapping[str, Any]) -> None:
        """Store ``data`` under ``key``; ``metadata['sha256']`` is set from the data."""
        data_path, meta_path = self._paths(key)
        meta = dict(metadata)
        meta["sha256"] = hashlib.sha256(data).hexdigest()
        meta_blob = json.dumps(meta, ensure_ascii=False, sort_keys=True).encode("utf-8")
        if len(data) + len(meta_blob) > self.max_bytes:
            logger.info("audio for %s (%d bytes) exceeds the cache size; not cached", key, len(data))
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        _atomic_write(data_path, data)
        _atomic_write(meta_path, meta_blob)
        now = time.time_ns()
        os.utime(data_path, ns=(now, now))
        self.evict()

    def total_bytes(self) -> int:
        """Bytes currently used by complete and partial entries."""
        return sum(size for _, size, _ in self._entries())

    def _entries(self) -> list[tuple[int, int, str]]:
        """(last use ns, size, key) for every entry found on disk."""
        sizes: dict[str, int] = {}
        used: dict[str, int] = {}
        try:
            files = list(os.scandir(self.directory))
        except FileNotFoundError:
            return []
        cutoff = time.time() - _STALE_TMP_S
        for item in files:
            try:
                st = item.stat()
            except FileNotFoundError:
                continue
            stem, _, ext = item.name.partition(".")
            if item.name.startswith(".tmp-"):
                if st.st_mtime < cutoff:  # left behind by a crashed writer
                    _unlink(Path(item.path))
                continue
            if not _KEY_RE.match(stem) or ext not in ("bin", "json"):
                continue
            sizes[stem] = sizes.get(stem, 0) + st.st_size
            if ext == "bin":
                used[stem] = st.st_mtime_ns
        return [(used.get(k, 0), size, k) for k, size in sizes.items()]

    def evict(self) -> None:
        """Delete least recently used entries until the cache fits in ``max_bytes``."""
        entries = sorted(self._entries())
        total = sum(size for _, size, _ in entries)
        for _, size, key in entries:
            if total <= self.max_bytes:
                break
            logger.debug("evicting cache entry %s (%d bytes)", key, size)
            self._remove(key)
            total -= size

    def _remove(self, key: str) -> None:
        for path in self._paths(key):
            _unlink(path)


def _unlink(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass


def _atomic_write(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        _unlink(Path(tmp))
        raise
