"""The conformance kit (devices/conformance/) against real Mosquitto and the firmware simulator:
every item it runs PASSes on a healthy SimNode, and a deliberately broken unit FAILs the item
that matches its defect, with the evidence."""

from __future__ import annotations

import asyncio
import json
import secrets
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from devices.broker import BrokerProcess, mosquitto_path
from devices.conformance import ITEMS, Report, Status, run_kit
from devices.mqtt import BrokerAddress
from devices.serial.contract import GatewayConfig
from devices.serial.gateway import SerialGateway
from firmware_sim.faults import Faults
from firmware_sim.node import SimNode
from firmware_sim.serial_node import SerialNodeSim

pytestmark = [pytest.mark.broker, pytest.mark.asyncio, pytest.mark.timeout(600)]

#: What the kit cannot do against any unit in this version (docs/conformance.md).
NEVER_TESTED = {"last_will", "credentials", "live"}


@pytest.fixture(scope="module")
def broker() -> Iterator[BrokerAddress]:
    if mosquitto_path() is None:
        pytest.fail("mosquitto is not installed (apt-get install mosquitto)")
    with BrokerProcess("mosquitto") as b:
        yield BrokerAddress(host="127.0.0.1", port=b.port)


@pytest.fixture
def prefix() -> str:
    return f"c{secrets.token_hex(4)}"


@pytest_asyncio.fixture
async def unit(broker: BrokerAddress, prefix: str) -> AsyncIterator[Callable[..., SimNode]]:
    made: list[SimNode] = []

    def make(node_id: str = "loa-conf", **kw: Any) -> SimNode:
        kw.setdefault("time_scale", 0.1)
        kw.setdefault("repair_idle_s", 0.5)
        kw.setdefault("heartbeat_s", 0.5)
        node = SimNode(node_id, broker, prefix=prefix, **kw)
        made.append(node)
        return node

    yield make
    for node in made:
        await node.stop()


def verdicts(report: Report) -> dict[str, Status]:
    return {r.item: r.status for r in report.results}


def explain(report: Report) -> str:
    return "\n".join(f"{r.status.value} {r.item}: {r.evidence}" for r in report.results)


async def kit(broker: BrokerAddress, prefix: str, **kw: Any) -> Report:
    kw.setdefault("heartbeat_s", 0.5)
    kw.setdefault("quiet_s", 1.5)
    return await run_kit(broker, "loa-conf", prefix=prefix, timeout_s=30.0, **kw)


async def test_healthy_simulator_passes_every_item(broker: BrokerAddress, prefix: str,
                                                   unit: Callable[..., SimNode]) -> None:
    node = unit()
    await node.start()
    report = await kit(broker, prefix)
    got = verdicts(report)
    assert list(got) == [i for i, *_ in ITEMS], "every item ran, in order"
    for item, status in got.items():
        want = Status.NOT_TESTED if item in NEVER_TESTED else Status.PASS
        assert status is want, f"{item}: {status}\n{explain(report)}"
    assert report.ok and all(r.evidence for r in report.results), "each verdict says why"
    assert node.stats.commands_expired >= 1 and node.stats.commands_duplicate >= 1
    doc = report.to_json()
    assert json.loads(json.dumps(doc))["counts"] == {"PASS": len(ITEMS) - len(NEVER_TESTED), "FAIL": 0,
                                                     "NOT TESTED": len(NEVER_TESTED)}
    assert all(i["section"].startswith("§") for i in doc["items"]), "each item names its section"


async def test_unit_that_forgets_command_ids_fails_dedupe(broker: BrokerAddress, prefix: str,
                                                          unit: Callable[..., SimNode]) -> None:
    node = unit()
    node.commands._seen.first_time = lambda key, now: True  # type: ignore[method-assign]
    await node.start()
    report = await kit(broker, prefix, only={"birth", "correlation", "dedupe", "expiry"})
    got = verdicts(report)
    assert got == {"birth": Status.PASS, "correlation": Status.PASS, "dedupe": Status.FAIL,
                   "expiry": Status.PASS}, explain(report)
    dedupe = next(r for r in report.results if r.item == "dedupe")
    assert "executed or answered again" in " ".join(dedupe.evidence)
    assert "1 more response(s), telemetry volume 42: True" in " ".join(dedupe.evidence)
    assert not report.ok


