"""The conformance kit (devices/conformance/) against real Mosquitto and the firmware simulator:
every item PASSes on a healthy SimNode connected through the kit's port (link mode), and on a
serial gateway's child; a deliberately broken unit FAILs the item that matches its defect, with
the evidence."""

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

from devices.broker import BrokerProcess, free_port, mosquitto_path
from devices.conformance import ITEMS, Report, Status, run_kit
from devices.conformance.link import KitLink
from devices.mqtt import BrokerAddress
from devices.serial.contract import GatewayConfig
from devices.serial.gateway import SerialGateway
from firmware_sim.faults import Faults
from firmware_sim.node import SimNode
from firmware_sim.serial_node import SerialNodeSim

pytestmark = [pytest.mark.broker, pytest.mark.asyncio, pytest.mark.timeout(600)]

#: The items that need the kit's link mode (``--listen``): NOT TESTED without it.
LINK_ITEMS = {"last_will", "credentials"}


@pytest.fixture(scope="module")
def broker() -> Iterator[BrokerAddress]:
    if mosquitto_path() is None:
        pytest.fail("mosquitto is not installed (apt-get install mosquitto)")
    with BrokerProcess("mosquitto") as b:
        yield BrokerAddress(host="127.0.0.1", port=b.port)


@pytest_asyncio.fixture
async def link(broker: BrokerAddress) -> AsyncIterator[KitLink]:
    """The kit's own port (link mode), forwarding to the broker."""
    async with KitLink("127.0.0.1", 0, broker) as kit_link:
        yield kit_link


def via(link: KitLink, login: str) -> BrokerAddress:
    """What a unit under test is given in link mode: the kit's port, and its own broker login."""
    return BrokerAddress(host="127.0.0.1", port=link.port, username=login, password=f"{login}-secret")


@pytest.fixture
def prefix() -> str:
    return f"c{secrets.token_hex(4)}"


@pytest_asyncio.fixture
async def unit(broker: BrokerAddress, prefix: str) -> AsyncIterator[Callable[..., SimNode]]:
    made: list[SimNode] = []

    def make(node_id: str = "loa-conf", through: BrokerAddress | None = None, **kw: Any) -> SimNode:
        kw.setdefault("time_scale", 0.1)
        kw.setdefault("repair_idle_s", 0.5)
        kw.setdefault("heartbeat_s", 0.5)
        node = SimNode(node_id, through or broker, prefix=prefix, **kw)
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


def assert_all_pass(report: Report) -> None:
    got = verdicts(report)
    assert list(got) == [i for i, *_ in ITEMS], "every item ran, in order"
    for item, status in got.items():
        assert status is Status.PASS, f"{item}: {status}\n{explain(report)}"
    assert report.ok and all(r.evidence for r in report.results), "each verdict says why"


def evidence(report: Report, item: str) -> str:
    return " ".join(next(r for r in report.results if r.item == item).evidence)


async def test_healthy_simulator_passes_every_item(broker: BrokerAddress, prefix: str, link: KitLink,
                                                   unit: Callable[..., SimNode]) -> None:
    """Through the kit's port: every item PASSes, last_will and credentials included."""
    node = unit(through=via(link, "loa-conf"))
    await node.start()
    report = await kit(broker, prefix, link=link)
    assert_all_pass(report)
    assert node.stats.commands_expired >= 1 and node.stats.commands_duplicate >= 1
    doc = report.to_json()
    assert json.loads(json.dumps(doc))["counts"] == {"PASS": len(ITEMS), "FAIL": 0, "NOT TESTED": 0}
    assert all(i["section"].startswith("§") for i in doc["items"]), "each item names its section"
    creds = evidence(report, "credentials")
    assert "3 logins refused" in creds and "fits from k = 0" in creds, creds
    assert "client id 'loa-conf', username 'loa-conf', password sent, clean True, keepalive 30 s" in creds
    assert '"status": "offline"' in evidence(report, "last_will")
    assert sum(a.outcome == "refused" for a in link.attempts) == 3, "the kit refused 3 logins"


async def test_without_the_link_mode_last_will_and_credentials_say_how(
        broker: BrokerAddress, prefix: str, unit: Callable[..., SimNode]) -> None:
    node = unit()
    await node.start()
    report = await kit(broker, prefix, only={"birth"} | LINK_ITEMS)
    assert verdicts(report) == {"birth": Status.PASS, "last_will": Status.NOT_TESTED,
                                "credentials": Status.NOT_TESTED}, explain(report)
    assert report.ok
    for item in LINK_ITEMS:
        assert "--listen HOST:PORT" in evidence(report, item)


