"""Migration 0013 on SQLite and PostgreSQL: the audio files of a data directory from before the
audio store are imported (bulletin audio, live archives, the attention tone); a missing or damaged
file is logged and skipped, not fatal; importing again changes nothing; and another controller's
start puts in the files only it had (controller/bulletins/audio_import.py)."""

from __future__ import annotations

import importlib.util
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
from alembic import command
from sqlalchemy import func
from sqlmodel import select

from controller.bulletins.audio_import import import_local_audio
from controller.bulletins.models import AudioAsset
from controller.core.audiostore import DbAudioStore, digest
from controller.core.db import MIGRATIONS, Database, alembic_config
from controller.core.models import AudioBlob
from controller.fleet.attention import TONE_FILE, TONE_LABEL
from controller.live.models import LiveLog


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    sqlite = f"sqlite:///{tmp_path / 'old.db'}"
    url = sqlite if request.param == "sqlite" else request.getfixturevalue("pg_url")
    database = Database(url)
    yield database
    database.dispose()


def upgrade_to(db: Database, revision: str, data_dir: Path | None = None) -> None:
    cfg = alembic_config(db.url)
    if data_dir is not None:
        cfg.attributes["data_dir"] = data_dir
    with db.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)


def migration() -> ModuleType:
    spec = importlib.util.spec_from_file_location("m0013", MIGRATIONS / "versions" / "0013_audio_store.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def asset(sha: str, path: str) -> AudioAsset:
    return AudioAsset(sha256=sha, size=1, duration_ms=1500, codec="mp3", sample_rate=22050, bitrate_kbps=32,
                      engine="espeak", voice="vi", path=path)


def old_data_dir(db: Database, data_dir: Path) -> dict[str, bytes]:
    """A 0012 database and its data directory as a controller left them before the store."""
    upgrade_to(db, "0012")
    audio = data_dir / "audio"
    files = {name: os.urandom(4000) for name in ("good", "missing", "damaged", "live", "tone")}
    good, missing, damaged = (digest(files[n]) for n in ("good", "missing", "damaged"))
    (audio / good[:2]).mkdir(parents=True)
    (audio / good[:2] / f"{good}.mp3").write_bytes(files["good"])
    (audio / damaged[:2]).mkdir(parents=True, exist_ok=True)
    (audio / damaged[:2] / f"{damaged}.mp3").write_bytes(b"truncated")
    (audio / "live" / "2026-11").mkdir(parents=True)
    (audio / "live" / "2026-11" / "live-1.mp3").write_bytes(files["live"])
    (data_dir / TONE_FILE).write_bytes(files["tone"])
    with db.session() as s:
        for sha in (good, missing, damaged):
            s.add(asset(sha, f"{sha[:2]}/{sha}.mp3"))
        s.add(LiveLog(id="live-1", archive="live/2026-11/live-1.mp3", archive_duration_ms=900))
        s.add(LiveLog(id="live-gone", archive="live/2026-11/live-gone.mp3"))
        s.commit()
    return files


def test_the_upgrade_imports_the_files_and_skips_missing_or_damaged_ones(
        db: Database, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    files = old_data_dir(db, tmp_path / "data")
    caplog.set_level(logging.WARNING)
    upgrade_to(db, "head", tmp_path / "data")
    store = DbAudioStore(db, tmp_path / "elsewhere")  # another controller: reads the database only
    assert store.get(digest(files["good"])) == files["good"]
    assert not store.has(digest(files["missing"])) and not store.has(digest(files["damaged"]))
    messages = " ".join(r.getMessage() for r in caplog.records)
    assert "not imported" in messages and "live-gone.mp3" in messages and "hashes to" in messages
    with db.session() as s:
        live, gone = s.get(LiveLog, "live-1"), s.get(LiveLog, "live-gone")
        assert live is not None and live.archive == digest(files["live"])
        assert gone is not None and gone.archive == "live/2026-11/live-gone.mp3"  # left as it was
        tone = s.exec(select(AudioBlob).where(AudioBlob.label == TONE_LABEL)).one()
        assert tone.sha256 == digest(files["tone"])
        blobs = s.exec(select(func.count()).select_from(AudioBlob)).one()
    assert blobs == 3 and store.get(digest(files["live"])) == files["live"]
    with db.engine.begin() as conn:  # importing again: nothing new
        assert migration().import_files(conn, tmp_path / "data") == 0
    with db.session() as s:
        assert s.exec(select(func.count()).select_from(AudioBlob)).one() == 3


def test_a_database_migrated_without_files_gets_them_when_their_controller_starts(
        db: Database, tmp_path: Path) -> None:
    files = old_data_dir(db, tmp_path / "b")  # controller B rendered these before the upgrade
    upgrade_to(db, "head")  # controller A migrated: it had none of them
    store = DbAudioStore(db, tmp_path / "b" / "audio")
    assert not store.has(digest(files["good"]))
    assert import_local_audio(db, store, tmp_path / "b" / "audio") == 1  # good; missing/damaged skipped
    assert import_local_audio(db, store, tmp_path / "b" / "audio") == 0
    assert DbAudioStore(db, tmp_path / "c").get(digest(files["good"])) == files["good"]
