"""The kit's link mode on its own: the CONNECT parser (MQTT 3.1.1 and 5), the §1 backoff band, and
the proxy refusing then forwarding a real paho MQTT 5 client to a real Mosquitto."""

from __future__ import annotations

import asyncio
import itertools
import threading
from collections.abc import Iterator

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from devices.broker import BrokerProcess, mosquitto_path
from devices.conformance.items_link import backoff_fit, unjittered
from devices.conformance.link import KitLink
from devices.conformance.mqtt_wire import WireError, connack_refused, parse_connect
from devices.mqtt import BrokerAddress
from firmware_sim.node import SimNode
from tests.fakes import until


def _v311_connect(flags: int, payload: bytes, keepalive: int = 30) -> bytes:
    return b"\x00\x04MQTT\x04" + bytes([flags]) + keepalive.to_bytes(2, "big") + payload


def _s(text: str | bytes) -> bytes:
    raw = text.encode() if isinstance(text, str) else text
    return len(raw).to_bytes(2, "big") + raw


def test_parse_a_311_connect_with_will_and_login() -> None:
    flags = 0x80 | 0x40 | 0x20 | 0x08 | 0x04 | 0x02  # user, password, will retain, will QoS 1, will, clean
    body = _v311_connect(flags, _s("tdp3-02") + _s("lp/node/tdp3-02/state") + _s(b'{"status":"offline"}')
                         + _s("tdp3-02") + _s("secret"), keepalive=45)
    c = parse_connect(body)
    assert (c.level, c.client_id, c.username, c.password, c.clean, c.keepalive) == (
        4, "tdp3-02", "tdp3-02", True, True, 45)
    assert c.will is not None
    assert (c.will.topic, c.will.qos, c.will.retain) == ("lp/node/tdp3-02/state", 1, True)
    assert c.will.payload == b'{"status":"offline"}'
    assert "secret" not in c.describe(), "the password's value is never kept"


@pytest.mark.parametrize(("body", "why"), [
    (b"\x00\x04MQTX\x04\x02\x00\x1e" + _s("x"), "not MQTT"),
    (_v311_connect(0x03, _s("x")), "reserved"),
    (_v311_connect(0x08, _s("x")), "without a will"),
    (_v311_connect(0x82, b"\x00\x05ab"), "ends early"),
])
def test_bad_connects_are_refused_with_a_reason(body: bytes, why: str) -> None:
    with pytest.raises(WireError, match=why):
        parse_connect(body)


def test_refusing_connack_in_each_version() -> None:
    assert connack_refused(4) == b"\x20\x02\x00\x05"
    assert connack_refused(5) == b"\x20\x03\x00\x87\x00"


def test_the_section_1_backoff_band() -> None:
    assert backoff_fit([0.3, 0.7, 1.5, 3.0]) == 0, "0.25-0.5, 0.5-1, 1-2, 2-4 s"
    assert backoff_fit([1.5, 3.5, 6.0, 12.0]) == 2, "a unit whose count was at 2 already"
    assert backoff_fit([45.0, 59.0, 31.0]) is not None, "capped at 30-60 s"
    assert backoff_fit([0.01, 0.01, 0.02, 0.01]) is None, "a tight loop"
    assert backoff_fit([0.5, 0.5, 0.5, 0.5]) is None, "no growth"
    assert unjittered([0.5, 1.0, 2.0, 4.0]) and not unjittered([0.3, 0.7, 1.5, 3.0])


@pytest.fixture(scope="module")
def broker() -> Iterator[BrokerAddress]:
    if mosquitto_path() is None:
        pytest.fail("mosquitto is not installed (apt-get install mosquitto)")
    with BrokerProcess("mosquitto") as b:
        yield BrokerAddress(host="127.0.0.1", port=b.port)


def _mqtt5_login(port: int) -> str:
    """One MQTT 5 login (connect properties, a will with properties) through the kit: its reason."""
    got: list[str] = []
    done = threading.Event()
    c = paho.Client(CallbackAPIVersion.VERSION2, client_id="v5-unit", protocol=paho.MQTTv5)
    c.username_pw_set("v5-unit", "pw")
    will_props = Properties(PacketTypes.WILLMESSAGE)
    will_props.ContentType = "application/json"
    c.will_set("lp/node/v5-unit/state", b'{"status":"offline"}', qos=1, retain=True, properties=will_props)

    def on_connect(client: paho.Client, userdata: object, flags: object, rc: object, props: object) -> None:
        got.append(str(rc))
        done.set()
        client.disconnect()

    c.on_connect = on_connect
    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = 0
    c.connect("127.0.0.1", port, keepalive=45, clean_start=True, properties=props)
    c.loop_start()
    try:
        done.wait(10)
    finally:
        c.loop_stop()
    return got[0] if got else "no CONNACK"


@pytest.mark.broker
@pytest.mark.asyncio
async def test_an_mqtt5_login_is_read_refused_then_forwarded(broker: BrokerAddress) -> None:
    async with KitLink("127.0.0.1", 0, broker) as link:
        link.refuse(1)
        refused = await asyncio.to_thread(_mqtt5_login, link.port)
        accepted = await asyncio.to_thread(_mqtt5_login, link.port)
    assert refused == "Not authorized" and accepted == "Success", (refused, accepted)
    first, second = link.attempts
    assert (first.outcome, second.outcome, second.broker_code) == ("refused", "forwarded", 0)
    c = first.connect
    assert c is not None and (c.level, c.client_id, c.username, c.password, c.keepalive, c.clean) == (
        5, "v5-unit", "v5-unit", True, 45, True)
    assert c.will is not None and c.will.payload == b'{"status":"offline"}' and c.will.retain


@pytest.mark.broker
@pytest.mark.asyncio
async def test_a_unit_whose_login_is_refused_says_why_backs_off_and_comes_in_later(
        broker: BrokerAddress) -> None:
    """Issue 17 *bad input*: a unit started with credentials the broker refuses (here the kit
    refuses every login) logs why, retries with §1's growing waits, stays up with its session, and
    comes in by itself once the login is accepted (the shared node link: simulator, agent, gateway)."""
    async with KitLink("127.0.0.1", 0, broker) as link:
        link.refuse(100)
        node = SimNode("loa-refused", BrokerAddress(port=link.port, username="loa-refused", password="bad"),
                       prefix="refused", heartbeat_s=0.5)
        session = node.session
        await node.start(wait=False)
        try:
            await until(lambda: len(link.attempts) >= 4, "four refused logins", 20)
            assert "Not authorized" in node.link_error and "username and password" in node.link_error
            first = link.attempts[:4]
            gaps = [b.at - a.answered_at for a, b in itertools.pairwise(first)]
            assert all(a.outcome == "refused" for a in first)
            assert backoff_fit(gaps) == 0, f"0.25-0.5, 0.5-1, 1-2 s after the first refusals: {gaps}"
            link.refuse(0)
            await node.wait_ready(20)
            assert node.connected and node.session == session, "it came in by itself, no restart"
        finally:
            await node.stop()
