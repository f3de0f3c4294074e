"""Request bodies before authentication (issue 11 item 7), attacked over real HTTP.

The controller runs under uvicorn as ``loaphuong serve`` runs it, Mosquitto with the generated
config. Requests are written on raw sockets so the test controls what is sent: the headers
alone, and the body only while the server has not answered. A refused request must be answered
without its body being read: not parsed into memory, not spooled to a temporary file (the
process's temporary directory is a private one here, and must stay empty)."""

from __future__ import annotations

import asyncio
import base64
import socket
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from controller.core.web_settings import HttpSettings
from tests.conftest import ADMIN
from tests.e2e.serve import serving
from tests.security.ward import Broker, add_user, client, settings_for
from tests.tts.test_recording import make_audio

pytestmark = pytest.mark.timeout(120)

MB = 1024 * 1024
BASIC_ADMIN = "Basic " + base64.b64encode(f"{ADMIN[0]}:{ADMIN[1]}".encode()).decode()
MULTIPART = "multipart/form-data; boundary=lpboundary"
Response = tuple[int, dict[str, str], bytes]


@pytest.fixture
def spool(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Where this process's temporary files (Starlette's upload spool) go during the test."""
    d = tmp_path / "spool"
    d.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(d))
    return d


async def _response(reader: asyncio.StreamReader) -> Response:
    status = int((await reader.readline()).split()[1])
    headers: dict[str, str] = {}
    while (line := await reader.readline()) not in (b"\r\n", b""):
        k, _, v = line.decode("latin-1").partition(":")
        headers[k.strip().lower()] = v.strip()
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    return status, headers, body


@asynccontextmanager
async def raw(addr: str, method: str, path: str, headers: dict[str, str]) -> AsyncIterator[
        tuple[asyncio.StreamWriter, asyncio.Task[Response]]]:
    """Send the request line and headers; yield the writer (for the body) and the response.

    The socket's send buffer is small, so what :func:`stream` counts as sent is what the server
    took in (give or take a buffer), not what a busy machine let pile up in the kernel before the
    server got round to answering."""
    host, port = addr.split(":")
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 64 * 1024)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, (host, int(port)))
    reader, writer = await asyncio.open_connection(sock=sock)
    head = f"{method} {path} HTTP/1.1\r\nHost: {addr}\r\n"
    writer.write((head + "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n").encode())
    await writer.drain()
    answer = asyncio.create_task(_response(reader))
    try:
        yield writer, answer
    finally:
        answer.cancel()
        writer.close()


async def headers_only(addr: str, method: str, path: str, headers: dict[str, str]) -> Response:
    """The server's answer to a request whose body is never sent (it must not wait for it)."""
    async with raw(addr, method, path, headers) as (_, answer):
        return await asyncio.wait_for(answer, 20)


async def stream(addr: str, path: str, headers: dict[str, str], chunk: bytes,
                 most: int) -> tuple[Response, int]:
    """Send a chunked body, ``chunk`` after ``chunk``, until the server answers (or ``most``
    bytes); the answer and the bytes sent."""
    sent = 0
    async with raw(addr, "POST", path, headers | {"Transfer-Encoding": "chunked"}) as (writer, answer):
        while not answer.done() and sent < most:
            try:
                writer.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
                await writer.drain()
            except (ConnectionError, OSError):
                break
            sent += len(chunk)
            await asyncio.sleep(0)
        return await asyncio.wait_for(answer, 20), sent


def spooled(spool: Path) -> list[Path]:
    return [p for p in spool.rglob("*") if p.is_file()]


async def test_declared_oversize_bodies_are_refused_unread(secure_broker: Broker, tmp_path: Path,
                                                           spool: Path) -> None:
    async with serving(settings_for(secure_broker, tmp_path / "data")) as (_, addr):
        json_head = {"Content-Type": "application/json", "Content-Length": str(200 * MB)}
        for auth in ({}, {"Authorization": BASIC_ADMIN}):  # the limit is everyone's
            status, _, body = await headers_only(addr, "POST", "/api/bulletins", json_head | auth)
            assert status == 413 and b"1 MB" in body
            upload = {"Content-Type": MULTIPART, "Content-Length": str(300 * MB)} | auth
            status, _, body = await headers_only(addr, "POST", "/api/bulletins/recordings", upload)
            assert status == 413 and b"25 MB" in body  # the route's documented limit (tts.upload_max_mb)
        # the login is read without authentication: a stranger's body there is small or refused
        login_head = {"Content-Type": "application/json", "Content-Length": str(17 * 1024)}
        status, _, body = await headers_only(addr, "POST", "/api/login", login_head)
        assert status == 413 and b"16 KB" in body
        assert spooled(spool) == []
        async with client(addr, auth=ADMIN) as admin:  # nothing was created, the admin works
            assert (await admin.get("/api/bulletins")).json() == []
            entry = {"term": "UBND", "spoken": "ủy ban nhân dân"}
            assert (await admin.post("/api/speech/dictionary", json=entry)).status_code == 201


