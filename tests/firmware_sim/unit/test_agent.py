"""The unit agent as a program on a board: what it keeps across a restart (it never plays again
what it played, its power and volume come back), wrong credentials (a clear error, backoff, no
crash), the power drivers (a command switches the amplifier, 'none' is reported), and the
``loaphuong unit`` commands (setup, doctor, install-service) run as a user runs them."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from devices.broker import BrokerProcess
from devices.conformance.harness import Harness
from devices.messages import now_ms
from devices.mqtt import BrokerAddress
from firmware_sim.playlog import read_play_log
from firmware_sim.unit.decode import duration_ms
from firmware_sim.unit.state import AudioSettings, save_config
from tests.firmware_sim.unit.conftest import Rig, spoken, unit_config
from tests.firmware_sim.unit.test_faults import play_bcast
from tests.security.ward import broker_dir

pytestmark = [pytest.mark.broker, pytest.mark.asyncio, pytest.mark.timeout(240)]


async def test_a_restarted_unit_never_plays_again_what_it_played(rig: Rig, bulletin: bytes,
                                                                tmp_path: Path) -> None:
    agent, h = await rig.unit("loa-r1", "lp_a")
    offered = await play_bcast(h, bulletin)
    bc = offered.bc
    assert await h.wait(lambda: "played" in h.states(bc), 30)
    _cmd, resp = await h.call("volume", {"level": 33})
    assert resp is not None and resp.get("status") == "ok"
    _cmd, resp = await h.call("power", {"on": False})
    assert resp is not None and resp.get("status") == "ok"
    await agent.stop("reboot")
    again = rig.agents(agent.cfg, state="loa-r1")  # same state directory: a reboot of the board
    assert (again.node.player.power, again.node.player.volume) == (False, 33)
    await again.start(wait=True)
    before = len(h.acks(bc))
    await h.offer(offered)  # the controller lost track and offers it again
    assert await h.wait(lambda: len(h.acks(bc)) > before, 15)
    assert h.acks(bc)[-1].get("state") == "played"  # its final state, not a second playback
    starts = [e for e in read_play_log(agent.state_dir / "play.log") if e.bc == bc and e.event == "start"]
    assert len(starts) == 1


async def test_wrong_credentials_back_off_without_crashing(tmp_path: Path, prefix: str,
                                                           caplog: pytest.LogCaptureFixture) -> None:
    from firmware_sim.unit.agent import UnitAgent

    with broker_dir() as d:
        pw = d / "passwd"
        await asyncio.to_thread(subprocess.run, ["mosquitto_passwd", "-c", "-b", str(pw), "loa-w1", "right"],
                                check=True)
        os.chmod(pw, 0o644)
        await refused_then_backoff(UnitAgent, pw, tmp_path, prefix, caplog)


async def refused_then_backoff(make: Any, pw: Path, tmp_path: Path, prefix: str,
                               caplog: pytest.LogCaptureFixture) -> None:
    with BrokerProcess("mosquitto", conf_extra=f"password_file {pw}") as b:
        addr = BrokerAddress(host="127.0.0.1", port=b.port)
        agent = make(tmp_path / "s", unit_config("loa-w1", addr, prefix, username="loa-w1",
                                                      password="wrong"))
        await agent.start()
        try:
            for _ in range(200):  # two refused attempts: it retries, with backoff, and stays up
                if caplog.text.count("refused") >= 2:
                    break
                await asyncio.sleep(0.05)
            assert caplog.text.count("refused") >= 2, caplog.text[-2000:]
            assert "not authori" in agent.node.link_error.lower(), agent.node.link_error
            assert agent.node.running and not agent.node.connected
        finally:
            await agent.stop()


REFUSED = re.compile(r"^(\S+ \S+) WARNING .*MQTT connect to .* failed \(broker refused the connection: "
                     r"(.*)\); trying .* in ([0-9.]+) s$")


async def test_a_unit_run_with_wrong_credentials_backs_off_and_comes_online_once_fixed(
        rig: Rig, tmp_path: Path) -> None:
    """``loaphuong unit run`` as systemd starts it, with a password the broker does not know: one
    process that says why, retries further and further apart, never exits (no crash loop), and
    comes online by itself once the broker's password file has the unit's password."""
    with broker_dir() as d:
        pw = d / "passwd"
        await asyncio.to_thread(subprocess.run, ["mosquitto_passwd", "-c", "-b", str(pw), "loa-w2", "right"],
                                check=True)
        os.chmod(pw, 0o644)
        with BrokerProcess("mosquitto", conf_extra=f"password_file {pw}") as b:
            addr = BrokerAddress(host="127.0.0.1", port=b.port)
            state = tmp_path / "unit"
            save_config(state, unit_config("loa-w2", addr, rig.prefix, username="loa-w2", password="wrong",
                                           audio=AudioSettings(output="null")))
            stderr = tmp_path / "stderr"
            run = [sys.executable, "-m", "controller.cli", "unit", "run", "--state-dir", str(state)]
            with stderr.open("wb") as log:
                proc = await asyncio.create_subprocess_exec(*run, stderr=log)
                try:
                    await refused_then_online(proc, stderr, pw, b, addr, rig.prefix)
                finally:
                    if proc.returncode is None:
                        proc.send_signal(signal.SIGTERM)
                        await asyncio.wait_for(proc.wait(), 20)


async def refused_then_online(proc: asyncio.subprocess.Process, stderr: Path, pw: Path, b: BrokerProcess,
                              addr: BrokerAddress, prefix: str) -> None:
    def refusals() -> list[tuple[datetime, str, float]]:
        out = []
        for line in stderr.read_text().splitlines():
            m = REFUSED.match(line)
            if m:
                out.append((datetime.strptime(m[1], "%Y-%m-%d %H:%M:%S,%f"), m[2], float(m[3])))
        return out

    for _ in range(300):  # at most 30 s: five refused logins
        if len(refusals()) >= 5 or proc.returncode is not None:
            break
        await asyncio.sleep(0.1)
    seen = refusals()
    assert proc.returncode is None, f"the agent exited ({proc.returncode}): {stderr.read_text()[-2000:]}"
    assert len(seen) >= 5, stderr.read_text()[-2000:]
    assert all("Not authorized" in why and "username and password" in why for _t, why, _d in seen), seen[0]
    delays = [d for _t, _why, d in seen]
    assert delays[4] > 2 * delays[0], delays  # it backs off, it does not hammer the broker
    gaps = [(seen[i + 1][0] - seen[i][0]).total_seconds() for i in range(4)]
    assert all(g >= d * 0.9 for g, d in zip(gaps, delays, strict=False)), (gaps, delays)
    assert stderr.read_text().count("connecting to") == 1  # one process, never restarted
    # the admin fixes the broker's side (the unit's password as the unit has it) and reloads it
    fix = ["mosquitto_passwd", "-b", str(pw), "loa-w2", "wrong"]
    await asyncio.to_thread(subprocess.run, fix, check=True)
    assert b.proc is not None
    b.proc.send_signal(signal.SIGHUP)
    h = Harness(BrokerAddress(host=addr.host, port=addr.port, username="loa-w2", password="wrong"),
                "loa-w2", prefix=prefix, timeout_s=30.0)
    assert await h.start()
    try:
        online = await h.wait(lambda: [s for s in h.objs("state") if s.get("status") == "online"], 90)
        assert online, stderr.read_text()[-2000:]
        assert proc.returncode is None
    finally:
        await h.stop()


async def test_a_power_cut_mid_play_is_power_off_after_the_boot_never_a_second_play(
        rig: Rig, bulletin: bytes, tmp_path: Path) -> None:
    """§3 "what a unit keeps": the board loses power while it plays (``unit run`` SIGKILLed, nothing
    written at the end); after the boot the unit answers the retained manifest failed/power_off and
    never starts that broadcast again, from the start or mid-way."""
    state = tmp_path / "unit"
    save_config(state, unit_config("loa-k1", rig.broker, rig.prefix, audio=AudioSettings(output="null")))
    h = await rig.harnesses("loa-k1")
    await h.config(groups=[], volume=80)
    run = [sys.executable, "-m", "controller.cli", "unit", "run", "--state-dir", str(state)]
    proc = await asyncio.create_subprocess_exec(*run, stderr=subprocess.DEVNULL)
    try:
        assert await h.wait(lambda: [s for s in h.objs("state") if s.get("status") == "online"], 30)
        b = await play_bcast(h, bulletin, repeat=4)  # ~11 s
        assert await h.wait(lambda: "playing" in h.states(b.bc), 20), h.states(b.bc)
        proc.kill()  # the power goes
        await asyncio.wait_for(proc.wait(), 10)
        assert await h.wait(lambda: [s for s in h.objs("state") if s.get("status") == "offline"], 30)
        proc = await asyncio.create_subprocess_exec(*run, stderr=subprocess.DEVNULL)  # the board boots
        final = await h.wait(lambda: [a for a in h.acks(b.bc) if a.get("state") == "failed"], 30)
        assert final and final[-1].get("reason") == "power_off", h.acks(b.bc)
        late_join = {"bc": b.bc, "at": now_ms() + 500, "offset_ms": 4000}
        _cmd, resp = await h.call("play", late_join)
        assert resp is not None, "the booted unit did not answer the play"
        assert not await h.wait(lambda: h.states(b.bc).count("playing") > 1, 3), h.states(b.bc)
        starts = [e for e in read_play_log(state / "play.log") if e.bc == b.bc and e.event == "start"]
        assert len(starts) == 1 and h.states(b.bc).count("playing") == 1, (starts, h.states(b.bc))
    finally:
        if proc.returncode is None:
            proc.kill()
            await asyncio.wait_for(proc.wait(), 10)


async def test_a_verified_file_survives_the_reboot_and_a_damaged_one_is_fetched_again(
        rig: Rig, bulletin: bytes) -> None:
    """§3 "what a unit keeps": a held broadcast verified before the reboot is answered ``verified``
    at once after it (no second download) and plays on its ``play``; a stored file whose bytes no
    longer match its manifest is dropped at boot and downloaded again, never played damaged."""
    agent, h = await rig.unit("loa-v1", "lp_b")
    kept, damaged = spoken(h, bulletin, duration_ms(bulletin, "mp3"), tag="k"), spoken(
        h, bulletin[:6000], duration_ms(bulletin[:6000], "mp3"), tag="d")
    for b in (kept, damaged):
        await h.offer(b)
    assert await h.wait(lambda: all("verified" in h.states(b.bc) for b in (kept, damaged)), 20)
    await agent.stop("reboot")
    audio = agent.flash.dir / f"verified-{damaged.bc}.audio"
    audio.write_bytes(b"\x00" + audio.read_bytes()[1:])  # a flash cell gone bad while it was off
    before = {b.bc: len(h.states(b.bc)) for b in (kept, damaged)}
    again = rig.agents(agent.cfg, state="loa-v1")
    await again.start(wait=True)
    assert await h.wait(lambda: all(len(h.states(b.bc)) > before[b.bc] for b in (kept, damaged)), 20)
    assert h.states(kept.bc)[before[kept.bc]:][:1] == ["verified"], h.states(kept.bc)
    assert "receiving" not in h.states(kept.bc)[before[kept.bc]:]  # nothing downloaded twice
    assert h.states(damaged.bc)[before[damaged.bc]:][:1] == ["receiving"], h.states(damaged.bc)
    await h.send_chunks(damaged, list(range(len(damaged.frames))))  # the controller answers its repair
    assert await h.wait(lambda: "verified" in h.states(damaged.bc)[before[damaged.bc]:], 20)
    _cmd, resp = await h.call("play", {"bc": kept.bc, "at": now_ms() + 1000, "offset_ms": 0})
    assert resp is not None and resp.get("status") == "ok", resp
    assert await h.wait(lambda: "played" in h.states(kept.bc), 30), h.states(kept.bc)
