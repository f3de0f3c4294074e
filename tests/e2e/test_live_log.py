"""Live sessions leave a record: the broadcast log row (who, when, where, how long, which units
played it, why it ended) and the archived MP3 of exactly what the units got; a ward sees only its
own sessions; old archives are swept. Real broker, real database, real ffmpeg."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path
from typing import IO, Any

import httpx
import pytest

from controller.core.db import Database
from controller.live.models import LiveLog
from controller.live.session import pcm_rms
from controller.live.settings import LiveSettings
from devices.broker import BrokerProcess
from tests.conftest import ADMIN, make_settings
from tests.e2e.helpers import provision, sim, wait_for, wait_online
from tests.e2e.serve import next_msg, phone, serving, talk
from tts.audio import ffmpeg_path

pytestmark = [pytest.mark.broker, pytest.mark.timeout(120)]


async def logged(client: httpx.AsyncClient, sid: str, timeout: float = 15) -> dict[str, Any]:
    """The session's row once it is ended and its archive settled (not encoding any more)."""
    row: dict[str, Any] = {}

    async def done() -> bool:
        nonlocal row
        r = await client.get(f"/api/live/sessions/{sid}")
        row = r.json() if r.status_code == 200 else {}
        return row.get("state") == "ended" and row.get("archive_note") != "encoding"

    await wait_for(done, timeout, f"live session {sid} logged", every=0.2)
    return row


def decoded(mp3: bytes) -> bytes:
    """MP3 → PCM s16le 16 kHz mono (ffmpeg)."""
    proc = subprocess.run([ffmpeg_path(), "-hide_banner", "-loglevel", "error", "-i", "pipe:0",
                           "-f", "s16le", "-ac", "1", "-ar", "16000", "pipe:1"],
                          input=mp3, capture_output=True, check=True, timeout=30)
    return proc.stdout


