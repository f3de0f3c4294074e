"""``loaphuong gateway`` and ``python -m firmware_sim.serial_node`` as real processes."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from pathlib import Path
from typing import Any

import pytest

from devices import protocol as p
from devices.broker import BrokerProcess
from devices.mqtt import AsyncMqttClient, BrokerAddress
from devices.serial.cli import parse_children
from tests.e2e.helpers import wait_for


def test_children_arguments() -> None:
    # After: ranges get default ids, explicit ids win, and a bad address is refused by the config.
    assert parse_children("gw1", ["5=tdp4-wired"], ["1-3,5"]) == {
        1: "gw1-a01", 2: "gw1-a02", 3: "gw1-a03", 5: "tdp4-wired"}
    from devices.serial.cli import main
    assert main(["--id", "gw1", "--port", "loop://", "--child", "300"]) == 2


@pytest.mark.broker
@pytest.mark.pty
@pytest.mark.timeout(60)
async def test_gateway_and_board_simulator_processes(mosquitto: BrokerProcess, tmp_path: Path) -> None:
    # Two processes wired through a pty symlink; after SIGTERM the gateway has published its
    # children (online, then offline/gateway_shutdown) and its own shutdown state, and exited 0.
    tty = tmp_path / "ttyLP"
    states: dict[str, list[dict[str, Any]]] = {}

    def on_message(topic: str, payload: bytes, retained: bool) -> None:
        if payload:
            msg = json.loads(payload)
            states.setdefault(msg["node_id"], []).append(msg)

    ctl = AsyncMqttClient("ctl-cli", BrokerAddress(port=mosquitto.port), on_message=on_message,
                          on_connect=lambda: ctl.subscribe([f"{p.DEFAULT_PREFIX}/node/+/state"]))
    ctl.start()
    sim = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "firmware_sim.serial_node", "--pty", "--addr", "1-2", "--link", str(tty),
        stderr=asyncio.subprocess.DEVNULL)
    gw: asyncio.subprocess.Process | None = None
    try:
        await wait_for(tty.exists, 10, "pty symlink")
        gw = await asyncio.create_subprocess_exec(
            sys.executable, "-c", "from controller.cli import main; raise SystemExit(main())",
            "gateway", "--id", "gw9", "--port", str(tty), "--children", "1-3",
            "--mqtt-port", str(mosquitto.port), stderr=asyncio.subprocess.DEVNULL)
        await wait_for(lambda: [s[-1]["status"] for s in (states.get(n) for n in ("gw9-a01", "gw9-a02"))
                                if s] == ["online", "online"], 20, "children online")
        assert states["gw9"][-1]["children"] == ["gw9-a01", "gw9-a02", "gw9-a03"]
        gw.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(gw.wait(), 15) == 0
        await wait_for(lambda: states["gw9"][-1]["status"] == "shutdown", 5, "gateway shutdown state")
        assert states["gw9-a01"][-1]["status"] == "offline"
        assert states["gw9-a01"][-1]["reason"] == "gateway_shutdown"
    finally:
        for proc in (gw, sim):
            if proc is not None and proc.returncode is None:
                proc.terminate()
                await asyncio.wait_for(proc.wait(), 10)
        await ctl.stop()
