"""``loaphuong backup`` / ``restore`` (issue 16): a ward populated through the real API (org units,
users, zones, units, bulletins with rendered audio, schedules, a broadcast for tomorrow), backed up
from SQLite, restored into a fresh SQLite file and into a fresh PostgreSQL database: every row of
every table is the same, a controller starts on each and serves the bulletin audio byte for byte,
logs the restored users in and hands out new ids past the restored ones; a non-empty database is
refused unless --force; a damaged archive is refused and leaves nothing."""

from __future__ import annotations

import asyncio
import tarfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import MetaData, create_engine, select

from controller.cli.loaphuong import main as cli
from controller.settings import Settings
from devices.broker import free_port
from tests.conftest import ADMIN, make_settings, running_controller
from tests.e2e.helpers import air, bulletin, provision

pytestmark = [pytest.mark.timeout(240), pytest.mark.postgres]


async def populate(client: httpx.AsyncClient) -> dict[str, Any]:
    # a child whose id sorts before its parent's: restored parents first all the same
    for body in ({"id": "zz-tinh", "name": "Tỉnh mẫu"}, {"id": "aa-phuong", "name": "Phường Đông",
                                                          "parent_id": "zz-tinh"}):
        r = await client.post("/api/org-units", json=body)
        assert r.status_code == 201, r.text
    r = await client.post("/api/users", json={"username": "bientap", "role": "editor",
                                              "org_unit_id": "aa-phuong"})
    assert r.status_code == 201, r.text
    editor = (r.json()["username"], r.json()["password"])
    await provision(client, {"tdp1": ["u-1", "u-2"], "tdp2": ["u-3"]})
    b1 = await bulletin(client, "Thông báo: sáng mai phường tổ chức tiêm phòng tại nhà văn hóa.")
    b2 = await bulletin(client, "Lịch thu gom rác thay đổi từ thứ Hai.", title="Rác")
    tomorrow = datetime.now(tz=UTC) + timedelta(days=1)
    await air(client, b1["id"], {"zones": ["tdp1"]}, air_at=tomorrow.isoformat())
    r = await client.post("/api/schedules", json={"bulletin_id": b2["id"], "target": {"all": True},
                                                  "when": {"kind": "daily", "times": ["06:30"]}})
    assert r.status_code == 201, r.text
    audio = {b["id"]: (await client.get(f"/api/bulletins/{b['id']}/audio")).content for b in (b1, b2)}
    assert all(len(a) > 1000 for a in audio.values())
    return {"audio": audio, "editor": editor}


