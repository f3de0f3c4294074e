"""The ACL and password file we generate, enforced by a real Mosquitto.

Mosquitto's acl_file grants a SUBSCRIBE to ``#`` (it checks rights per message, not per
filter) but then delivers only what the client may read; the tests assert that effect.
"""

from __future__ import annotations

import asyncio
import os
import signal
import tempfile
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import pytest_asyncio

from devices import security as sec
from devices.broker import BrokerProcess, mosquitto_path
from devices.mqtt import AsyncMqttClient, BrokerAddress
from tests.e2e.helpers import wait_for

pytestmark = [pytest.mark.broker, pytest.mark.timeout(60)]

PASSWORDS = {"ctl": "controller-pw", "n1": "n1-pw", "n2": "n2-pw"}
GROUPS = {"n1": ["all", "z1"], "n2": ["all", "z2"]}


def write_files(d: Path, passwords: dict[str, str], groups: dict[str, list[str]]) -> None:
    sec.write_broker_files(d, passwd=sec.render_passwd(
        sec.Account(u, sec.mosquitto_hash(pw)) for u, pw in passwords.items()),
        acl=sec.render_acl("lp", "ctl", groups))


def broker_dir() -> Iterator[Path]:
    """A directory the broker's user can enter (pytest's tmp_path is private to root)."""
    with tempfile.TemporaryDirectory(prefix="lp-sec-") as tmp:
        os.chmod(tmp, 0o755)
        yield Path(tmp) / "mqtt"


@pytest.fixture
def secure_broker() -> Iterator[tuple[BrokerProcess, Path]]:
    if mosquitto_path() is None:
        pytest.fail("mosquitto is not installed (apt-get install mosquitto)")
    for d in broker_dir():
        write_files(d, PASSWORDS, GROUPS)
        conf = [line for line in sec.render_conf(d).splitlines()
                if not line.startswith(("listener", "per_listener_settings"))]
        with BrokerProcess("mosquitto", conf_extra="\n".join(conf)) as broker:
            yield broker, d


@dataclass
class Peer:
    client: AsyncMqttClient
    got: list[tuple[str, bytes, bool]] = field(default_factory=list)

    def topics(self) -> set[str]:
        return {t for t, _, _ in self.got}

    async def sub(self, topics: list[str]) -> list[int]:
        fut = self.client.subscribe(topics)
        assert fut is not None
        return await asyncio.wait_for(fut, 5)


class Peers:
    def __init__(self, port: int) -> None:
        self.port = port
        self.all: list[Peer] = []

    def make(self, user: str | None, password: str | None, client_id: str | None = None) -> Peer:
        peer = Peer(AsyncMqttClient(client_id or user or "anon", BrokerAddress(
            port=self.port, username=user, password=password), log_failures=False,
            min_backoff=0.2, max_backoff=1.0))
        peer.client._on_message = lambda t, pl, r: peer.got.append((t, pl, r))
        self.all.append(peer)
        peer.client.start()
        return peer

    async def connect(self, user: str, client_id: str | None = None) -> Peer:
        peer = self.make(user, PASSWORDS[user], client_id)
        await asyncio.wait_for(peer.client.connected.wait(), 10)
        return peer


def refused(peer: Peer) -> bool:
    """The broker answered CONNACK with a refusal (not: unreachable), at least twice."""
    c = peer.client
    return not c.is_connected and c.stats.connect_failures >= 2 and "refused" in c.last_error


@pytest_asyncio.fixture
async def peers(secure_broker: tuple[BrokerProcess, Path]) -> AsyncIterator[Peers]:
    ps = Peers(secure_broker[0].port)
    yield ps
    await asyncio.gather(*(p.client.stop() for p in ps.all))


async def test_anonymous_and_wrong_passwords_are_refused(peers: Peers) -> None:
    anon = peers.make(None, None)
    wrong = peers.make("n1", "not-the-password")
    unknown = peers.make("n9", "whatever")
    for peer in (anon, wrong, unknown):
        await wait_for(lambda p=peer: refused(p), 10, "refusal")  # type: ignore[misc]
    assert (await peers.connect("n1")).client.is_connected


