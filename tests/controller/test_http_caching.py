"""The web app on a slow phone link (issue 14): static files carry a Cache-Control and revalidate
with their ETag (304), text answers are gzip-compressed when the client accepts it, and audio
downloads and the delivery event stream are sent as they are (and still work)."""

from __future__ import annotations

import gzip
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from controller.airing.broadcasts import create_broadcast
from controller.airing.models import Broadcast
from devices.broker import free_port
from tests.conftest import make_settings, running_controller
from tests.controller.test_delivery_fake import AUDIO, seed

pytestmark = pytest.mark.timeout(120)

GZ = {"Accept-Encoding": "gzip"}


@pytest.fixture
async def ward(tmp_path: Path) -> AsyncIterator[tuple[httpx.AsyncClient, int, str]]:
    async with running_controller(make_settings(tmp_path, free_port())) as (app, client):
        sv = app.state.services
        bulletin = seed(sv.db, tmp_path / "audio", {f"n{i}": "z" for i in range(1, 6)})
        with sv.db.session() as s:
            bc = create_broadcast(s, bulletin_id=bulletin, all_nodes=False, zones=["z"], nodes=[],
                                  priority=None, air_at=None, valid_s=3600, repeat=1, created_by="test")
            done = s.get(Broadcast, bc.id)
            assert done is not None
            done.status = "done"  # finished: its event stream sends the state once and ends
            s.add(done)
            s.commit()
            yield client, bulletin, bc.id


async def _get_raw(client: httpx.AsyncClient, url: str, **headers: Any) -> tuple[httpx.Response, bytes]:
    """The answer and its body as it came over the wire (httpx would decode gzip)."""
    async with client.stream("GET", url, headers=headers) as r:
        return r, b"".join([chunk async for chunk in r.aiter_raw()])


@pytest.mark.parametrize("path", ["/app.css", "/app.js"])
async def test_static_assets_are_gzipped_cached_and_revalidated(ward: tuple[httpx.AsyncClient, int, str],
                                                               path: str) -> None:
    client = ward[0]
    r, raw = await _get_raw(client, path, **GZ)
    assert r.status_code == 200
    assert r.headers["content-encoding"] == "gzip" and "accept-encoding" in r.headers["vary"].lower()
    plain = (Path(__file__).resolve().parents[2] / "controller/static" / path[1:]).read_bytes()
    assert gzip.decompress(raw) == plain and len(raw) < len(plain) / 2
    assert r.headers["cache-control"] == "max-age=300"
    etag = r.headers["etag"]
    assert r.headers["last-modified"]
    again = await client.get(path, headers={**GZ, "If-None-Match": etag})
    assert again.status_code == 304 and again.content == b""
    assert again.headers["cache-control"] == "max-age=300"
    # a client that does not accept gzip gets the file as it is
    ident, raw = await _get_raw(client, path, **{"Accept-Encoding": "identity"})
    assert "content-encoding" not in ident.headers and raw == plain


Ward = tuple[httpx.AsyncClient, int, str]


async def test_html_and_json_are_gzipped_small_answers_are_not(ward: Ward) -> None:
    client = ward[0]
    r, raw = await _get_raw(client, "/live.html", **GZ)
    assert r.status_code == 200 and r.headers["content-encoding"] == "gzip"
    assert r.headers["cache-control"] == "no-cache"  # a page: always revalidated
    assert "<html" in gzip.decompress(raw).decode()
    page, raw = await _get_raw(client, "/login", **GZ)  # a page the templates render
    assert page.status_code == 200 and page.headers["content-encoding"] == "gzip", page.headers
    assert b"</html>" in gzip.decompress(raw)
    nodes, raw = await _get_raw(client, "/api/nodes", **GZ)
    assert nodes.status_code == 200 and nodes.headers["content-encoding"] == "gzip"
    assert [n["id"] for n in json.loads(gzip.decompress(raw))] == [f"n{i}" for i in range(1, 6)]
    small, raw = await _get_raw(client, "/api/no-such-thing", **GZ)  # under 500 bytes: sent as it is
    assert small.status_code == 404 and "content-encoding" not in small.headers
    assert "detail" in json.loads(raw) and len(raw) < 500


async def test_audio_and_the_event_stream_are_not_compressed(ward: Ward) -> None:
    client, bulletin, bid = ward
    r, raw = await _get_raw(client, f"/api/bulletins/{bulletin}/audio", **GZ)
    assert r.status_code == 200 and r.headers["content-type"] == "audio/mpeg"
    assert "content-encoding" not in r.headers and raw == AUDIO
    part, raw = await _get_raw(client, f"/api/bulletins/{bulletin}/audio", Range="bytes=0-99", **GZ)
    assert part.status_code == 206 and "content-encoding" not in part.headers and raw == AUDIO[:100]
    ev, raw = await _get_raw(client, f"/api/broadcasts/{bid}/events", **GZ)
    assert ev.status_code == 200 and ev.headers["content-type"].startswith("text/event-stream")
    assert "content-encoding" not in ev.headers and ev.headers["cache-control"] == "no-store"
    text = raw.decode()
    assert text.startswith("retry: 2000") and "event: delivery" in text and '"final": true' in text
