"""The record of live sessions from a phone: the broadcast log (table ``livelog``) and the audio archive.

:class:`LiveRecorder` is the :class:`controller.live.session.LiveObserver` of the live hub. It never blocks
nor fails the voice: rows go through the batched :class:`controller.core.writer.DbWriter` (a locked or
unreachable database keeps them for retry), the PCM frames sent to the units are appended to
``<audio_dir>/live/<session>.pcm`` (disk errors stop the archive, not the session) and, when the
session ends, encoded off the event loop by ffmpeg to MP3 mono and put in the audio store
(controller/core/audiostore.py: every controller can serve it; ``livelog.archive`` is its SHA-256).
Its going on air and its end (who, zones, how long, why) are written to the audit log too.

A PCM file left behind by a controller that stopped mid-session (or before the encoding was
recorded) is encoded by the next sweep; the sweep also deletes archives past the retention period
(the row stays, ``archive`` cleared).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from sqlmodel import Session, col, select

from controller.accounts.audit import details, record_op, where
from controller.core.audiostore import AudioStore, AudioStoreError, is_sha256
from controller.core.background import Periodic
from controller.core.db import Database
from controller.core.writer import DbWriter
from controller.live.models import LiveLog
from controller.live.session import LiveSession
from controller.live.settings import LiveSettings
from devices import protocol as p
from devices.link import UnitBus
from tts.audio import ffmpeg_path
from tts.errors import EngineError

logger = logging.getLogger(__name__)

BYTES_PER_S = p.LIVE_SAMPLE_RATE * 2  # PCM s16le mono
ARCHIVE_DIR = "live"
DAY_MS = 86_400_000


@dataclass
class _Record:
    """A phone session being recorded."""

    sid: str
    nodes: set[str]
    heard: set[str] = field(default_factory=set)
    pcm: Path | None = None
    file: IO[bytes] | None = None
    written: int = 0
    note: str = ""
    live_at: int = 0  # epoch ms it went on air (0: never)


def _upsert(sid: str, fields: dict[str, Any]) -> Callable[[Session], None]:
    """A write op: set ``fields`` on the session's row (created if an earlier write was lost)."""

    def op(s: Session) -> None:
        row = s.get(LiveLog, sid) or LiveLog(id=sid)
        for k, v in fields.items():
            setattr(row, k, v)
        s.add(row)

    return op


def _ended_if_open(sid: str) -> Callable[[Session], None]:
    """A write op for a session whose controller stopped before it ended."""

    def op(s: Session) -> None:
        row = s.get(LiveLog, sid) or LiveLog(id=sid)
        if row.state != "ended":
            row.state, row.reason = "ended", "controller stopped"
            s.add(row)

    return op


def _where(s: LiveSession, **more: object) -> str:
    """The audit detail of a session: its zones (or units, or the whole ward), units, priority."""
    return details(**where(s.target), units=len(s.nodes), priority=s.priority.value, **more)