def dump(url: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table (but alembic's), in primary-key order, compared across databases."""
    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
    try:
        meta = MetaData()
        with engine.connect() as conn:
            meta.reflect(bind=conn)
            return {t.name: [tuple(bytes(v) if isinstance(v, memoryview) else v for v in row)
                             for row in conn.execute(select(t).order_by(*t.primary_key.columns))]
                    for t in meta.sorted_tables if t.name != "alembic_version"}
    finally:
        engine.dispose()


def run(*argv: str) -> int:
    return cli(list(argv))


async def check_controller(settings: Settings, data: dict[str, Any]) -> None:
    async with running_controller(settings) as (_, client):
        for bid, audio in data["audio"].items():
            r = await client.get(f"/api/bulletins/{bid}/audio")
            assert r.status_code == 200 and r.content == audio, bid
        assert {n["id"] for n in (await client.get("/api/nodes")).json()} == {"u-1", "u-2", "u-3"}
        assert len((await client.get("/api/schedules")).json()) == 1
        assert (await client.get("/api/me", auth=data["editor"])).json()["role"] == "editor"
        b = await bulletin(client, "Bản tin mới sau khi khôi phục.")  # a new id past the restored ones
        assert b["id"] > max(data["audio"])
        r = await client.post("/api/zones", json={"id": "tdp9", "name": "Tổ 9"})
        assert r.status_code == 201, r.text


async def test_backup_restore_sqlite_and_postgresql(tmp_path: Path, pg_url: str,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    src = make_settings(tmp_path / "src", free_port())  # no broker: nothing here needs one
    async with running_controller(src) as (_, client):
        data = await populate(client)
    archive = tmp_path / "ward.tar.gz"
    assert await asyncio.to_thread(run, "backup", str(archive), "--data-dir", str(src.data_dir)) == 0
    before = dump(src.db_url)
    assert all(before[t] for t in ("orgunit", "user", "node", "zone", "bulletin", "schedule", "delivery"))
    with tarfile.open(archive) as tar:
        names = tar.getnames()
    assert names[0] == "manifest.json" and "tables/bulletin.jsonl" in names

    lite = make_settings(tmp_path / "lite", free_port())
    assert await asyncio.to_thread(run, "restore", str(archive), "--data-dir", str(lite.data_dir)) == 0
    pg = make_settings(tmp_path / "pg", free_port()).model_copy(update={"database_url": pg_url})
    assert await asyncio.to_thread(run, "restore", str(archive), "--data-dir", str(pg.data_dir),
                                   "--database-url", pg_url) == 0
    assert dump(lite.db_url) == before
    assert dump(pg_url) == before  # the same rows, from SQLite into PostgreSQL
    assert "audio/" not in " ".join(names) and "tables/audiochunk.jsonl" in names
    for settings in (lite, pg):
        # the audio came back as audio store rows (audioblob/audiochunk): no file until a read caches it
        assert list(settings.audio_dir.rglob("*.mp3")) == []
        await check_controller(settings, data)  # ... and each bulletin's audio is served byte for byte

    capsys.readouterr()
    assert await asyncio.to_thread(run, "restore", str(archive), "--database-url", pg_url,
                                   "--data-dir", str(pg.data_dir)) == 2  # it holds data now
    err = capsys.readouterr().err
    assert "[not_empty]" in err and "Cơ sở dữ liệu đích không trống" in err and "not empty" in err
    assert await asyncio.to_thread(run, "restore", str(archive), "--database-url", pg_url,
                                   "--data-dir", str(pg.data_dir), "--force") == 0
    assert dump(pg_url) == before  # what the controller added is gone, the archive's rows are back


async def test_damaged_archive_refused_and_nothing_left(tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    src = make_settings(tmp_path / "src", free_port())
    async with running_controller(src):
        pass
    good = tmp_path / "good.tar.gz"
    assert await asyncio.to_thread(run, "backup", str(good), "--data-dir", str(src.data_dir)) == 0
    cut = tmp_path / "cut.tar.gz"  # the user table's rows lost: the counts in the manifest tell
    with tarfile.open(good) as tin, tarfile.open(cut, "w:gz") as tout:
        for m in tin.getmembers():
            f = tin.extractfile(m)
            if m.name == "tables/user.jsonl":
                m.size = 0
                tout.addfile(m)
            else:
                tout.addfile(m, f)
    dst = tmp_path / "dst"
    capsys.readouterr()
    assert await asyncio.to_thread(run, "restore", str(cut), "--data-dir", str(dst)) == 2
    assert "[backup_truncated]" in capsys.readouterr().err
    assert dump(f"sqlite:///{dst / 'loaphuong.db'}") == {}  # no table: as empty as it was
    (tmp_path / "junk.tar.gz").write_bytes(b"not an archive")
    assert await asyncio.to_thread(run, "restore", str(tmp_path / "junk.tar.gz"), "--data-dir", str(dst)) == 2
    assert "[not_a_backup]" in capsys.readouterr().err
    assert await asyncio.to_thread(run, "restore", str(good), "--data-dir", str(dst)) == 0  # still empty: ok
    assert dump(f"sqlite:///{dst / 'loaphuong.db'}")["user"][0][1] == ADMIN[0]
