"""Several brokers (devices/failover.py): the ring, the waits, the parsing of lists; then real
failover between two Mosquittos for a bare client, a simulated unit and the controller's settings."""

from __future__ import annotations

import asyncio
import json
import random
import zlib

import pytest

from controller.cli.loaphuong import _settings, build_parser
from controller.fleet.settings import MqttSettings
from controller.settings import Settings
from devices.broker import BrokerProcess, free_port
from devices.conformance.cli import build_parser as kit_parser
from devices.failover import (
    DUPLICATE_FLAPS,
    STABLE_S,
    UNIT_BACKOFF,
    Backoff,
    BrokerRing,
    brokers_from,
    parse_brokers,
)
from devices.mqtt import AsyncMqttClient, BrokerAddress, LinkStats
from devices.serial.cli import build_parser as gateway_parser
from devices.subscribe import SUBSCRIBE_TRIES, insist
from firmware_sim.fleet import _parser as sim_parser
from firmware_sim.node import SimNode
from tests.e2e.helpers import wait_for


def ring(n: int, cid: str = "u1", backoff: Backoff = Backoff(0.5, 30.0)) -> BrokerRing:
    return BrokerRing(cid, [BrokerAddress(port=1000 + i) for i in range(n)], backoff, rng=random.Random(1))


def test_a_client_starts_at_crc32_of_its_id_and_goes_round_the_ring() -> None:
    r = ring(3, "tdp3-02")
    start = zlib.crc32(b"tdp3-02") % 3
    assert r.current.port == 1000 + start
    r.failed()
    assert r.current.port == 1000 + (start + 1) % 3
    r.lost(STABLE_S + 1)
    r.failed()
    assert r.current.port == 1000 + start and r.moves == 3
    # units given one list spread over the nodes by themselves
    starts = {ring(3, f"u-{i:04d}").current.port for i in range(30)}
    assert starts == {1000, 1001, 1002}


def test_waits_are_jittered_doubling_and_capped_and_fast_after_a_healthy_connection() -> None:
    r = ring(2)
    waits = [r.failed() for _ in range(10)]
    for k, w in enumerate(waits):
        cap = min(30.0, 0.5 * 2 ** k)
        assert cap * 0.5 <= w <= cap
    assert max(waits) <= 30.0
    first = r.lost(STABLE_S + 0.1)  # a healthy connection lost: the first retry is fast again
    assert 0.25 <= first <= 0.5 and r.flaps == 0
    young = [r.lost(1.0) for _ in range(4)]  # connections dying young keep doubling
    assert [round(w / min(30, 0.5 * 2 ** k), 1) >= 0.5 for k, w in enumerate(young, start=1)] == [True] * 4
    assert r.flaps == 4 and r.duplicate_suspected
    assert UNIT_BACKOFF.first_s == 0.5 and UNIT_BACKOFF.max_s == 60.0


def test_one_broker_stays_where_it_is() -> None:
    r = ring(1)
    r.failed()
    r.lost(20)
    assert r.current.port == 1000 and r.moves == 0


def test_broker_lists_parse_from_repeated_options_and_comma_lists() -> None:
    assert parse_brokers(["a:1884", "b,c:1886"]) == [("a", 1884), ("b", 1883), ("c", 1886)]
    assert parse_brokers("[::1]:1999, [fe80::1]") == [("::1", 1999), ("fe80::1", 1883)]
    for bad in ("", " , ", "a:0", "a:x", ":1883"):
        with pytest.raises(ValueError):
            parse_brokers(bad)
    tpl = BrokerAddress(host="h", port=2000, username="u", password="p", tls=True)
    out = brokers_from(["x", "y:3000"], tpl)
    assert [(b.host, b.port, b.username, b.tls) for b in out] == [("x", 2000, "u", True),
                                                                  ("y", 3000, "u", True)]
    assert brokers_from([], tpl) == [tpl]  # the old single host/port
    args = sim_parser().parse_args(["--broker", "n1:1", "--broker", "n2:2,n3:3"])
    assert parse_brokers(args.brokers) == [("n1", 1), ("n2", 2), ("n3", 3)]
    gw = gateway_parser().parse_args(["--id", "gw1", "--port", "loop://", "--broker", "n1:1,n2:2"])
    assert gw.brokers == ["n1:1,n2:2"]
    with pytest.raises(ValueError):
        BrokerRing("x", [BrokerAddress(tls=True), BrokerAddress()], Backoff())


def test_controller_settings_take_a_list_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOAPHUONG_MQTT__BROKERS", "n1:1884, n2")
    monkeypatch.setenv("LOAPHUONG_MQTT__USERNAME", "ctl")
    addrs = Settings().mqtt.addresses()
    assert [(a.host, a.port, a.username) for a in addrs] == [("n1", 1884, "ctl"), ("n2", 1883, "ctl")]
    monkeypatch.setenv("LOAPHUONG_MQTT__BROKERS", json.dumps(["n3:1", "n4:2"]))
    assert [a.port for a in Settings().mqtt.addresses()] == [1, 2]
    monkeypatch.delenv("LOAPHUONG_MQTT__BROKERS")
    one = Settings().mqtt.addresses()  # no list: host and port, as before
    assert [(a.host, a.port) for a in one] == [("127.0.0.1", 1883)]
    with pytest.raises(ValueError, match="port"):
        MqttSettings(brokers=["n1:99999"])  # type: ignore[call-arg]


