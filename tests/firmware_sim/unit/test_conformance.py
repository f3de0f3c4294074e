"""The conformance kit (``loaphuong conformance``, devices/conformance/) against the unit agent
playing through a real PulseAudio null sink and connected through the kit's port (link mode): every
item PASSes, exactly as it does for the simulator (tests/devices/test_conformance.py) — the agent is
that node with real parts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from devices.conformance import run_kit
from devices.conformance.link import KitLink
from firmware_sim.unit.state import AudioSettings
from tests.devices.test_conformance import assert_all_pass, via
from tests.firmware_sim.unit.conftest import Rig, unit_config

pytestmark = [pytest.mark.broker, pytest.mark.asyncio, pytest.mark.timeout(600), pytest.mark.slow]


async def test_the_unit_agent_passes_every_item(rig: Rig, tmp_path: Path) -> None:
    audio = AudioSettings(output="pulse", server=rig.pulse.server, sink="lp_a", mixer="software")
    async with KitLink("127.0.0.1", 0, rig.broker) as link:
        login = via(link, "loa-conf")
        cfg = unit_config("loa-conf", login, rig.prefix, audio=audio, username=login.username,
                          password=login.password).model_copy(update={"heartbeat_s": 0.5})
        agent = rig.agents(cfg)
        await agent.start(wait=True)
        report = await run_kit(rig.broker, "loa-conf", prefix=rig.prefix, timeout_s=30.0, heartbeat_s=0.5,
                               quiet_s=1.5, link=link)
    (tmp_path / "report.json").write_text(json.dumps(report.to_json()))
    assert_all_pass(report)
    assert agent.node.running