async def test_unauthenticated_bodies_are_not_read(secure_broker: Broker, tmp_path: Path,
                                                   spool: Path) -> None:
    wav = make_audio(tmp_path, "wav", seconds=1)
    async with serving(settings_for(secure_broker, tmp_path / "data")) as (app, addr):
        upload = {"Content-Type": MULTIPART, "Content-Length": str(20 * MB)}  # within the 25 MB limit
        guess = "Basic " + base64.b64encode(b"admin:guess-123456").decode()
        cases = [({}, 401), ({"Authorization": guess}, 401),
                 ({"Cookie": "lp_session=forged"}, 401),
                 ({"Authorization": BASIC_ADMIN, "Origin": "https://evil.example"}, 403)]
        for extra, expected in cases:
            status, _, _ = await headers_only(addr, "POST", "/api/bulletins/recordings", upload | extra)
            assert status == expected, extra
        json_head = {"Content-Type": "application/json", "Content-Length": str(900 * 1024)}
        assert (await headers_only(addr, "POST", "/api/bulletins", json_head))[0] == 401
        # a chunked upload without credentials: answered before a byte of it is read
        (status, _, _), sent = await stream(addr, "/api/bulletins/recordings", {"Content-Type": MULTIPART},
                                            b"x" * 65536, 8 * MB)
        assert status == 401
        # a logged-in browser's post without its CSRF token is refused before the body, too
        pw = await add_user(addr, "bientap")
        async with client(addr) as browser:
            r = await browser.post("/api/login", json={"username": "bientap", "password": pw})
            cookie = f"lp_session={browser.cookies['lp_session']}"
        with_cookie = upload | {"Cookie": cookie}
        status, _, body = await headers_only(addr, "POST", "/api/bulletins/recordings", with_cookie)
        assert status == 403 and b"CSRF" in body
        assert spooled(spool) == []
        # the wrong Basic password above counted as a failed login (audited), the rest did not
        async with client(addr, auth=ADMIN) as admin:
            rows = [a for a in (await admin.get("/api/audit")).json() if a["action"] == "login_failed"]
            assert [a["username"] for a in rows] == ["admin"]
            # and the real editor's upload still works
        async with client(addr, auth=("bientap", pw)) as editor:
            r = await editor.post("/api/bulletins/recordings", files={"file": ("họp.wav", wav, "audio/wav")})
            assert r.status_code == 201, r.text
            assert r.json()["approval"] == "draft"
        assert app.state.services.login_limiter.retry_after("admin", "127.0.0.1") == 0


async def test_chunked_bodies_are_cut_at_the_limit(secure_broker: Broker, tmp_path: Path,
                                                   spool: Path) -> None:
    http = HttpSettings(max_body_kb=64)  # type: ignore[call-arg]
    async with serving(settings_for(secure_broker, tmp_path / "data", http=http)) as (_, addr):
        auth = {"Authorization": BASIC_ADMIN, "Content-Type": "application/json"}
        (status, _, body), sent = await stream(addr, "/api/speech/dictionary", auth,
                                               b'{"term": "' + b"a" * 16384, 16 * MB)
        assert status == 413 and b"64 KB" in body
        assert sent < 4 * MB  # cut near the limit, not read to the end
        # under the limit, a chunked body is fine
        async with raw(addr, "POST", "/api/speech/dictionary", auth | {"Transfer-Encoding": "chunked"}) as (
                writer, answer):
            entry = '{"term": "TDP", "spoken": "tổ dân phố"}'.encode()
            writer.write(f"{len(entry):x}\r\n".encode() + entry + b"\r\n0\r\n\r\n")
            await writer.drain()
            status, _, body = await asyncio.wait_for(answer, 20)
            assert status == 201, body
        async with client(addr, auth=ADMIN) as admin:
            terms = [e["term"] for e in (await admin.get("/api/speech/dictionary")).json()]
            assert terms == ["TDP"]
        assert spooled(spool) == []