@pytest.mark.both_databases
async def test_live_session_is_logged_archived_scoped_and_swept(mosquitto: BrokerProcess,
                                                                tmp_path: Path) -> None:
    async with serving(make_settings(tmp_path, mosquitto.port)) as (app, addr):
        async with httpx.AsyncClient(base_url=f"http://{addr}", auth=ADMIN, timeout=30) as client:
            for org, parent in (("hn", None), ("wa", "hn"), ("wb", "hn")):
                r = await client.post("/api/org-units", json={"id": org, "name": org, "parent_id": parent})
                assert r.status_code == 201, r.text
            r = await client.post("/api/zones", json={"id": "z", "name": "Tổ 1", "org_unit_id": "wa"})
            assert r.status_code == 201, r.text
            for n in ("g-1", "g-2"):
                assert (await client.post("/api/nodes", json={"id": n, "zones": ["z"]})).status_code == 201
            nodes = {n: sim(n, mosquitto.port) for n in ("g-1", "g-2")}
            await asyncio.gather(*(n.start() for n in nodes.values()))
            try:
                await wait_online(client, list(nodes))
                # 1. ~2 s of a 440 Hz tone, then stop
                ws = await phone(addr, ADMIN, {"zones": ["z"]})
                sid = (await next_msg(ws, "state", state="live"))["session"]
                await talk(ws, 2000)
                await wait_for(lambda: all(n.live.active == sid for n in nodes.values()), 5, "units live")
                await talk(ws, 200)
                await ws.send('{"type": "stop"}')
                assert (await next_msg(ws, "state", state="ended"))["reason"] == "stopped"
                await ws.close()
                row = await logged(client, sid)
                assert row["user"] == "admin" and row["target"]["zones"] == ["z"]
                assert row["priority"] == "normal"
                assert sorted(row["nodes"]) == ["g-1", "g-2"] and row["reason"] == "stopped"
                assert row["opened_at"] <= row["started_at"] < row["ended_at"] and row["frames"] > 50
                assert set(row["units_heard"]) == {"g-1", "g-2"}, row
                assert row["bytes_in"] >= 2200 * 32 - 640 and row["archive_note"] == "", row
                audio = await client.get(row["audio"])
                assert audio.status_code == 200 and audio.headers["content-type"] == "audio/mpeg"
                pcm = decoded(audio.content)
                seconds = len(pcm) / 32000
                assert abs(seconds - 2.2) <= 0.5, seconds  # ≈ what was sent (2 s + 0.2 s)
                assert abs(row["archive_duration_ms"] / 1000 - 2.2) <= 0.1, row
                assert pcm_rms(pcm) > 3000  # the tone (amplitude 8000: RMS 5657), not silence
                store = app.state.services.audio  # the archive is in the audio store, cached here
                assert store.has(row["archive"]) and not list(Path(tmp_path, "audio", "live").glob("*.pcm"))
                archive = store.file(row["archive"])
                listing = (await client.get("/api/live/sessions", params={"user": "admin"})).json()
                assert [i["id"] for i in listing["items"]] == [sid]

                # 2. the phone's network drops: "disconnected", and still an archive
                ws = await phone(addr, ADMIN, {"zones": ["z"]})
                dropped = (await next_msg(ws, "state", state="live"))["session"]
                await talk(ws, 600)
                ws.transport.abort()
                row2 = await logged(client, dropped)
                assert row2["reason"] == "disconnected" and row2["audio"], row2
                assert abs(row2["archive_duration_ms"] - 600) <= 120, row2
                listing = (await client.get("/api/live/sessions", params={"limit": 1})).json()
                assert [i["id"] for i in listing["items"]] == [dropped] and listing["next_offset"] == 1

                # 3. a ward-B operator neither lists, sees nor downloads ward A's sessions
                r = await client.post("/api/users", json={"username": "opb", "role": "operator",
                                                          "org_unit_id": "wb"})
                assert r.status_code == 201, r.text
                async with httpx.AsyncClient(base_url=f"http://{addr}", auth=("opb", r.json()["password"]),
                                             timeout=30) as b:
                    assert (await b.get("/api/live/sessions")).json()["items"] == []
                    assert (await b.get(f"/api/live/sessions/{sid}")).status_code == 403
                    assert (await b.get(f"/api/live/sessions/{sid}/audio")).status_code == 403
                r = await client.post("/api/users", json={"username": "opa", "role": "operator",
                                                          "org_unit_id": "wa"})
                async with httpx.AsyncClient(base_url=f"http://{addr}", auth=("opa", r.json()["password"]),
                                             timeout=30) as a:
                    assert len((await a.get("/api/live/sessions")).json()["items"]) == 2
                    assert (await a.get(f"/api/live/sessions/{sid}/audio")).status_code == 200

                # 4. retention: an archive older than 90 days is deleted, the row stays
                sid_archive = row["archive"]
                sv = app.state.services
                with sv.db.session() as s:
                    old = s.get(LiveLog, sid)
                    assert old is not None and old.ended_at is not None
                    old.opened_at -= 91 * 86_400_000
                    old.ended_at -= 91 * 86_400_000
                    s.add(old)
                    s.commit()
                assert await app.state.services.live_recorder.sweep() == 1
                assert not archive.exists() and not store.has(sid_archive)
                row = (await client.get(f"/api/live/sessions/{sid}")).json()
                assert row["archive"] is None and "90 days" in row["archive_note"] and row["frames"] > 50
                r = await client.get(f"/api/live/sessions/{sid}/audio")
                assert r.status_code == 404 and "not archived" in r.json()["detail"]
                assert (await client.get(f"/api/live/sessions/{dropped}/audio")).status_code == 200
            finally:
                await asyncio.gather(*(n.stop() for n in nodes.values()))


async def test_archiving_off_still_logs(mosquitto: BrokerProcess, tmp_path: Path) -> None:
    settings = make_settings(tmp_path, mosquitto.port)
    settings.live = LiveSettings(archive=False)  # type: ignore[call-arg]
    async with serving(settings) as (_, addr):
        async with httpx.AsyncClient(base_url=f"http://{addr}", auth=ADMIN, timeout=30) as client:
            await provision(client, {"z": ["o-1"]})
            node = sim("o-1", mosquitto.port)
            await node.start()
            try:
                await wait_online(client, ["o-1"])
                ws = await phone(addr, ADMIN, {"zones": ["z"]})
                sid = (await next_msg(ws, "state", state="live"))["session"]
                await talk(ws, 500)
                await ws.send('{"type": "stop"}')
                await next_msg(ws, "state", state="ended")
                await ws.close()
                row = await logged(client, sid)
                assert row["reason"] == "stopped" and row["frames"] > 5 and row["archive"] is None
                assert row["archive_note"] == "archiving off" and row["audio"] is None
                r = await client.get(f"/api/live/sessions/{sid}/audio")
                assert r.status_code == 404 and "archiving off" in r.json()["detail"]
                live_dir = tmp_path / "audio" / "live"
                assert not live_dir.exists() or not any(live_dir.rglob("*"))
                # the controller stops while someone speaks: the session ends "shutdown", recorded
                ws = await phone(addr, ADMIN, {"zones": ["z"]})
                last = (await next_msg(ws, "state", state="live"))["session"]
                await talk(ws, 300)
            finally:
                await node.stop()
    db = Database(settings.db_url)
    with db.session() as s:
        row = s.get(LiveLog, last)
    db.dispose()
    assert row is not None and row.state == "ended" and row.reason == "shutdown", row