async def test_unit_that_reconnects_at_once_after_a_refusal_fails_credentials(
        broker: BrokerAddress, prefix: str, link: KitLink, unit: Callable[..., SimNode]) -> None:
    node = unit(through=via(link, "loa-conf"), faults=Faults(reconnect_at_once=True))
    await node.start()
    report = await kit(broker, prefix, only={"birth"} | LINK_ITEMS, link=link)
    assert verdicts(report) == {"birth": Status.PASS, "last_will": Status.PASS,
                                "credentials": Status.FAIL}, explain(report)
    assert "hammering" in evidence(report, "credentials")


@pytest.mark.parametrize(("will", "why"), [("none", "the CONNECT carries no last-will"),
                                           ("not_retained", "retain False, expected QoS 1 retained")])
async def test_unit_whose_will_is_missing_or_not_retained_fails_last_will(
        broker: BrokerAddress, prefix: str, link: KitLink, unit: Callable[..., SimNode], will: str,
        why: str) -> None:
    node = unit(through=via(link, "loa-conf"), faults=Faults(bad_will=will))
    await node.start()
    report = await kit(broker, prefix, only={"birth"} | LINK_ITEMS, link=link)
    assert verdicts(report) == {"birth": Status.PASS, "last_will": Status.FAIL,
                                "credentials": Status.PASS}, explain(report)
    assert why in evidence(report, "last_will")


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
    """In link mode (--listen): the unit, pointed at the kit's port, logs in through it."""
    port = free_port()
    node = unit(through=BrokerAddress(host="127.0.0.1", port=port, username="loa-conf", password="pw"))
    out = tmp_path / "report.json"
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "controller.cli", "conformance", "--host", "127.0.0.1", "--port",
        str(broker.port), "--unit", "loa-conf", "--prefix", prefix, "--heartbeat-s", "0.5", "--quiet", "1",
        "--listen", f"127.0.0.1:{port}", "--only", "birth,correlation,bad_envelope,last_will,credentials",
        "--json", str(out), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    assert proc.stdout is not None
    head = b""
    while b"link mode" not in head:  # the unit is switched on once the kit listens
        line = await asyncio.wait_for(proc.stdout.readline(), 60)
        assert line, "the CLI ended before listening"
        head += line
    await node.start(wait=False)
    stdout, stderr = await asyncio.wait_for(proc.communicate(), 300)
    text = (head + stdout).decode()
    assert proc.returncode == 0, text + stderr.decode()
    assert f"link mode: the unit connects to 127.0.0.1:{port}" in text
    assert "PASS       birth" in text and "PASS       last_will" in text and "§2 Commands" in text
    doc = json.loads(out.read_text(encoding="utf-8"))
    assert doc["ok"] is True and doc["unit"] == "loa-conf"
    assert [i["item"] for i in doc["items"]] == ["birth", "correlation", "bad_envelope", "last_will",
                                                 "credentials"]
    assert doc["counts"] == {"PASS": 5, "FAIL": 0, "NOT TESTED": 0}


@pytest.mark.pty
async def test_serial_gateway_child_passes_every_item(broker: BrokerAddress, prefix: str, link: KitLink,
                                                      tmp_path: Path) -> None:
    """A board behind the serial gateway (a simulated board on a pty), the gateway connected through
    the kit's port: every item PASSes, with §7.5's differences (no clock sync, play_stream and
    live_start unknown commands, `at` not used on the line, the will is the gateway's)."""
    sim = SerialNodeSim([1])
    tty = tmp_path / "ttyRS485"
    sim.open_pty(tty)
    cfg = GatewayConfig(gateway_id="gw1", port=str(tty), children={1: "gw1-a01"}, baudrate=115200, poll_s=0.2,
                        offline_after=2, reply_timeout=0.1, attempts=4, heartbeat_s=1.0, telemetry_s=1.0,
                        repair_idle_s=0.3, min_backoff=0.05, max_backoff=0.4, play_dir=tmp_path / "line",
                        prefix=prefix)
    gw = SerialGateway(cfg, via(link, "gw1"))
    await gw.start()
    try:
        report = await run_kit(broker, "gw1-a01", prefix=prefix, heartbeat_s=1.0, quiet_s=1.5, timeout_s=30.0,
                               link=link)
    finally:
        await gw.stop()
        await sim.stop()
    assert_all_pass(report)
    for item in ("clock_sync", "relay", "live"):
        assert "§7.5" in evidence(report, item) and "unknown command" in evidence(report, item)
    assert "client id 'gw1'" in evidence(report, "credentials")
    assert '"children": ["gw1-a01"]' in evidence(report, "last_will")
    assert "'failed'" in evidence(report, "preemption"), "the normal broadcast was pre-empted"
