"""Refusals carry a stable code beside their English detail (issue 14), so the pages can say each
in Vietnamese; the detail itself is unchanged. No broker runs here."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from controller.api.error_codes import code_for
from controller.ui.i18n import T
from devices.broker import free_port
from tests.conftest import make_settings, running_controller

pytestmark = pytest.mark.timeout(90)


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[tuple[Any, httpx.AsyncClient]]:
    async with running_controller(make_settings(tmp_path, free_port())) as (app, client):
        yield app, client


async def test_refusals_carry_codes(api: tuple[Any, httpx.AsyncClient]) -> None:
    app, admin = api
    anon = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://controller", timeout=60)
    async with anon:
        r = await anon.post("/api/login", json={"username": "admin", "password": "wrong-password-1"})
    assert r.status_code == 401
    assert r.json() == {"detail": "wrong user name or password", "code": "login_wrong"}
    r = await admin.post("/api/users", json={"username": "admin", "role": "editor"})
    assert r.status_code == 422 and r.json()["code"] == "user_exists"
    assert "already exists" in r.json()["detail"]  # the English detail is unchanged
    r = await admin.post("/api/users", json={"username": "x y", "role": "editor"})  # the schema's own 422
    assert r.status_code == 422 and r.json()["code"] == "invalid" and isinstance(r.json()["detail"], list)
    r = await admin.post("/api/speech/preview", json={"text": "🙂 !!!"})
    assert r.json().get("code") == "nothing_to_read", r.text
    r = await admin.get("/api/nope")
    assert r.status_code == 404 and r.json() == {"detail": "Not Found"}  # nothing known: no code


def test_every_code_has_both_sentences() -> None:
    from controller.api.error_codes import CODES

    for _, code in CODES:
        assert T["vi"][f"err_{code}"] and T["en"][f"err_{code}"], code
    assert code_for("an emergency is on air in these zones: tdp1") == "emergency_on_air"
    assert code_for(["not", "a", "sentence"]) is None