async def test_unit_started_first_or_late_and_a_wrong_clock_synced(broker: BrokerAddress, prefix: str,
                                                                    unit: Callable[..., SimNode]) -> None:
    """The kit is up before the unit (the birth arrives live: its retained copy is read back), and
    the unit's clock is 20 s fast: clock sync puts it right, so `play` starts at the instant."""
    node = unit(faults=Faults(clock_offset_ms=20_000))
    run = asyncio.create_task(kit(broker, prefix, only={"birth", "clock_sync", "deliver", "play"}))
    await asyncio.sleep(1.0)  # not for correctness: the order only picks which birth path runs
    await node.start()
    report = await run
    assert set(verdicts(report).values()) == {Status.PASS}, explain(report)
    birth = next(r for r in report.results if r.item == "birth")
    assert any("retained copy" in line for line in birth.evidence) or "retained=True" in birth.evidence[0]


async def test_unit_without_clock_sync_fails_clock_and_play(broker: BrokerAddress, prefix: str,
                                                           unit: Callable[..., SimNode]) -> None:
    """A unit 20 s fast that never polls the time: `play` starts at the wrong instant, clock_sync FAILs."""
    node = unit(faults=Faults(clock_offset_ms=20_000, no_clock_sync=True))
    await node.start()
    report = await kit(broker, prefix, only={"birth", "deliver", "play"})
    got = verdicts(report)
    assert got == {"birth": Status.PASS, "deliver": Status.PASS, "play": Status.FAIL}, explain(report)
    clock = await kit(broker, prefix, only={"birth", "clock_sync"})
    assert verdicts(clock)["clock_sync"] is Status.FAIL, explain(clock)
    assert "no clock-sync request on its own" in " ".join(clock.results[-1].evidence)


async def test_unit_whose_decoder_fails_fails_play(broker: BrokerAddress, prefix: str,
                                                   unit: Callable[..., SimNode]) -> None:
    node = unit(faults=Faults(decode_error=True))
    await node.start()
    report = await kit(broker, prefix, only={"birth", "deliver", "play", "play_once"})
    got = verdicts(report)
    assert got == {"birth": Status.PASS, "deliver": Status.PASS, "play": Status.FAIL,
                   "play_once": Status.NOT_TESTED}, explain(report)
    play = next(r for r in report.results if r.item == "play")
    assert any("'failed'" in line for line in play.evidence), play.evidence


async def test_cli_prints_items_and_writes_the_json_report(
        broker: BrokerAddress, prefix: str, unit: Callable[..., SimNode], tmp_path: Path) -> None:
    node = unit()
    await node.start()
    out = tmp_path / "report.json"
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "controller.cli", "conformance", "--host", "127.0.0.1", "--port",
        str(broker.port), "--unit", "loa-conf", "--prefix", prefix, "--heartbeat-s", "0.5", "--quiet", "1",
        "--only", "birth,correlation,bad_envelope,last_will", "--json", str(out),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    stdout, stderr = await asyncio.wait_for(proc.communicate(), 300)
    text = stdout.decode()
    assert proc.returncode == 0, text + stderr.decode()
    assert "PASS       birth" in text and "NOT TESTED last_will" in text and "§2 Commands" in text
    doc = json.loads(out.read_text(encoding="utf-8"))
    assert doc["ok"] is True and doc["unit"] == "loa-conf"
    assert [i["item"] for i in doc["items"]] == ["birth", "correlation", "bad_envelope", "last_will"]


@pytest.mark.pty
async def test_serial_gateway_child_passes(broker: BrokerAddress, prefix: str, tmp_path: Path) -> None:
    """A board behind the serial gateway (a simulated board on a pty) is a unit like any other; where
    §7.5 says a child differs (no clock sync, `at` not used on the line) the kit says so."""
    sim = SerialNodeSim([1])
    tty = tmp_path / "ttyRS485"
    sim.open_pty(tty)
    cfg = GatewayConfig(gateway_id="gw1", port=str(tty), children={1: "gw1-a01"}, baudrate=115200, poll_s=0.2,
                        offline_after=2, reply_timeout=0.1, attempts=4, heartbeat_s=1.0, telemetry_s=1.0,
                        repair_idle_s=0.3, min_backoff=0.05, max_backoff=0.4, play_dir=tmp_path / "line",
                        prefix=prefix)
    gw = SerialGateway(cfg, broker)
    await gw.start()
    try:
        report = await run_kit(broker, "gw1-a01", prefix=prefix, heartbeat_s=1.0, quiet_s=1.5, timeout_s=30.0)
    finally:
        await gw.stop()
        await sim.stop()
    for item, status in verdicts(report).items():
        child_rules = {"clock_sync", "emergency", "preemption", "relay"}  # not on a gateway's child
        want = Status.NOT_TESTED if item in NEVER_TESTED | child_rules else Status.PASS
        assert status is want, f"{item}: {status}\n{explain(report)}"
    assert "§7.5" in " ".join(next(r for r in report.results if r.item == "clock_sync").evidence)
