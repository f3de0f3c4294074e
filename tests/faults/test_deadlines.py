"""The request deadline (controller/api/deadlines.py), broker- and database-free on a tiny ASGI app:
a response not started by the deadline is 503 + Retry-After; a write under a speech-rendering path
gets the longer deadline, a read there does not; a database error is 503, a page gets the notice in
Vietnamese (English with lang=en); a response that has started is never cut."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from sqlalchemy.exc import IntegrityError, OperationalError
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from controller.api.deadlines import DB_DOWN, TOO_SLOW, Deadlines
from controller.app import LONG_WRITES
from controller.ui.i18n import unavailable_messages

NEVER = asyncio.Event()  # never set: a hung database


async def hang(_: Request) -> Response:
    await NEVER.wait()
    return JSONResponse({})


async def slow(_: Request) -> Response:
    await asyncio.sleep(0.5)  # ten times the short deadline: a speech render
    return JSONResponse({"rendered": True})


async def db_down(_: Request) -> Response:
    raise OperationalError("SELECT 1", {}, Exception("connection refused"))


async def db_bug(_: Request) -> Response:
    raise IntegrityError("INSERT ...", {}, Exception("duplicate key value violates unique constraint"))


async def stream(_: Request) -> Response:
    async def body():  # type: ignore[no-untyped-def]
        yield b"start "
        await asyncio.sleep(0.5)  # the body goes on past the deadline
        yield b"end"

    return StreamingResponse(body())


def client(deadline_s: float = 0.05) -> httpx.AsyncClient:
    # as in controller/app.py: a user middleware, inside Starlette's error middleware (which would
    # answer 500 to an exception it sees first)
    deadlines = Middleware(Deadlines, deadline_s=deadline_s, messages=unavailable_messages(),  # type: ignore[arg-type]
                           long=r"/api/render/", long_deadline_s=30)
    app = Starlette(routes=[Route("/api/hang", hang), Route("/api/render/x", slow, methods=["GET", "POST"]),
                            Route("/api/db", db_down), Route("/page", db_down),
                            Route("/api/bug", db_bug), Route("/api/stream", stream)],
                    middleware=[deadlines])
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t", timeout=60)


async def test_past_the_deadline_503_and_the_longer_one_for_renders() -> None:
    async with client() as c:
        r = await c.get("/api/hang")
        assert (r.status_code, r.headers["retry-after"]) == (503, "5")
        assert r.json() == {
            "code": "deadline_exceeded", "error": TOO_SLOW,
            "message": "Hệ thống phản hồi quá chậm. Vui lòng thử lại sau ít phút.",
            "message_en": "The system is answering too slowly. Please try again in a few minutes."}
        r = await c.post("/api/render/x")
        assert (r.status_code, r.json()) == (200, {"rendered": True})  # within its 30 s
        r = await c.get("/api/render/x")
        assert r.status_code == 503  # a read is no render: the short deadline


async def test_database_error_503_json_or_the_vietnamese_page() -> None:
    async with client(30) as c:
        r = await c.get("/api/db")
        assert r.status_code == 503 and "Traceback" not in r.text
        assert r.json() == {  # a stable code, the sentence in Vietnamese then in English
            "code": "database_unavailable", "error": DB_DOWN,
            "message": "Cơ sở dữ liệu tạm thời không truy cập được. Vui lòng thử lại sau ít phút.",
            "message_en": "The database is unreachable for now. Please try again in a few minutes."}
        assert r.headers["content-type"] == "application/json; charset=utf-8"
        page = await c.get("/page", headers={"accept": "text/html"})
        assert page.status_code == 503 and page.headers["content-type"].startswith("text/html")
        assert "Cơ sở dữ liệu tạm thời không truy cập được" in page.text and 'lang="vi"' in page.text
        en = await c.get("/page", headers={"accept": "text/html", "cookie": "lang=en"})
        assert "The database is unreachable for now" in en.text


async def test_a_bug_that_reaches_the_database_is_no_outage() -> None:
    async with client(30) as c:
        with pytest.raises(IntegrityError):  # the server's error middleware answers it 500
            await c.get("/api/bug")


async def test_a_started_response_is_not_cut() -> None:
    async with client() as c:
        r = await c.get("/api/stream")
        assert (r.status_code, r.content) == (200, b"start end")


def test_the_controllers_long_writes() -> None:
    d = Deadlines(Starlette(), deadline_s=10, long=LONG_WRITES, long_deadline_s=300)
    for method, path in [("POST", "/api/bulletins"), ("PATCH", "/api/bulletins/7"),
                         ("POST", "/api/speech/preview"), ("POST", "/api/nodes/n-1/commands"),
                         ("POST", "/api/zones/tdp1/commands"),
                         ("POST", "/api/relays")]:
        assert d.deadline_of(method, path) == 300, (method, path)
    for method, path in [("GET", "/api/bulletins"), ("POST", "/api/broadcasts"), ("GET", "/api/nodes/n-1"),
                         ("POST", "/api/nodes"), ("POST", "/api/relays/r1/stop"),
                         ("POST", "/api/bulletinsx")]:
        assert d.deadline_of(method, path) == 10, (method, path)