class LiveRecorder:
    def __init__(self, db: Database, writer: DbWriter, link: UnitBus, settings: LiveSettings,
                 audio_dir: Path, store: AudioStore) -> None:
        self.db = db
        self.store = store
        self.writer = writer
        self.settings = settings
        self.audio_dir = audio_dir
        self.live_dir = audio_dir / ARCHIVE_DIR
        self.records: dict[str, _Record] = {}
        self._encoding: set[str] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._sweeper = Periodic("live-archive-sweep", settings.sweep_s, self.sweep, first_immediately=True)
        self.last_encode_s = 0.0
        link.on("telemetry", self._on_telemetry)

    @property
    def cap_bytes(self) -> int:
        return int(self.settings.archive_max_minutes * 60 * BYTES_PER_S) & ~1

    # ----------------------------------------------------------------- LiveObserver

    def on_open(self, s: LiveSession) -> None:
        rec = _Record(s.id, set(s.nodes))
        self.records[s.id] = rec
        if not self.settings.archive:
            rec.note = "archiving off"
        else:
            try:
                self.live_dir.mkdir(parents=True, exist_ok=True)
                rec.pcm = self.live_dir / f"{s.id}.pcm"
                rec.file = rec.pcm.open("wb", buffering=64 * 1024)
            except OSError as exc:
                self._fail(rec, exc)
        self.writer.submit(_upsert(s.id, {
            "user": s.user, "priority": s.priority.value, "target": s.target, "nodes": list(s.nodes),
            "state": s.state, "reason": "", "opened_at": p.now_ms(), "archive_note": rec.note}))

    def on_live(self, s: LiveSession) -> None:
        now = p.now_ms()
        if (rec := self.records.get(s.id)) is not None:
            rec.live_at = now
        self.writer.submit(_upsert(s.id, {"state": "live", "started_at": now}))
        self.writer.submit(record_op(s.user, "live_start", f"live:{s.id}", _where(s)))

    def on_frame(self, s: LiveSession, pcm: bytes) -> None:
        rec = self.records.get(s.id)
        if rec is None or rec.file is None or not pcm:
            return
        room = self.cap_bytes - rec.written
        try:
            rec.file.write(pcm[:room])
        except OSError as exc:  # disk full, removed directory...: the archive stops, the voice goes on
            self._fail(rec, exc)
            return
        rec.written += min(room, len(pcm))
        if rec.written >= self.cap_bytes:
            rec.note = f"archive capped at {self.settings.archive_max_minutes} min"
            logger.warning("live %s: %s; the rest is aired but not kept", s.id, rec.note)
            self._close(rec)

    def on_end(self, s: LiveSession) -> None:
        rec = self.records.pop(s.id, None) or _Record(s.id, set(s.nodes))
        self._close(rec)
        encode = rec.pcm is not None and rec.written > 0 and not rec.note.startswith("archive failed")
        if rec.pcm is not None and not encode:
            rec.pcm.unlink(missing_ok=True)
        self.writer.submit(_upsert(s.id, {
            "state": "ended", "reason": s.reason[:200], "ended_at": p.now_ms(), "frames": s.stats.frames_out,
            "bytes_in": s.stats.bytes_in, "units_heard": sorted(rec.heard),
            "units_refused": dict(s.refused), "archive_note": "encoding" if encode else rec.note}))
        if encode and rec.pcm is not None:
            self._spawn(self._finish(s.id, rec.pcm, rec.note))
        self.writer.submit(record_op(s.user, "live_end", f"live:{s.id}", _where(
            s, reason=s.reason, seconds=round((p.now_ms() - rec.live_at) / 1000) if rec.live_at else 0,
            heard=len(rec.heard))))

    # ----------------------------------------------------------------- archive

    def _fail(self, rec: _Record, exc: BaseException | str) -> None:
        rec.note = f"archive failed: {exc}"[:300]
        logger.error("live %s: %s (the broadcast goes on)", rec.sid, rec.note)
        self._close(rec)

    def _close(self, rec: _Record) -> None:
        f, rec.file = rec.file, None
        if f is not None:
            try:
                f.close()
            except OSError as exc:
                rec.note = f"archive failed: {exc}"[:300]

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _finish(self, sid: str, pcm: Path, note: str) -> None:
        """Encode the session's PCM to MP3 (in a thread), record it, then drop the PCM."""
        self._encoding.add(sid)
        try:
            t0 = time.monotonic()
            try:
                rel, duration_ms = await asyncio.to_thread(self.archive, sid, pcm)
                fields: dict[str, Any] = {"archive": rel, "archive_duration_ms": duration_ms,
                                          "archive_note": note}
                self.last_encode_s = time.monotonic() - t0
                logger.info("live %s archived: %s, %d ms, encoded in %.2f s", sid, rel, duration_ms,
                            self.last_encode_s)
            except (OSError, EngineError, subprocess.SubprocessError, AudioStoreError) as exc:
                fields = {"archive": None, "archive_note": f"archive failed: {exc}"[:300]}
                logger.error("live %s: archive failed: %s", sid, exc)
            self.writer.submit(_upsert(sid, fields))
            if await self.writer.flush():  # recorded: the PCM is no longer needed
                pcm.unlink(missing_ok=True)
        finally:
            self._encoding.discard(sid)

    def encode(self, sid: str, pcm: Path) -> tuple[str, int]:
        """PCM s16le 16 kHz mono → MP3 (blocking); the path under ``audio_dir`` and the duration."""
        size = pcm.stat().st_size
        if size < 2:
            raise OSError("no audio")
        month = datetime.fromtimestamp(pcm.stat().st_mtime, tz=UTC).strftime("%Y-%m")
        rel = f"{ARCHIVE_DIR}/{month}/{sid}.mp3"
        dest = self.audio_dir / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        part = dest.with_suffix(".mp3.part")
        cmd = [ffmpeg_path(), "-hide_banner", "-nostdin", "-loglevel", "error", "-y",
               "-f", "s16le", "-ar", str(p.LIVE_SAMPLE_RATE), "-ac", "1", "-i", str(pcm),
               "-ac", "1", "-c:a", "libmp3lame", "-b:a", f"{self.settings.bitrate_kbps}k",
               "-id3v2_version", "0", "-f", "mp3", str(part)]
        timeout = 60 + size / BYTES_PER_S / 10
        proc = subprocess.run(cmd, capture_output=True, timeout=timeout, check=False)
        if proc.returncode != 0 or not part.exists() or part.stat().st_size == 0:
            part.unlink(missing_ok=True)
            detail = proc.stderr.decode("utf-8", "replace").strip()[-200:]
            raise EngineError(f"ffmpeg could not encode (exit {proc.returncode}): {detail}")
        part.replace(dest)
        return rel, size // 2 * 1000 // p.LIVE_SAMPLE_RATE

    def archive(self, sid: str, pcm: Path) -> tuple[str, int]:
        """Encode the PCM and put the MP3 in the audio store (blocking); its SHA-256 and duration."""
        rel, duration_ms = self.encode(sid, pcm)
        mp3 = self.audio_dir / rel
        data = mp3.read_bytes()
        sha256 = hashlib.sha256(data).hexdigest()
        self.store.put(data, sha256=sha256, codec="mp3", duration_ms=duration_ms)
        mp3.unlink(missing_ok=True)  # the store's cache keeps a copy
        return sha256, duration_ms

    def path(self, row: LiveLog) -> Path | None:
        """The archived MP3 of a row (from the audio store), if it is there. An archive from before
        the store (a path) that the migration could not import is looked for under this
        controller's archive directory."""
        if not row.archive:
            return None
        if is_sha256(row.archive):
            try:
                return self.store.file(row.archive)
            except AudioStoreError as exc:
                logger.error("live archive of %s: %s", row.id, exc)
                return None
        f = (self.audio_dir / row.archive).resolve()
        if not f.is_relative_to(self.live_dir.resolve()) or not f.is_file():
            return None
        return f

    # ----------------------------------------------------------------- telemetry

    def _on_telemetry(self, node_id: str, msg: p.Telemetry) -> None:
        if msg.source != "live":
            return
        rec = self.records.get(msg.playing)
        if rec is not None and node_id in rec.nodes:
            rec.heard.add(node_id)

    # ----------------------------------------------------------------- sweep

    def start(self) -> None:
        self._sweeper.start()

    async def close(self) -> None:
        """Stop the sweep and wait for the archives being encoded (at shutdown)."""
        await self._sweeper.stop()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def sweep(self) -> int:
        """Delete archives past retention; encode PCM left by a stopped controller. Returns deleted."""
        for pcm in sorted(self.live_dir.glob("*.pcm")) if self.live_dir.is_dir() else []:
            sid = pcm.stem
            if sid not in self.records and sid not in self._encoding:
                logger.warning("live %s: encoding the audio left by an interrupted session", sid)
                self.writer.submit(_ended_if_open(sid))
                await self._finish(sid, pcm, "recovered after a controller stop")
        return await asyncio.to_thread(self._expire)

    def _expire(self) -> int:
        days = self.settings.retention_days
        cutoff = p.now_ms() - days * DAY_MS
        with self.db.session() as s:
            q = select(LiveLog).where(col(LiveLog.archive).is_not(None), col(LiveLog.opened_at) < cutoff)
            rows = [r for r in s.exec(q).all() if (r.ended_at or r.opened_at) < cutoff]
            archives = [r.archive for r in rows if r.archive]
            for r in rows:
                r.archive, r.archive_note = None, f"deleted after {days} days (retention)"
                s.add(r)
            s.commit()
        for a in archives:  # after the commit: no row points at deleted audio
            if is_sha256(a):
                self.store.discard(a)
            else:
                (self.audio_dir / a).unlink(missing_ok=True)
        if rows:
            logger.info("deleted %d live archive(s) older than %d days", len(rows), days)
        return len(rows)