@pytest.mark.broker
@pytest.mark.timeout(60)
async def test_a_client_and_a_unit_move_to_the_next_broker_and_republish_their_birth() -> None:
    a, b = BrokerProcess("mosquitto", free_port()), BrokerProcess("mosquitto", free_port())
    with a, b:
        addrs = [BrokerAddress(port=a.port), BrokerAddress(port=b.port)]
        # both start on A: their ids put them at position 0 of the ring
        cid = next(f"c{i}" for i in range(100) if zlib.crc32(f"c{i}".encode()) % 2 == 0)
        uid = next(f"u{i}" for i in range(100) if zlib.crc32(f"u{i}".encode()) % 2 == 0)
        c = AsyncMqttClient(cid, addrs, min_backoff=0.2, max_backoff=1.0, log_failures=False)
        unit = SimNode(uid, addrs, heartbeat_s=5.0, log_link_failures=False)
        c.start()
        await unit.start()
        seen: dict[str, bytes] = {}
        watcher = AsyncMqttClient("watch", BrokerAddress(port=b.port),
                                  on_message=lambda t, p, r: seen.update({t: p}))
        watcher.start()
        try:
            await asyncio.wait_for(c.connected.wait(), 10)
            assert c.broker.port == a.port
            assert unit._rt.link is not None and unit._rt.link.broker.port == a.port
            await asyncio.wait_for(watcher.connected.wait(), 10)
            fut = watcher.subscribe([f"lp/node/{uid}/state"])
            assert fut is not None
            await asyncio.wait_for(fut, 10)
            loop = asyncio.get_running_loop()
            t0 = loop.time()
            a.stop()  # the broker node dies
            await wait_for(lambda: c.is_connected and c.broker.port == b.port, 15, "client on broker B")
            await wait_for(lambda: unit.connected and unit._rt.link is not None
                           and unit._rt.link.broker.port == b.port, 15, "unit on broker B")
            moved_s = loop.time() - t0
            # the unit's retained birth is on the new broker (the watcher only sees B)
            await wait_for(lambda: b'"online"' in seen.get(f"lp/node/{uid}/state", b""), 10, "birth on B")
            assert unit.stats.connects == 2
            assert moved_s < 5.0  # first retry fast: 0.25-0.5 s after the loss
        finally:
            await unit.stop()
            await c.stop()
            await watcher.stop()


class RefusingLink:
    """A link whose broker refuses the first ``refusals`` SUBACKs of topic ``t/b``."""

    client_id = "u-fake"

    def __init__(self, refusals: int) -> None:
        self.refusals = refusals
        self.asked: list[list[str]] = []
        self.left: list[str] = []
        self.is_connected = True
        self.stats = LinkStats(connects=1)

    def subscribe(self, topics: list[str]) -> asyncio.Future[list[int]]:
        self.asked.append(topics)
        fut: asyncio.Future[list[int]] = asyncio.get_running_loop().create_future()
        codes = []
        for t in topics:
            refuse = t == "t/b" and self.refusals > 0
            self.refusals -= refuse
            codes.append(0x80 if refuse else 1)
        fut.set_result(codes)
        return fut

    def reconnect(self, why: str) -> None:
        self.left.append(why)


async def test_a_refused_subscription_is_asked_again_then_the_unit_leaves_for_the_next_broker() -> None:
    link = RefusingLink(refusals=2)
    granted: list[bool] = []
    topics = ["t/a", "t/b"]
    insist(link, topics, link.subscribe(topics), "its own topics",  # type: ignore[arg-type]
           on_granted=lambda: granted.append(True))
    await wait_for(lambda: granted, 10, "granted after two refusals")
    assert link.asked == [["t/a", "t/b"], ["t/b"], ["t/b"]] and link.left == []  # only the refused one again
    stubborn = RefusingLink(refusals=99)
    insist(stubborn, topics, stubborn.subscribe(topics), "group z")  # type: ignore[arg-type]
    await wait_for(lambda: stubborn.left, 15, "leaving the broker")
    assert len(stubborn.asked) == SUBSCRIBE_TRIES and "group z" in stubborn.left[0]


def test_serve_and_conformance_take_broker_lists_and_serve_keeps_its_old_options() -> None:
    args = build_parser().parse_args(["serve", "--broker", "n1:1884", "--broker", "n2,n3:1886"])
    assert [(a.host, a.port) for a in _settings(args).mqtt.addresses()] == [("n1", 1884), ("n2", 1883),
                                                                             ("n3", 1886)]
    old = build_parser().parse_args(["serve", "--mqtt-host", "h", "--mqtt-port", "2883"])
    assert [(a.host, a.port) for a in _settings(old).mqtt.addresses()] == [("h", 2883)]
    kit = kit_parser().parse_args(["--unit", "tdp3-02", "--broker", "n1,n2"])
    assert parse_brokers(kit.brokers) == [("n1", 1883), ("n2", 1883)]


def test_only_broker_closed_young_connections_in_a_row_suspect_a_duplicate_and_refuse() -> None:
    """Issue 16: evictions by a client with our id are connections the broker closes right after
    they open, with no failed connect between (that broker is up). Our own leaving a node and a
    broker that went down are no such sign; with refuse_duplicate the client must stop."""
    r = BrokerRing("ctl", [BrokerAddress(port=1000)], Backoff(), refuse_duplicate=True)
    for _ in range(DUPLICATE_FLAPS - 1):
        r.lost(1.0)
    r.lost(1.0, ours=True)  # we left (a refused subscription): not counted
    assert r.flaps == DUPLICATE_FLAPS - 1 and not r.refused
    r.failed()  # the broker cannot be reached: it is down, the count starts again
    assert r.flaps == 0
    for _ in range(DUPLICATE_FLAPS):
        r.lost(1.0)
    assert r.duplicate_suspected and r.refused
    plain = BrokerRing("unit", [BrokerAddress(port=1000)], Backoff())  # units go on trying, and report
    for _ in range(DUPLICATE_FLAPS):
        plain.lost(1.0)
    assert plain.duplicate_suspected and not plain.refused
