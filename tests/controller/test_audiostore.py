"""The audio store (controller/core/audiostore.py) on SQLite and PostgreSQL: written once, read
through a local cache by any controller on the database, bad bytes refused, damage noticed."""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, update
from sqlmodel import select

from controller.api.error_codes import code_for
from controller.bulletins.models import AudioAsset
from controller.bulletins.render import store_audio
from controller.core.audiostore import (
    CHUNK_BYTES,
    AudioCorrupt,
    AudioMismatch,
    AudioMissing,
    DbAudioStore,
    LabelTaken,
    digest,
)
from controller.core.db import Database
from controller.core.errors import ServiceError
from controller.core.models import AudioBlob, AudioChunk
from controller.fleet.models import Zone


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    sqlite = f"sqlite:///{tmp_path / 'store.db'}"
    url = sqlite if request.param == "sqlite" else request.getfixturevalue("pg_url")
    database = Database(url)
    database.migrate()
    yield database
    database.dispose()


def rows(db: Database) -> tuple[int, int]:
    with db.session() as s:
        return (s.exec(select(func.count()).select_from(AudioBlob)).one(),
                s.exec(select(func.count()).select_from(AudioChunk)).one())


def test_written_once_in_chunks_and_read_by_another_controller_through_its_cache(
        db: Database, tmp_path: Path) -> None:
    data = os.urandom(2 * CHUNK_BYTES + 1000)  # three chunks
    sha = digest(data)
    a = DbAudioStore(db, tmp_path / "a")
    stored = a.put(data, sha256=sha, codec="mp3", duration_ms=42_000)
    assert stored.size == len(data) and a.has(sha) and rows(db) == (1, 3)
    assert a.put(data, sha256=sha, codec="mp3", duration_ms=42_000) == stored  # again: nothing new
    assert DbAudioStore(db, tmp_path / "a2").put(data, sha256=sha, codec="mp3", duration_ms=42_000) == stored
    assert rows(db) == (1, 3) and a.stats["puts"] == 1
    assert (tmp_path / "a" / sha[:2] / f"{sha}.mp3").read_bytes() == data  # the writer's cache
    assert a.get(sha) == data and a.stats == {"cache_hits": 1, "db_reads": 0, "puts": 1}

    b = DbAudioStore(db, tmp_path / "b")  # another controller: nothing on its disk
    assert not (tmp_path / "b").exists() and b.has(sha)
    assert b.get(sha) == data and b.stats["db_reads"] == 1
    assert b.get(sha) == data and b.file(sha).read_bytes() == data
    assert b.stats == {"cache_hits": 1, "db_reads": 1, "puts": 0}  # the database once, then the cache
    info = b.info(sha)
    assert info is not None and (info.codec, info.duration_ms, info.size) == ("mp3", 42_000, len(data))


def test_bytes_that_do_not_match_their_sha256_are_refused(db: Database, tmp_path: Path) -> None:
    store = DbAudioStore(db, tmp_path / "c")
    claimed = hashlib.sha256(b"the audio that was approved").hexdigest()
    with pytest.raises(AudioMismatch) as err:
        store.put(b"other bytes", sha256=claimed, codec="mp3", duration_ms=1000)
    assert str(err.value) == (f"audio refused: its bytes hash to sha256 {digest(b'other bytes')}, "
                              f"not the claimed {claimed}")
    assert not store.has(claimed) and rows(db) == (0, 0) and not (tmp_path / "c").exists()


def test_missing_audio_and_damage_are_told_apart(db: Database, tmp_path: Path) -> None:
    data = os.urandom(5000)
    sha = digest(data)
    store = DbAudioStore(db, tmp_path / "d")
    with pytest.raises(AudioMissing, match="not in the audio store"):
        store.get(sha)
    with pytest.raises(AudioMissing):
        store.file(sha)
    store.put(data, sha256=sha, codec="opus", duration_ms=1000)
    cached = tmp_path / "d" / sha[:2] / f"{sha}.opus"
    cached.write_bytes(b"garbage on a bad disk")
    assert store.get(sha) == data and cached.read_bytes() == data  # read again from the database, re-cached
    with db.session() as s:  # the database's copy damaged
        s.exec(update(AudioChunk).where(AudioChunk.sha256 == sha).values(data=b"x"))  # type: ignore[call-overload,arg-type]
        s.commit()
    with pytest.raises(AudioCorrupt, match="does not match its checksum"):
        DbAudioStore(db, tmp_path / "e").get(sha)


