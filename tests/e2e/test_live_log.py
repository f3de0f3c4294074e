"""Live sessions leave a record: the broadcast log row (who, when, where, how long, which units
played it, why it ended) and the archived MP3 of exactly what the units got; a ward sees only its
own sessions; old archives are swept. Real broker, real database, real ffmpeg."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest

from controller.live import pcm_rms
from controller.models import LiveLog
from controller.settings import LiveSettings
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
                archive = Path(tmp_path, "audio", row["archive"])
                assert archive.is_file() and not list(archive.parent.parent.glob("*.pcm"))
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
                sv = app.state.services
                with sv.db.session() as s:
                    old = s.get(LiveLog, sid)
                    assert old is not None and old.ended_at is not None
                    old.opened_at -= 91 * 86_400_000
                    old.ended_at -= 91 * 86_400_000
                    s.add(old)
                    s.commit()
                assert await app.state.live_recorder.sweep() == 1
                assert not archive.exists()
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
            finally:
                await node.stop()
