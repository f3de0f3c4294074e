"""POST /api/broadcasts/{id}/end-waiting refuses what it must, without a broker (the controller keeps
retrying its link in the background): an editor may not (403), with no broker link every unit
only looks offline (503, nothing ended), an unknown broadcast is 404. The path that ends the
waiting runs with real Mosquitto in tests/e2e/test_truth.py."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from sqlmodel import select

from controller.airing.models import Delivery
from devices.broker import free_port
from tests.conftest import make_settings, running_controller
from tests.controller.test_accounts import add_user

pytestmark = pytest.mark.timeout(90)


async def test_refusals(tmp_path: Path) -> None:
    async with running_controller(make_settings(tmp_path, free_port())) as (app, admin):
        assert (await admin.post("/api/zones", json={"id": "z", "name": "Z"})).status_code == 201
        assert (await admin.post("/api/nodes", json={"id": "u1", "zones": ["z"]})).status_code == 201
        r = await admin.post("/api/bulletins", json={"text": "Kiểm tra loa."})
        assert r.status_code == 201, r.text
        body = {"bulletin_id": r.json()["id"], "target": {"zones": ["z"]}}
        r = await admin.post("/api/broadcasts", json=body)
        assert r.status_code == 201, r.text
        bid = r.json()["id"]
        assert r.json()["summary"]["text_vi"]  # the summary comes with the answer

        password = await add_user(admin, "bientap", "editor", None)
        r = await admin.post(f"/api/broadcasts/{bid}/end-waiting", auth=httpx.BasicAuth("bientap", password))
        assert r.status_code == 403, r.text
        r = await admin.post(f"/api/broadcasts/{bid}/end-waiting")
        assert r.status_code == 503 and "broker" in r.json()["detail"], r.text
        assert (await admin.post("/api/broadcasts/nope/end-waiting")).status_code == 404
        with app.state.services.db.session() as s:
            rows = s.exec(select(Delivery).where(Delivery.broadcast_id == bid)).all()
            assert {d.state for d in rows} == {"queued"}  # nothing ended
