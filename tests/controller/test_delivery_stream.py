"""The delivery view's event stream (GET /api/broadcasts/{id}/events, controller/ui/delivery_view.py)
without a broker: the state at connect, a keep-alive comment when nothing changes (also while the
database is slow), an event on a change, and the end once the broadcast is finished."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncGenerator, AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.exc import OperationalError
from sqlmodel import select

from controller.accounts.models import User
from controller.airing.broadcasts import create_broadcast
from controller.airing.models import Broadcast, Delivery
from controller.services import Services
from controller.ui import delivery_view
from devices.broker import free_port
from tests.conftest import make_settings, running_controller
from tests.controller.test_delivery_fake import seed

pytestmark = pytest.mark.timeout(120)


class Connected:
    async def is_disconnected(self) -> bool:
        return False


@pytest.fixture
async def ward(tmp_path: Path) -> AsyncIterator[tuple[Services, User, str]]:
    async with running_controller(make_settings(tmp_path, free_port())) as (app, _):
        sv: Services = app.state.services
        bulletin = seed(sv.db, tmp_path / "audio", {"n1": "z", "n2": "z"})
        with sv.db.session() as s:
            bc = create_broadcast(s, bulletin_id=bulletin, all_nodes=False, zones=["z"], nodes=[],
                                  priority=None, air_at=None, valid_s=3600, repeat=1, created_by="test")
            admin = s.exec(select(User).where(User.username == "admin")).one()
            yield sv, admin, bc.id


async def chunks(sv: Services, user: User, bid: str) -> AsyncGenerator[bytes, None]:
    resp = await delivery_view.delivery_events(bid, Connected(), sv, user)  # type: ignore[arg-type]
    async for chunk in resp.body_iterator:
        yield chunk if isinstance(chunk, bytes) else str(chunk).encode()


def event(chunk: bytes) -> dict[str, Any]:
    head, data = chunk.decode().strip().split("\n")
    assert head == "event: delivery" and data.startswith("data: ")
    return json.loads(data[6:])  # type: ignore[no-any-return]


async def test_state_at_connect_keepalive_when_quiet_and_the_end(ward: tuple[Services, User, str],
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    sv, user, bid = ward
    monkeypatch.setattr(delivery_view, "KEEPALIVE_S", 0.3)
    it = chunks(sv, user, bid)
    assert await anext(it) == b"retry: 2000\n\n"
    first = event(await anext(it))  # the current state, at once
    assert first["status"] == "scheduled" and first["tally"] == {"queued": 2} and not first["final"]
    summary = first["summary"]
    assert summary["state"] == "scheduled" and summary["text_vi"].startswith("Chờ đến giờ phát")
    assert await asyncio.wait_for(anext(it), 30) == delivery_view.KEEPALIVE  # nothing changed
    assert await asyncio.wait_for(anext(it), 30) == delivery_view.KEEPALIVE  # the same state is not re-sent

    with sv.db.session() as s:
        bc = s.get(Broadcast, bid)
        assert bc is not None
        bc.status = "done"
        for d in s.exec(select(Delivery).where(Delivery.broadcast_id == bid)):
            d.state = "played"
            s.add(d)
        s.add(bc)
        s.commit()
    sv.delivery_streams.changed(bid)
    got = [c async for c in it]  # the stream ends after the final event
    last = event([c for c in got if c != delivery_view.KEEPALIVE][-1])
    assert last["final"] and last["status"] == "done" and last["tally"] == {"played": 2}
    assert last["summary"]["state"] == "aired" and last["summary"]["text_en"] == "Aired: 2 played"
    assert sv.delivery_streams.following(bid) == 0


async def test_a_slow_database_delays_the_event_not_the_keepalive(ward: tuple[Services, User, str],
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    sv, user, bid = ward
    real = delivery_view.snapshot

    def slow(sv_: Services, bid_: str) -> dict[str, Any]:
        time.sleep(2.0)  # a database answering slowly (in the worker thread, as the real one)
        return real(sv_, bid_)

    monkeypatch.setattr(delivery_view, "KEEPALIVE_S", 0.2)
    monkeypatch.setattr(delivery_view, "snapshot", slow)
    it = chunks(sv, user, bid)
    assert await anext(it) == b"retry: 2000\n\n"
    before: list[bytes] = []
    while (c := await asyncio.wait_for(anext(it), 30)) == delivery_view.KEEPALIVE:
        before.append(c)
    assert before, "keep-alive comments while the state was being read"
    assert event(c)["status"] == "scheduled"
    await it.aclose()


async def test_a_database_error_keeps_the_stream_and_it_catches_up(ward: tuple[Services, User, str],
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    sv, user, bid = ward
    real = delivery_view.snapshot
    calls: list[int] = []

    def flaky(sv_: Services, bid_: str) -> dict[str, Any]:
        calls.append(1)
        if len(calls) == 1:
            raise OperationalError("SELECT", {}, Exception("server closed the connection"))
        return real(sv_, bid_)

    monkeypatch.setattr(delivery_view, "KEEPALIVE_S", 0.2)
    monkeypatch.setattr(delivery_view, "snapshot", flaky)
    it = chunks(sv, user, bid)
    assert await anext(it) == b"retry: 2000\n\n"
    assert await asyncio.wait_for(anext(it), 30) == delivery_view.KEEPALIVE  # nothing readable: still alive
    while (c := await asyncio.wait_for(anext(it), 30)) == delivery_view.KEEPALIVE:
        pass
    assert event(c)["status"] == "scheduled" and len(calls) >= 2  # read again, and sent
    await it.aclose()
