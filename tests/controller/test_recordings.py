"""Recorded-audio bulletins over the HTTP API: accepted formats become node audio; oversize,
corrupt and non-audio uploads are refused with a clear message and write nothing."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlmodel import func, select

from controller.bulletins.models import AudioAsset, Bulletin
from devices.broker import free_port
from tests.conftest import make_settings, running_controller
from tests.tts.test_recording import make_audio

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[tuple[Any, httpx.AsyncClient]]:
    settings = make_settings(tmp_path / "data", free_port())
    settings.tts.upload_max_mb = 1
    async with running_controller(settings) as pair:
        yield pair


def counts(app: Any) -> tuple[int, int, list[Path]]:
    sv = app.state.services
    with sv.db.session() as s:
        n_b = s.exec(select(func.count()).select_from(Bulletin)).one()
        n_a = s.exec(select(func.count()).select_from(AudioAsset)).one()
    return n_b, n_a, sorted(p for p in sv.settings.audio_dir.rglob("*") if p.is_file())


async def test_upload_becomes_a_previewable_bulletin(api: tuple[Any, httpx.AsyncClient],
                                                     tmp_path: Path) -> None:
    _, client = api
    data = make_audio(tmp_path, "m4a", seconds=3)
    r = await client.post("/api/bulletins/recordings", files={"file": ("họp tổ.m4a", data, "audio/mp4")},
                          data={"text": "Mời họp tổ dân phố", "priority": "priority"})
    assert r.status_code == 201, r.text
    b = r.json()
    assert b["title"] == "họp tổ.m4a" and b["text"] == "Mời họp tổ dân phố" and b["priority"] == "priority"
    assert b["voice"] == "recording" and b["audio"]["engine"] == "recording" and b["audio"]["codec"] == "mp3"
    assert abs(b["audio"]["duration_ms"] - 3400) < 150
    audio = await client.get(b["audio"]["url"])
    assert audio.status_code == 200 and audio.headers["content-type"] == "audio/mpeg"
    assert hashlib.sha256(audio.content).hexdigest() == b["audio"]["sha256"]
    assert (await client.get(f"/api/bulletins/{b['id']}")).json()["audio"] == b["audio"]


async def test_bad_uploads_are_refused_and_write_nothing(api: tuple[Any, httpx.AsyncClient],
                                                         tmp_path: Path) -> None:
    app, client = api
    wav = make_audio(tmp_path, "wav", seconds=2)
    big = make_audio(tmp_path, "wav", seconds=20)  # 20 s stereo 44.1 kHz WAV: 3.5 MB > 1 MB
    cases: list[tuple[dict[str, Any], dict[str, str], int, str]] = [
        ({"file": ("a.pdf", b"%PDF-1.7 " + b"x" * 500, "application/pdf")}, {}, 422,
         "a.pdf: this is not an audio file we accept"),
        ({"file": ("broken.wav", wav[:60], "audio/wav")}, {}, 422, "broken.wav: the file is damaged"),
        ({"file": ("empty.mp3", b"", "audio/mpeg")}, {}, 422, "empty.mp3: the file is empty"),
        ({"file": ("big.wav", big, "audio/wav")}, {}, 413, "larger than the limit of 1 MB"),
        ({"file": ("ok.wav", wav, "audio/wav")}, {"priority": "urgent"}, 422, "priority must be one of"),
    ]
    before = counts(app)
    for files, form, code, needle in cases:
        r = await client.post("/api/bulletins/recordings", files=files, data=form)
        assert r.status_code == code, (files["file"][0], r.text)
        assert needle in r.json()["detail"], r.text
    r = await client.post("/api/bulletins/recordings", data={"title": "no file"})
    assert r.status_code == 422
    r = await client.post("/api/bulletins/recordings", files={"file": ("ok.wav", wav, "audio/wav")},
                          auth=httpx.BasicAuth("admin", "wrong"))
    assert r.status_code == 401
    assert counts(app) == before