def test_a_put_in_the_callers_transaction_commits_or_rolls_back_with_it(db: Database, tmp_path: Path) -> None:
    store = DbAudioStore(db, tmp_path / "f")
    kept, dropped = os.urandom(3000), os.urandom(3000)
    with db.session() as s:
        s.add(Zone(id="z", name="z"))
        s.flush()  # the caller holds the write lock (SQLite): the put must not wait for another connection
        store.put(dropped, sha256=digest(dropped), codec="mp3", duration_ms=10, session=s)
        s.rollback()
    with db.session() as s:
        s.add(Zone(id="z2", name="z2"))
        s.flush()
        store.put(kept, sha256=digest(kept), codec="mp3", duration_ms=10, session=s)
        s.commit()
    assert not DbAudioStore(db, tmp_path / "g").has(digest(dropped))
    assert DbAudioStore(db, tmp_path / "h").get(digest(kept)) == kept


def test_controllers_racing_to_store_the_same_audio_all_succeed(db: Database, tmp_path: Path) -> None:
    data = os.urandom(CHUNK_BYTES + 10)
    sha = digest(data)
    stores = [DbAudioStore(db, tmp_path / f"r{i}") for i in range(4)]
    start, errors = threading.Barrier(len(stores)), []

    def put(store: DbAudioStore) -> None:
        start.wait()
        try:
            store.put(data, sha256=sha, codec="mp3", duration_ms=1)
        except Exception as exc:  # noqa: BLE001  (recorded, asserted below)
            errors.append(exc)

    threads = [threading.Thread(target=put, args=(st,)) for st in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert errors == [] and rows(db) == (1, 2)
    assert all(st.get(sha) == data for st in stores)


def test_a_label_names_one_blob_and_a_second_claim_is_refused(db: Database, tmp_path: Path) -> None:
    first, second = b"tone of controller A", b"tone of controller B"
    a, b = DbAudioStore(db, tmp_path / "a"), DbAudioStore(db, tmp_path / "b")
    a.put(first, sha256=digest(first), codec="mp3", duration_ms=1000, label="attention-tone")
    with pytest.raises(LabelTaken):
        b.put(second, sha256=digest(second), codec="mp3", duration_ms=1000, label="attention-tone")
    found = b.labelled("attention-tone")
    assert found is not None and found.sha256 == digest(first) and not b.has(digest(second))
    assert b.labelled("nothing") is None


def test_discard_removes_rows_and_cache(db: Database, tmp_path: Path) -> None:
    data = os.urandom(100)
    sha = digest(data)
    store = DbAudioStore(db, tmp_path / "x")
    path = store.file(sha) if store.put(data, sha256=sha, codec="mp3", duration_ms=1) else None
    assert path is not None and path.is_file()
    store.discard(sha)
    assert not path.exists() and not store.has(sha) and rows(db) == (0, 0)


def test_a_bulletin_writer_offering_mismatched_bytes_gets_a_coded_422(db: Database, tmp_path: Path) -> None:
    store = DbAudioStore(db, tmp_path / "w")
    with db.session() as s, pytest.raises(ServiceError) as err:
        store_audio(s, store, data=b"bytes", sha256=digest(b"other"), codec="mp3", duration_ms=1,
                    sample_rate=22050, bitrate_kbps=32, engine="test", voice="test")
    assert err.value.status == 422 and code_for(err.value.message) == "audio_mismatch"
    assert code_for(str(AudioMissing("a" * 64))) == "audio_missing"
    with db.session() as s:
        assert s.exec(select(func.count()).select_from(AudioAsset)).one() == 0 and rows(db) == (0, 0)
