"""What a unit says it is (``hw``) and runs (``fw``) in its birth message is kept and shown: the
API (one unit and the list), the unit's page in Vietnamese, and the node row, so that after a
restart of the controller it is still shown before the unit is heard again (issue 17)."""

from __future__ import annotations

from pathlib import Path

import pytest

from controller.fleet.models import Node
from devices.broker import BrokerProcess
from tests.conftest import make_settings, running_controller
from tests.e2e.helpers import logged_in, provision, sim, wait_for, wait_online

pytestmark = [pytest.mark.broker, pytest.mark.timeout(90)]


async def test_birth_hw_and_fw_are_stored_and_shown(mosquitto: BrokerProcess, tmp_path: Path) -> None:
    settings = make_settings(tmp_path, mosquitto.port)
    async with running_controller(settings) as (app, client):
        await provision(client, {"z": ["b-1", "b-2"]})
        unit = sim("b-1", mosquitto.port, fw="2.0.1")
        unit.hw = "esp32-a1s"  # what its hardware layer would say (firmware_sim/hardware.py)
        await unit.start()
        try:
            await wait_online(client, ["b-1"])
            one = (await client.get("/api/nodes/b-1")).json()
            assert (one["hw"], one["fw"]) == ("esp32-a1s", "2.0.1")
            listed = {n["id"]: (n["hw"], n["fw"]) for n in (await client.get("/api/nodes")).json()}
            assert listed == {"b-1": ("esp32-a1s", "2.0.1"), "b-2": ("", "")}  # b-2 never born: nothing
            browser = await logged_in(app)
            try:
                page = (await browser.get("/units/b-1")).text
                assert "Thiết bị: esp32-a1s · phần mềm 2.0.1" in page
                assert 'id="board"' not in (await browser.get("/units/b-2")).text  # nothing said: no line
            finally:
                await browser.aclose()
            await app.state.services.writer.flush()

            def stored() -> tuple[str, str] | None:
                with app.state.services.db.session() as s:
                    n = s.get(Node, "b-1")
                    return (n.hw, n.fw) if n else None

            await wait_for(lambda: stored() == ("esp32-a1s", "2.0.1"), 10, "hw and fw on the node row")
        finally:
            await unit.stop()
    async with running_controller(settings) as (app, client):  # restarted, the unit not back yet
        one = (await client.get("/api/nodes/b-1")).json()
        assert one["status"] != "online" and (one["hw"], one["fw"]) == ("esp32-a1s", "2.0.1")
        listed = {n["id"]: n["hw"] for n in (await client.get("/api/nodes")).json()}
        assert listed == {"b-1": "esp32-a1s", "b-2": ""}