def disk_full() -> IO[bytes]:
    """A file on a disk with no space left: every write fails with ENOSPC."""
    return Path("/dev/full").open("wb", buffering=0)


async def test_archive_cap_disk_full_and_failed_encoding_leave_the_voice_alone(tmp_path: Path) -> None:
    """The recorder on its own (real database, writer and ffmpeg; no broker): beyond the cap the
    archive stops and says so; a full disk (/dev/full) and an encoding that fails are recorded as
    "archive failed: …" while every frame still goes through."""
    from controller.core.audiostore import DbAudioStore
    from controller.core.writer import DbWriter
    from controller.live.log import LiveRecorder
    from controller.live.session import LiveSession
    from devices import protocol as p
    from devices.link import ControllerLink
    from devices.mqtt import BrokerAddress
    from tests.e2e.serve import tone

    db = Database(f"sqlite:///{tmp_path / 'r.db'}")
    db.migrate()
    writer = DbWriter(db, interval=0.05)
    link = ControllerLink(BrokerAddress(port=1))  # never started: only its telemetry hook is used
    store = DbAudioStore(db, tmp_path / "audio")
    rec = LiveRecorder(db, writer, link, LiveSettings.model_construct(  # a 0.6 s cap, below the 1 min minimum
        archive=True, retention_days=90, archive_max_minutes=0.01, bitrate_kbps=32, sweep_s=3600.0),
        tmp_path / "audio", store)

    def session(sid: str) -> LiveSession:
        return LiveSession(sid, "admin", p.Priority.NORMAL, ["n1"], [], lambda _: None,
                           target={"zones": ["z"]})

    async def run(s: LiveSession, pcm: bytes, reason: str = "stopped") -> LiveLog:
        if s.id not in rec.records:
            rec.on_open(s)
        s.state = "live"
        rec.on_live(s)
        for i in range(0, len(pcm), 1280):
            rec.on_frame(s, pcm[i:i + 1280])
            s.stats.frames_out += 1
        s.state, s.reason = "ended", reason
        rec.on_end(s)
        await asyncio.gather(*rec._tasks)
        await writer.flush()
        with db.session() as dbs:
            row = dbs.get(LiveLog, s.id)
            assert row is not None
            return row

    capped = await run(session("live-cap"), tone(2000))
    assert capped.frames == 50 and capped.archive_duration_ms == 600, capped
    assert capped.archive_note == "archive capped at 0.01 min" and capped.archive is not None
    assert store.has(capped.archive) and store.get(capped.archive)[:2] == b"\xff\xf3"  # an MPEG-2 frame
    assert not list((tmp_path / "audio" / "live").rglob("*.mp3"))  # in the store (and its cache), not beside

    s = session("live-full")
    rec.on_open(s)
    rec.records[s.id].file = disk_full()
    full = await run(s, tone(400))
    assert full.archive is None and full.archive_note.startswith("archive failed:"), full
    assert "No space left" in full.archive_note and full.frames == 10

    s = session("live-badenc")
    rec.on_open(s)
    rec.audio_dir = tmp_path / "not-a-dir"
    rec.audio_dir.write_text("a file where the archive directory should be")
    bad = await run(s, tone(400))
    assert bad.archive is None and bad.archive_note.startswith("archive failed:"), bad
    assert not list((tmp_path / "audio" / "live").glob("*.pcm"))

    # a controller stopped mid-session left its PCM: the next sweep archives it and closes the row
    rec.audio_dir = tmp_path / "audio"
    s = session("live-crash")
    rec.on_open(s)
    rec.on_frame(s, tone(1000))
    rec._close(rec.records.pop(s.id))  # the process "dies" here: no on_end
    assert await rec.sweep() == 0
    await writer.flush()
    with db.session() as dbs:
        crashed = dbs.get(LiveLog, "live-crash")
    assert crashed is not None and crashed.reason == "controller stopped" and crashed.archive, crashed
    assert crashed.archive_duration_ms == 600 and crashed.archive_note == "recovered after a controller stop"
    assert not list((tmp_path / "audio" / "live").glob("*.pcm"))
    db.dispose()
