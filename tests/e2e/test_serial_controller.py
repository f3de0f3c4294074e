"""The serial gateway behind the real controller: the whole path a ward with older wired boards
has — the API, delivery and air control, a real Mosquitto, the gateway, a pty, simulated boards.

The gateway honours ``hold`` (docs/protocol.md §7.5): a broadcast verified on the line waits for
the controller's ``play``, then airs once for every child it targets; an emergency pre-empts what
the line plays. What must hold after each: every targeted child final with the right state, the
line played each broadcast once, the relays of the children not targeted never closed."""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from devices.broker import BrokerProcess
from devices.mqtt import BrokerAddress
from devices.serial.contract import GatewayConfig
from devices.serial.gateway import SerialGateway
from firmware_sim.serial_node import SerialNodeSim
from tests.conftest import make_settings, running_controller
from tests.e2e.helpers import air, bulletin, provision, states, wait_broadcast, wait_for, wait_online

pytestmark = [pytest.mark.broker, pytest.mark.pty, pytest.mark.timeout(240)]

CHILDREN = {1: "gw1-a01", 2: "gw1-a02", 3: "gw1-a03"}
ZONES = {"tdp4": ["gw1-a01", "gw1-a02"], "tdp5": ["gw1-a03"]}


@contextlib.asynccontextmanager
async def gateway(port: int, tmp: Path) -> AsyncIterator[tuple[SerialGateway, SerialNodeSim]]:
    boards = SerialNodeSim(list(CHILDREN))
    tty = tmp / "ttyRS485"
    boards.open_pty(tty)
    cfg = GatewayConfig(gateway_id="gw1", port=str(tty), children=dict(CHILDREN), baudrate=115200,
                        poll_s=0.2, offline_after=3, reply_timeout=0.2, attempts=4, heartbeat_s=1.0,
                        telemetry_s=1.0, repair_idle_s=0.5, min_backoff=0.05, max_backoff=0.4,
                        time_scale=0.2, play_dir=tmp / "line")
    gw = SerialGateway(cfg, BrokerAddress(port=port))
    await gw.start()
    try:
        yield gw, boards
    finally:
        await gw.stop()
        await boards.stop()


async def ward(client: httpx.AsyncClient) -> None:
    await provision(client, ZONES)
    await wait_online(client, list(CHILDREN.values()), timeout=60)


async def test_a_bulletin_to_one_zone_airs_once_on_the_line(mosquitto: BrokerProcess, tmp_path: Path) -> None:
    async with running_controller(make_settings(tmp_path / "ctl", mosquitto.port)) as (_, client), \
            gateway(mosquitto.port, tmp_path) as (gw, boards):
        await ward(client)
        b = await bulletin(client, "Thông báo: chiều nay cắt nước để sửa đường ống.")
        bid = await air(client, b["id"], {"zones": ["tdp4"]})
        done = await wait_broadcast(client, bid, 120)
        assert states(done) == {"gw1-a01": "played", "gw1-a02": "played"}
        assert done["status"] == "done"
        assert gw.line.played == [bid], "once on the line for both children"
        assert [on for _, on in boards.boards[1].relay_log] == [True, False]
        assert [on for _, on in boards.boards[2].relay_log] == [True, False]
        assert boards.boards[3].relay_log == [], "the child of another zone heard nothing"


async def test_an_emergency_preempts_what_the_line_plays(mosquitto: BrokerProcess, tmp_path: Path) -> None:
    async with running_controller(make_settings(tmp_path / "ctl", mosquitto.port)) as (_, client), \
            gateway(mosquitto.port, tmp_path) as (gw, boards):
        await ward(client)
        long_text = " ".join(["Thông báo về lịch tiêm phòng cho trẻ em trong toàn phường."] * 12)
        normal = await air(client, (await bulletin(client, long_text))["id"], {"zones": ["tdp4"]})

        async def line_plays() -> bool:
            return any(on for _, on in boards.boards[1].relay_log)
        await wait_for(line_plays, 120, "the normal bulletin on the line")
        urgent_b = await bulletin(client, "Khẩn cấp: bão đang vào, mọi người ở trong nhà.",
                                  priority="emergency")
        urgent = await air(client, urgent_b["id"], {"zones": ["tdp4"]}, priority="emergency")
        got = await wait_broadcast(client, urgent, 120)
        assert states(got) == {"gw1-a01": "played", "gw1-a02": "played"}
        pre = await wait_broadcast(client, normal, 120)
        assert {d["node_id"]: (d["state"], d["reason"]) for d in pre["deliveries"]} == {
            "gw1-a01": ("failed", "preempted"), "gw1-a02": ("failed", "preempted")}
        assert gw.line.played == [normal, urgent], "each once, the emergency after what it cut"
        assert boards.boards[3].relay_log == []


async def test_an_emergency_sounds_the_attention_tone_for_the_boards_at_once(
        mosquitto: BrokerProcess, tmp_path: Path) -> None:
    """The controller's tone (in every retained config) reaches the gateway for each child; the
    emergency's manifest sounds it on the line to the targeted boards before the speech plays there,
    once, and each delivery row says so (docs/protocol.md §7.5)."""
    async with running_controller(make_settings(tmp_path / "ctl", mosquitto.port)) as (_, client), \
            gateway(mosquitto.port, tmp_path) as (gw, boards):
        await ward(client)
        await wait_for(lambda: all(gw.tones.kept(n) for n in CHILDREN.values()), 60, "each child's tone kept")
        boards.boards[2].power = False  # an amplifier off: the emergency switches it on for the tone
        urgent_b = await bulletin(client, "Khẩn cấp: nước lũ đang lên, bà con di chuyển lên cao.",
                                  priority="emergency")
        urgent = await air(client, urgent_b["id"], {"zones": ["tdp4"]}, priority="emergency")
        got = await wait_broadcast(client, urgent, 120)
        assert states(got) == {"gw1-a01": "played", "gw1-a02": "played"}
        assert gw.line.tones == [(urgent, ["gw1-a01", "gw1-a02"])], "the tone once, to the targeted boards"
        assert gw.line.played == [urgent]
        line = tmp_path / "line" / "gw1"
        tone, speech = line / f"{urgent}.attention.mp3", line / f"{urgent}.mp3"
        assert hashlib.sha256(tone.read_bytes()).hexdigest() == gw.tones.kept("gw1-a01")
        assert tone.stat().st_mtime_ns <= speech.stat().st_mtime_ns, "the tone on the line before the speech"
        for addr in (1, 2):
            assert [on for _, on in boards.boards[addr].relay_log][:1] == [True]
            assert not boards.boards[addr].relay, "every relay open again at the end"
        assert boards.boards[2].power, "switched on by the emergency"
        assert boards.boards[3].relay_log == [], "the child of another zone heard no tone"
        reasons = {d["node_id"]: {h["reason"] for h in d["history"]} for d in got["deliveries"]}
        assert all("attention tone sounded" in reasons[n] for n in ("gw1-a01", "gw1-a02")), reasons
