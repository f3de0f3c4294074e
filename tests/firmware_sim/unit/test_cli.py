"""``loaphuong unit`` as a person on a board runs it: setup writes a private configuration, run
comes online with what it is (its power driver named) and shuts down cleanly on SIGTERM, doctor
checks everything and plays its tone, install-service writes a unit file that runs this install;
the power drivers switch the amplifier (a command) or report that they cannot."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import signal
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from devices.mqtt import BrokerAddress
from firmware_sim.unit.power import AMP_POWER
from firmware_sim.unit.service import unit_file
from firmware_sim.unit.state import PowerSettings, load_config
from tests.firmware_sim.unit.conftest import Rig
from tests.firmware_sim.unit.sound import PulseServer

pytestmark = [pytest.mark.broker, pytest.mark.asyncio, pytest.mark.timeout(240)]

CLI = [sys.executable, "-m", "controller.cli", "unit"]


async def cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(subprocess.run, [*CLI, *args], capture_output=True, text=True,
                                   timeout=timeout, check=False)


def setup(state: Path, broker: BrokerAddress, prefix: str, pulse: PulseServer, *extra: str) -> None:
    r = subprocess.run([*CLI, "setup", "--state-dir", str(state), "--node-id", "loa-cli", "--prefix", prefix,
                        "--broker", f"127.0.0.1:{broker.port}", "--heartbeat-s", "1",
                        "--pulse-server", pulse.server, "--sink", "lp_a", "--mixer", "software", *extra],
                       capture_output=True, text=True, timeout=30, check=False)
    assert r.returncode == 0, r.stderr


async def test_setup_run_and_a_clean_shutdown(rig: Rig, tmp_path: Path) -> None:
    state = tmp_path / "unit"
    await asyncio.to_thread(setup, state, rig.broker, rig.prefix, rig.pulse)
    assert stat.S_IMODE((state / "unit.json").stat().st_mode) == 0o600  # it holds the broker password
    assert load_config(state).audio.sink == "lp_a"
    h = await rig.harnesses("loa-cli")
    proc = await asyncio.create_subprocess_exec(*CLI, "run", "--state-dir", str(state),
                                                stderr=asyncio.subprocess.PIPE)
    try:
        birth = await h.wait(lambda: [s for s in h.objs("state") if s.get("status") == "online"], 30)
        assert birth, "the unit never came online"
        assert birth[-1]["hw"].endswith("power:none")  # a board that cannot switch its amplifier says so
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 20) == 0
        last = await h.wait(lambda: [s for s in h.objs("state") if s.get("status") == "shutdown"], 10)
        assert last, "no clean-shutdown state after SIGTERM"
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def test_setup_refuses_a_bad_broker_address(tmp_path: Path) -> None:
    r = await cli("setup", "--state-dir", str(tmp_path), "--node-id", "x1", "--broker", "no-port")
    assert r.returncode == 2 and "host:port" in r.stderr
    assert not (tmp_path / "unit.json").exists()


async def test_run_without_setup_says_what_to_do(tmp_path: Path) -> None:
    r = await cli("run", "--state-dir", str(tmp_path / "none"))
    assert r.returncode == 2 and "loaphuong unit setup" in r.stderr


async def test_doctor_checks_everything_and_plays_its_tone(rig: Rig, tmp_path: Path) -> None:
    state = tmp_path / "unit"
    await asyncio.to_thread(setup, state, rig.broker, rig.prefix, rig.pulse)
    await rig.harnesses("loa-cli")  # plays the controller: it answers the doctor's time sync
    r = await cli("doctor", "--state-dir", str(state))
    assert r.returncode == 0, r.stdout + r.stderr
    rows = [ln.split() for ln in r.stdout.splitlines() if ln[:4] in ("PASS", "WARN", "FAIL")]
    lines = {row[1]: row[0] for row in rows}
    assert lines["config"] == lines["sound"] == lines["test"] == lines["broker"] == lines["clock"] == "PASS"
    assert lines["opus"] == "PASS" and "libopus" in r.stdout, r.stdout  # the board plays the opus codec
    assert lines["power"] == "WARN", r.stdout  # driver none
    bad = tmp_path / "bad"
    await asyncio.to_thread(setup, bad, BrokerAddress(port=1), rig.prefix, rig.pulse)
    r = await cli("doctor", "--state-dir", str(bad), "--no-tone", "--timeout", "3")
    assert r.returncode == 1 and "FAIL  broker" in r.stdout, r.stdout


async def test_install_service_runs_this_install(tmp_path: Path) -> None:
    path = tmp_path / "loaphuong-unit.service"
    r = await cli("install-service", "--state-dir", str(tmp_path), "--path", str(path))
    assert r.returncode == 0, r.stderr
    text = path.read_text()
    assert text == unit_file(tmp_path)
    line = next(ln for ln in text.splitlines() if ln.startswith("ExecStart="))
    exec_start = line.removeprefix("ExecStart=").split()
    assert os.access(exec_start[0], os.X_OK), exec_start
    assert exec_start[1:4] == ["unit", "run", "--state-dir"]
    assert "Restart=on-failure" in text and "RestartPreventExitStatus=2" in text


async def test_a_command_switches_the_amplifier(rig: Rig, tmp_path: Path) -> None:
    flag = tmp_path / "amp-on"
    power = PowerSettings(driver="command", on_cmd=["touch", str(flag)], off_cmd=["rm", "-f", str(flag)])
    agent, h = await rig.unit("loa-p1", "lp_b", power=power)
    assert flag.exists()  # powered on at boot
    _cmd, resp = await h.call("power", {"on": False})
    assert resp is not None and resp.get("status") == "ok"
    assert not flag.exists()
    await h.call("power", {"on": True})
    assert flag.exists()
    broken = PowerSettings(driver="command", on_cmd=["false"], off_cmd=["false"])
    _agent, h2 = await rig.unit("loa-p2", "lp_b", power=broken)
    await h2.call("power", {"on": False})
    assert await h2.wait(lambda: any(AMP_POWER in t.get("faults", []) for t in h2.objs("telemetry")), 10)
    assert json.loads(json.dumps(agent.cfg.power.model_dump()))["driver"] == "command"


async def test_a_board_without_gpio_is_told_what_to_do(rig: Rig, tmp_path: Path) -> None:
    """This machine has no GPIO chip (and no libgpiod package): a unit set up with ``--power gpio``
    neither runs blind nor crash-loops — run exits 2 (systemd does not restart it) saying what to
    fix, doctor FAILs the power line with the same words; set up with ``none`` it runs, and says so."""
    state = tmp_path / "gpio"
    await asyncio.to_thread(setup, state, rig.broker, rig.prefix, rig.pulse, "--power", "gpio",
                            "--gpio-chip", "/dev/gpiochip9")
    r = await cli("run", "--state-dir", str(state), timeout=30)
    assert r.returncode == 2, r.stderr
    fix = "/dev/gpiochip9" if importlib.util.find_spec("gpiod") else "pip install gpiod"
    assert fix in r.stderr and "driver 'none'" in r.stderr, r.stderr
    d = await cli("doctor", "--state-dir", str(state), "--no-tone", "--timeout", "3")
    power = next(ln for ln in d.stdout.splitlines() if ln.split()[1:2] == ["power"])
    assert power.startswith("FAIL") and fix in power, d.stdout
    assert d.returncode == 1
    none = tmp_path / "none"
    await asyncio.to_thread(setup, none, rig.broker, rig.prefix, rig.pulse, "--power", "none")
    d = await cli("doctor", "--state-dir", str(none), "--no-tone", "--timeout", "3")
    assert "WARN  power        driver 'none': this board cannot switch its amplifier" in d.stdout, d.stdout