async def test_node_cannot_publish_on_another_nodes_topics(peers: Peers) -> None:
    ctl, n1 = await peers.connect("ctl"), await peers.connect("n1")
    await ctl.sub(["lp/#"])
    for leaf in ("state", "heartbeat", "telemetry", "ack", "resp", "repair"):
        await n1.client.publish(f"lp/node/n2/{leaf}", b"forged", qos=1, retain=leaf == "state")
    await n1.client.publish("lp/node/n1/state", b"mine", qos=1, retain=True)  # allowed: the control
    await wait_for(lambda: "lp/node/n1/state" in ctl.topics(), 5, "n1's own state")
    await asyncio.sleep(0.3)
    assert ctl.topics() == {"lp/node/n1/state"}


async def test_node_subscribed_to_everything_reads_only_its_own_and_its_groups(peers: Peers) -> None:
    ctl, n1, n2 = await peers.connect("ctl"), await peers.connect("n1"), await peers.connect("n2")
    codes = await n1.sub(["#"])
    assert codes is not None
    foreign = ["lp/node/n2/cmd", "lp/node/n2/config", "lp/group/z2/cmd", "lp/group/z2/bcast/b1/manifest",
               "lp/node/n2/bcast/b1/data", "lp/controller/secret", "other/topic"]
    mine = ["lp/node/n1/cmd", "lp/group/z1/cmd", "lp/group/all/bcast/b1/manifest", "lp/controller/state"]
    for topic in foreign + mine:
        await ctl.client.publish(topic, b"x", qos=1)
    await n2.client.publish("lp/node/n2/state", b"online", qos=1, retain=True)
    await wait_for(lambda: set(mine) <= n1.topics(), 5, "n1's own messages")
    await asyncio.sleep(0.3)
    assert n1.topics() == set(mine), f"SUBACK {codes}; leaked: {n1.topics() - set(mine)}"


async def test_node_cannot_plant_retained_commands_or_configs(peers: Peers) -> None:
    n1 = await peers.connect("n1")
    planted = ["lp/node/n1/cmd", "lp/node/n2/cmd", "lp/group/all/cmd", "lp/group/z1/cmd", "lp/node/n2/config",
               "lp/node/n1/config", "lp/group/all/bcast/b9/manifest", "lp/controller/state"]
    for topic in planted:
        await n1.client.publish(topic, b'{"v":1,"id":"evil","name":"reboot"}', qos=1, retain=True)
    # a unit that (re)connects now, and the controller, find nothing retained there
    n2, ctl = await peers.connect("n2"), await peers.connect("ctl")
    await n2.sub(["lp/node/n2/cmd", "lp/group/all/cmd", "lp/group/z2/cmd", "lp/node/n2/config",
                               "lp/group/all/bcast/+/+"])
    await ctl.sub(["lp/#"])
    await ctl.client.publish("lp/node/n2/cmd", b"real", qos=1)  # the control: a live command arrives
    await wait_for(lambda: n2.got, 5, "the live command")
    await asyncio.sleep(0.3)
    assert n2.got == [("lp/node/n2/cmd", b"real", False)]
    assert not [m for m in ctl.got if m[2]], "retained messages were planted"


async def test_a_node_cannot_take_over_another_nodes_session(peers: Peers) -> None:
    n2 = await peers.connect("n2")
    await peers.connect("n1", client_id="n2")  # logs in as n1 but claims n2's client id
    await asyncio.sleep(0.5)
    assert n2.client.is_connected and n2.client.stats.connects == 1


async def test_new_node_works_after_regeneration_and_sighup(
        secure_broker: tuple[BrokerProcess, Path], peers: Peers) -> None:
    broker, d = secure_broker
    PASSWORDS_3 = {**PASSWORDS, "n3": "n3-pw"}
    n3 = peers.make("n3", "n3-pw")
    await wait_for(lambda: refused(n3), 10, "n3 refused")
    write_files(d, PASSWORDS_3, {**GROUPS, "n3": ["all", "z1"]})
    assert broker.proc is not None
    broker.proc.send_signal(signal.SIGHUP)
    await asyncio.wait_for(n3.client.connected.wait(), 70)  # its next retry succeeds
    ctl = await peers.connect("ctl")
    await n3.sub(["lp/group/z1/cmd", "lp/group/z2/cmd"])
    await ctl.client.publish("lp/group/z2/cmd", b"not for n3", qos=1)
    await ctl.client.publish("lp/group/z1/cmd", b"for n3", qos=1)
    await wait_for(lambda: n3.got, 5, "group command")
    await asyncio.sleep(0.2)
    assert n3.topics() == {"lp/group/z1/cmd"}
